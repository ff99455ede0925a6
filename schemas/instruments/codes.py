"""Instrument identifiers: CUSIP (9 characters) and ISIN (12), check digits and
standardization.

CUSIP: 6-character issuer, 2-character issue, 1 check digit. Characters are valued
``0-9`` -> 0..9, ``A-Z`` -> 10..35, ``*`` -> 36, ``@`` -> 37, ``#`` -> 38; every second
value (positions 2, 4, 6, 8) is doubled, the decimal digits of all values are summed,
and the check digit is ``(10 - sum % 10) % 10``. Because only digit sums count, a
substitution of one *digit* by another is always detected, but some substitutions
involving letters are not (``1`` and ``A`` both contribute 1 at an undoubled position).

ISIN: 2-letter country code, 9-character national id (NSIN; for US/CA ISINs it is the
CUSIP), 1 check digit: letters are expanded to two digits (``A`` -> 10 ... ``Z`` -> 35)
and the Luhn algorithm is applied to the digit string. Luhn detects any single-digit
substitution of the expanded string; a letter substitution changes two digits (or shifts
the doubling) and is not always detected.
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

_CUSIP_VALUES: Final = {
    **{str(d): d for d in range(10)},
    **{chr(ord("A") + i): 10 + i for i in range(26)},
    "*": 36,
    "@": 37,
    "#": 38,
}
_ALNUM: Final = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_LETTERS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")

CusipForm = Literal["9", "8", "6", ""]


class CusipResult(msgspec.Struct, frozen=True):
    """Outcome of :func:`standardize_cusip`.

    ``value`` is the 9-character CUSIP ("" when none can be formed, e.g. issuer-only or
    invalid input); ``form`` is the length of the accepted input (``""`` if unusable).
    """

    input: str
    value: str
    issuer: str
    form: CusipForm
    ok: bool
    reason: str = ""


class IsinResult(msgspec.Struct, frozen=True):
    """Outcome of :func:`standardize_isin`; ``value`` is the 12-character ISIN or ""."""

    input: str
    value: str
    country: str
    nsin: str
    ok: bool
    reason: str = ""


def _illegal(text: str, allowed: frozenset[str] | dict[str, int]) -> str:
    for i, ch in enumerate(text):
        if ch not in allowed:
            return f"illegal character {ch!r} at {i + 1}"
    return ""


def cusip_check_digit(first8: str) -> str:
    """The check digit of the 8-character CUSIP base ``first8`` (uppercase).

    Raises ``ValueError`` if ``first8`` is not 8 legal CUSIP characters.
    """
    if len(first8) != 8:
        raise ValueError(f"a CUSIP base has 8 characters, got {len(first8)}: {first8!r}")
    total = 0
    values = _CUSIP_VALUES
    for i, ch in enumerate(first8):
        v = values.get(ch)
        if v is None:
            raise ValueError(f"illegal character {ch!r} at {i + 1} in CUSIP {first8!r}")
        if i & 1:
            v *= 2
        total += v // 10 + v % 10
    return str((10 - total % 10) % 10)


def is_valid_cusip(s: str) -> bool:
    """Whether ``s`` is exactly a 9-character CUSIP with a correct check digit."""
    if len(s) != 9 or not _is_cusip_chars(s[:8]):
        return False
    return cusip_check_digit(s[:8]) == s[8]


def _is_cusip_chars(text: str) -> bool:
    values = _CUSIP_VALUES
    return all(ch in values for ch in text)


def standardize_cusip(s: str) -> CusipResult:
    """Strip, uppercase and check a CUSIP given in 9-, 8- or 6-character form.

    9 characters: the check digit is verified. 8: the check digit is computed and
    appended. 6: issuer only (``ok`` with an empty ``value``). Anything else is not ok.
    """
    text = s.strip().upper()
    n = len(text)
    if n not in (9, 8, 6):
        return CusipResult(s, "", "", "", False, f"bad length {n}")
    bad = _illegal(text[:8], _CUSIP_VALUES)
    if bad:
        return CusipResult(s, "", "", "", False, bad)
    issuer = text[:6]
    if n == 6:
        return CusipResult(s, "", issuer, "6", True)
    check = cusip_check_digit(text[:8])
    if n == 8:
        return CusipResult(s, text + check, issuer, "8", True)
    if text[8] != check:
        reason = f"check digit mismatch: expected {check}, got {text[8]}"
        return CusipResult(s, "", issuer, "9", False, reason)
    return CusipResult(s, text, issuer, "9", True)


def _expand(text: str) -> str:
    return "".join(ch if ch.isdigit() else str(ord(ch) - 55) for ch in text)


def isin_check_digit(first11: str) -> str:
    """The Luhn check digit of the 11-character ISIN base ``first11`` (uppercase).

    Raises ``ValueError`` unless ``first11`` is 2 letters followed by 9 letters/digits.
    """
    if len(first11) != 11:
        raise ValueError(f"an ISIN base has 11 characters, got {len(first11)}: {first11!r}")
    bad = _illegal(first11[:2], _LETTERS) or _illegal(first11, _ALNUM)
    if bad:
        raise ValueError(f"{bad} in ISIN {first11!r}")
    digits = _expand(first11)
    total = 0
    # The check digit will be the rightmost digit, so the rightmost digit here is doubled.
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if not i & 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def is_valid_isin(s: str) -> bool:
    """Whether ``s`` is exactly a 12-character ISIN with a correct check digit."""
    if len(s) != 12 or not s.isascii() or not s[11].isdigit():
        return False
    try:
        return isin_check_digit(s[:11]) == s[11]
    except ValueError:
        return False


def standardize_isin(s: str) -> IsinResult:
    """Strip, uppercase and check an ISIN given with (12) or without (11) its check digit."""
    text = s.strip().upper()
    n = len(text)
    if n not in (12, 11):
        return IsinResult(s, "", "", "", False, f"bad length {n}")
    bad = _illegal(text[:2], _LETTERS) or _illegal(text[:11], _ALNUM)
    if bad:
        return IsinResult(s, "", "", "", False, bad)
    country, nsin = text[:2], text[2:11]
    check = isin_check_digit(text[:11])
    if n == 11:
        return IsinResult(s, text + check, country, nsin, True)
    if text[11] != check:
        reason = f"check digit mismatch: expected {check}, got {text[11]}"
        return IsinResult(s, "", country, nsin, False, reason)
    return IsinResult(s, text, country, nsin, True)


def cusip_to_isin(cusip9: str, country: str = "US") -> str:
    """The ISIN of a valid 9-character CUSIP (``country`` is ``US`` or ``CA`` normally).

    Raises ``ValueError`` if the CUSIP is invalid or uses ``*@#`` (not allowed in ISINs).
    """
    cusip = cusip9.strip().upper()
    if not is_valid_cusip(cusip):
        raise ValueError(f"not a valid 9-character CUSIP: {cusip9!r}")
    base = country.upper() + cusip
    return base + isin_check_digit(base)


def isin_to_cusip(isin: str) -> str:
    """The CUSIP inside a valid US or CA ISIN. Raises ``ValueError`` otherwise."""
    text = isin.strip().upper()
    if not is_valid_isin(text):
        raise ValueError(f"not a valid ISIN: {isin!r}")
    if text[:2] not in ("US", "CA"):
        raise ValueError(f"only US and CA ISINs embed a CUSIP, got country {text[:2]!r}")
    cusip = text[2:11]
    if not is_valid_cusip(cusip):
        raise ValueError(f"ISIN {isin!r} does not embed a valid CUSIP: {cusip!r}")
    return cusip
