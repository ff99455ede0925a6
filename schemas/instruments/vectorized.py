"""Vectorized CUSIP/ISIN validation and standardization over Arrow string columns.

:func:`standardize_ids` gives, for every input string, exactly what the scalar
:func:`classify_id` gives (that function is built only from :mod:`ticktape.schemas.instruments.codes`;
a property test checks the two agree on arbitrary text):

- the input is stripped (Python ``str.strip``) and uppercased;
- 6, 8 or 9 characters are a CUSIP form: ``issuer_only`` (6), ``fixed_check_digit``
  (8: the check digit is computed and appended), ``valid`` or ``bad_check_digit`` (9,
  with the expected digit); an illegal character in the first 8 is ``invalid_char``;
- 12 characters are an ISIN: ``valid``, ``bad_check_digit`` or ``invalid_char`` (2
  letters, then 9 letters/digits); a valid US/CA ISIN whose embedded 9 characters are a
  valid CUSIP standardizes to that CUSIP (``from_isin``);
- anything else (including null and empty) is ``invalid_length``. ``expect`` narrows
  the accepted forms (``"cusip"``: 6/8/9 only, ``"isin"``: 12 only).

``standard_id`` is non-empty only for usable instrument ids (``valid`` and
``fixed_check_digit``). ``id_type`` is the type of ``standard_id`` when there is one, else
of the input's length class (``""`` for ``invalid_length``).

The hot path has no per-row Python: ASCII rows are trimmed and uppercased by Arrow
kernels, right-padded to 12 bytes, viewed as an ``(n, 12)`` uint8 matrix and run through
256-entry lookup tables (character values, weighted digit sums, Luhn contributions).
Only non-ASCII rows (where Python's Unicode ``strip``/``upper`` can change the text, e.g.
``"ß".upper() == "SS"``) go through :func:`classify_id` one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from ticktape.schemas.instruments.codes import (
    cusip_check_digit,
    isin_check_digit,
    isin_to_cusip,
    standardize_cusip,
    standardize_isin,
)

Expect = Literal["", "cusip", "isin"]
STATUSES: Final = (
    "valid",
    "fixed_check_digit",
    "issuer_only",
    "invalid_length",
    "invalid_char",
    "bad_check_digit",
)
VALID, FIXED, ISSUER_ONLY, INVALID_LENGTH, INVALID_CHAR, BAD_CHECK = range(6)
ID_TYPES: Final = ("", "cusip", "isin")
_EXPECTED: Final = ("", *"0123456789")
# What Python's str.strip() removes from ASCII text.
_ASCII_SPACE: Final = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"
_WIDTH: Final = 12
Mask = npt.NDArray[np.bool_]


class IdClass(NamedTuple):
    """One classified identifier (see the module docstring)."""

    standard_id: str
    id_type: str
    status: str
    expected: str
    from_isin: bool


def classify_id(s: str, expect: Expect = "") -> IdClass:
    """The scalar reference: classify one identifier with :mod:`ticktape.schemas.instruments.codes`."""
    text = s.strip().upper()
    n = len(text)
    if n == 12 and expect != "cusip":
        isin = standardize_isin(s)
        if isin.ok:
            if text[:2] in ("US", "CA"):
                try:
                    return IdClass(isin_to_cusip(text), "cusip", "valid", "", True)
                except ValueError:
                    pass
            return IdClass(isin.value, "isin", "valid", "", False)
        if isin.country:  # legal characters, wrong check digit
            return IdClass("", "isin", "bad_check_digit", isin_check_digit(text[:11]), False)
        return IdClass("", "isin", "invalid_char", "", False)
    if n in (6, 8, 9) and expect != "isin":
        cusip = standardize_cusip(s)
        if not cusip.ok:
            if cusip.issuer:  # legal characters, wrong check digit
                return IdClass("", "cusip", "bad_check_digit", cusip_check_digit(text[:8]), False)
            return IdClass("", "cusip", "invalid_char", "", False)
        if cusip.form == "6":
            return IdClass("", "cusip", "issuer_only", "", False)
        return IdClass(cusip.value, "cusip", "fixed_check_digit" if cusip.form == "8" else "valid", "", False)
    return IdClass("", "", "invalid_length", "", False)


def _tables() -> tuple[npt.NDArray[Any], ...]:
    value = np.full(256, -1, np.int16)
    for i, ch in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*@#"):
        value[ord(ch)] = i
    known = np.maximum(value, 0)
    single, double = known // 10 + known % 10, (2 * known) // 10 + (2 * known) % 10
    # A little-endian uint16 view of two adjacent characters (even position low byte):
    # their CUSIP digit-sum contribution, or -1000 if either is not a CUSIP character.
    pair = (single[None, :] + double[:, None]).ravel()
    pair[((value[None, :] < 0) | (value[:, None] < 0)).ravel()] = -1000

    def dbl(d: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        return np.where(2 * d > 9, 2 * d - 9, 2 * d).astype(np.int16)

    alnum = np.where(value < 36, known, 0).astype(np.int16)
    hi, lo = alnum // 10, alnum % 10
    letter = ((value >= 10) & (value < 36)).astype(np.int16)
    # Luhn contribution of a character whose (last) expanded digit is at an even
    # (doubled, row 0) or odd (row 1) position counted from the right.
    luhn = np.stack([np.where(letter, dbl(lo) + hi, dbl(alnum)), np.where(letter, lo + dbl(hi), alnum)])
    space = np.zeros(256, np.int16)
    space[[ord(c) for c in _ASCII_SPACE]] = 1
    digit = (10 - np.arange(512) % 10) % 10 + 48
    return value, pair.astype(np.int16), luhn.astype(np.int16), letter, digit.astype(np.uint8), space


_VALUE, _PAIR, _LUHN, _LETTER, _DIGIT, _SPACE = _tables()
_US: Final = ord("U") | ord("S") << 8  # the first two characters as a little-endian uint16
_CA: Final = ord("C") | ord("A") << 8


@dataclass(frozen=True)
class StandardizedIds:
    """Column-wise result of :func:`standardize_ids` (one entry per input row)."""

    standard_id: pa.Array  # string
    id_type: pa.Array  # dictionary<int8, string>: "", "cusip", "isin"
    status: pa.Array  # dictionary<int8, string>: one of STATUSES
    expected: pa.Array  # dictionary<int8, string>: expected check digit or ""
    from_isin: npt.NDArray[np.bool_]
    status_code: npt.NDArray[np.int8]  # index into STATUSES

    def row(self, i: int) -> IdClass:
        """Row ``i`` as an :class:`IdClass` (for tests and messages)."""
        std, typ, status, expected = (
            c[i].as_py() for c in (self.standard_id, self.id_type, self.status, self.expected)
        )
        return IdClass(std, typ, status, expected, bool(self.from_isin[i]))


def _as_strings(values: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    arr = values if isinstance(values, pa.Array) else pa.array(values, pa.string())
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = arr.cast(pa.string())
    return arr.fill_null("") if arr.null_count else arr


def _trimmed(arr: pa.Array) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
    """Starts, lengths and data bytes of the ASCII-stripped strings of an all-ASCII array."""
    _, offsets, raw = arr.buffers()
    dtype = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    off = np.frombuffer(offsets, dtype)[arr.offset : arr.offset + len(arr) + 1].astype(np.int64)
    data = np.frombuffer(raw, np.uint8) if raw is not None else np.zeros(0, np.uint8)
    starts, lengths = off[:-1], np.diff(off)
    some = lengths > 0
    if some.any() and (_SPACE[data[starts[some]]].any() or _SPACE[data[off[1:][some] - 1]].any()):
        return _trimmed(pc.ascii_trim(arr, characters=_ASCII_SPACE))
    return starts, lengths, data


def _matrix(
    starts: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64], data: npt.NDArray[np.uint8]
) -> npt.NDArray[np.uint8]:
    """The uppercased characters of the given strings, right-padded to 12 with spaces
    (rows of length 0 are all spaces)."""
    k = len(starts)
    width = int(lengths[0]) if k else 0
    m = np.full((k, _WIDTH), 32, np.uint8)
    if k and (lengths == width).all() and (np.diff(starts) == width).all():  # one length, contiguous
        m[:, :width] = data[starts[0] : starts[0] + k * width].reshape(k, width)
    else:  # one gather per length class (6, 8, 9, 12)
        for size in (6, 8, 9, 12):
            rows = np.flatnonzero(lengths == size)
            if len(rows):
                m[rows, :size] = data[starts[rows, None] + np.arange(size)]
    m -= ((m - 97) < 26).view(np.uint8) * np.uint8(32)  # a-z -> A-Z (uint8 wraps below "a")
    return m


def _digit(total: npt.NDArray[np.int16]) -> npt.NDArray[np.uint8]:
    return _DIGIT[np.maximum(total, 0)]  # ASCII of (10 - total % 10) % 10


def _isin_check(m: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """ASCII Luhn check digit of the 11-column ISIN bases in ``m`` (letters expanded)."""
    width = _LETTER[m] + 1
    after = np.cumsum(width[:, ::-1], axis=1)[:, ::-1] - width  # expanded digits to the right
    return _digit(_LUHN[after & 1, m].sum(axis=1))


class _Parts:
    """Per-row results (codes, output characters and lengths), filled in place."""

    def __init__(self, m: npt.NDArray[np.uint8]) -> None:
        n = len(m)
        self.status = np.full(n, INVALID_LENGTH, np.int8)
        self.id_type, self.expected = np.zeros(n, np.int8), np.zeros(n, np.int8)
        self.out, self.out_len, self.mapped = m.copy(), np.zeros(n, np.int64), np.zeros(n, np.bool_)


def _cusips(p: _Parts, m: npt.NDArray[np.uint8], size: npt.NDArray[np.int64], cusip: Mask) -> None:
    """6 characters: issuer only; 8: append the check digit; 9: verify it."""
    c = _PAIR[m.view("<u2")[:, :4]]  # illegal pairs are very negative
    first6 = c[:, 0] + c[:, 1] + c[:, 2]
    total = first6 + c[:, 3]
    check = _digit(total)
    legal = np.where(size == 6, first6 >= 0, total >= 0)
    p.id_type[cusip] = 1
    p.status[cusip & ~legal] = INVALID_CHAR
    ok = cusip & legal
    p.status[ok & (size == 6)] = ISSUER_ONLY
    fixed = ok & (size == 8)
    p.status[fixed] = FIXED
    p.out[fixed, 8] = check[fixed]
    good = ok & (size == 9) & (m[:, 8] == check)
    bad = ok & (size == 9) & ~good
    p.status[good], p.status[bad], p.expected[bad] = VALID, BAD_CHECK, check[bad] - 47
    p.out_len[fixed | good] = 9


def _isins(p: _Parts, m: npt.NDArray[np.uint8], rows: npt.NDArray[np.int64]) -> None:
    """2 letters, 9 letters/digits, a Luhn digit; valid US/CA ISINs map to their CUSIP."""
    m = m[rows]
    value = _VALUE[m[:, :11]]
    legal = ((value >= 0) & (value < 36)).all(axis=1) & (_LETTER[m[:, :2]] == 1).all(axis=1)
    check = _isin_check(m[:, :11])
    p.id_type[rows] = 2
    p.status[rows[~legal]] = INVALID_CHAR
    good = legal & (m[:, 11] == check)
    bad = legal & ~good
    p.status[rows[good]], p.status[rows[bad]], p.expected[rows[bad]] = VALID, BAD_CHECK, check[bad] - 47
    pairs = m.view("<u2")
    na = (pairs[:, 0] == _US) | (pairs[:, 0] == _CA)
    mapped = good & na & (_digit(_PAIR[pairs[:, 1:5]].sum(axis=1)) == m[:, 10])
    p.out_len[rows[good]] = 12
    p.out_len[rows[mapped]], p.id_type[rows[mapped]], p.mapped[rows[mapped]] = 9, 1, True
    p.out[rows[mapped], :9] = m[mapped, 2:11]


def standardize_ids(
    values: pa.Array | pa.ChunkedArray | Sequence[str | None], *, expect: Expect = ""
) -> StandardizedIds:
    """Classify and standardize every identifier in ``values`` (see the module docstring)."""
    arr = original = _as_strings(values)
    is_ascii = pc.string_is_ascii(arr)
    fallback: list[int] = []
    if len(arr) and not pc.all(is_ascii).as_py():
        fallback = np.flatnonzero(~is_ascii.to_numpy(zero_copy_only=False)).tolist()
        arr = pc.if_else(is_ascii, arr, "")
    starts, lengths, data = _trimmed(arr)
    cusip = ((lengths == 6) | (lengths == 8) | (lengths == 9)) & (expect != "isin")
    isin = (lengths == 12) & (expect != "cusip")
    m = _matrix(starts, np.where(cusip | isin, lengths, 0), data)
    parts = _Parts(m)
    _cusips(parts, m, lengths, cusip)
    _isins(parts, m, np.flatnonzero(isin))
    for i in fallback:  # non-ASCII text: Python's Unicode strip/upper decide
        c = classify_id(original[i].as_py(), expect)
        parts.status[i], parts.id_type[i] = STATUSES.index(c.status), ID_TYPES.index(c.id_type)
        parts.expected[i], parts.mapped[i] = _EXPECTED.index(c.expected), c.from_isin
        parts.out_len[i] = len(c.standard_id)
        parts.out[i] = np.frombuffer(c.standard_id.encode().ljust(_WIDTH), np.uint8)
    return _assemble(parts)


def _assemble(p: _Parts) -> StandardizedIds:
    """Arrow columns of the per-row results."""
    n = len(p.out)
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(p.out_len, out=offsets[1:])
    all9 = n and (p.out_len == 9).all()  # the usual case: a contiguous copy
    data = p.out[:, :9] if all9 else p.out[np.arange(_WIDTH) < p.out_len[:, None]]
    return StandardizedIds(
        standard_id=pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data.tobytes())),
        id_type=_dictionary(p.id_type, ID_TYPES),
        status=_dictionary(p.status, STATUSES),
        expected=_dictionary(p.expected, _EXPECTED),
        from_isin=p.mapped,
        status_code=p.status,
    )


def _dictionary(codes: npt.NDArray[np.int8], names: tuple[str, ...]) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int8()), pa.array(names, pa.string()))
