"""ticktape.schemas.instruments.vectorized: the vectorized classifier equals the scalar one everywhere.

The oracle here is written directly against :mod:`ticktape.schemas.instruments.codes` (it does not
reuse ``classify_id``), so both the vector path and the scalar fallback are checked.
"""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticktape.schemas.instruments.codes import (
    cusip_check_digit,
    cusip_to_isin,
    is_valid_cusip,
    isin_check_digit,
    standardize_cusip,
    standardize_isin,
)
from ticktape.schemas.instruments.vectorized import IdClass, classify_id, standardize_ids

DIGITS = "0123456789"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
CUSIP_CHARS = DIGITS + LETTERS + "*@#"
SPACES = " \t\n\r\x0b\x0c\x1c\x1f\xa0\u2003\u3000"


def oracle(s: str, expect: str = "") -> IdClass:
    """What ticktape.schemas.instruments.codes says about ``s`` (see the classifier's docstring)."""
    text = s.strip().upper()
    if len(text) == 12 and expect != "cusip":
        r = standardize_isin(s)
        if r.ok:
            embedded = text[2:11]
            if text[:2] in ("US", "CA") and is_valid_cusip(embedded):
                return IdClass(embedded, "cusip", "valid", "", True)
            return IdClass(r.value, "isin", "valid", "", False)
        if r.reason.startswith("check digit mismatch"):
            return IdClass("", "isin", "bad_check_digit", isin_check_digit(text[:11]), False)
        return IdClass("", "isin", "invalid_char", "", False)
    if len(text) in (6, 8, 9) and expect != "isin":
        r2 = standardize_cusip(s)
        if r2.reason.startswith("check digit mismatch"):
            return IdClass("", "cusip", "bad_check_digit", cusip_check_digit(text[:8]), False)
        if not r2.ok:
            return IdClass("", "cusip", "invalid_char", "", False)
        status = {"6": "issuer_only", "8": "fixed_check_digit", "9": "valid"}[r2.form]
        return IdClass(r2.value, "cusip", status, "", False)
    return IdClass("", "", "invalid_length", "", False)


cusip_bases = st.text(CUSIP_CHARS, min_size=8, max_size=8)
alnum = st.text(DIGITS + LETTERS, min_size=9, max_size=9)


@st.composite
def near_ids(draw: st.DrawFn) -> str:
    """Identifier-like text: valid forms, then maybe damaged, recased or padded."""
    kind = draw(st.sampled_from(["cusip", "isin", "na-isin", "raw"]))
    if kind == "cusip":
        base = draw(cusip_bases)
        text = base + cusip_check_digit(base)
    elif kind == "isin":
        base = draw(st.sampled_from(["US", "CA", "GB", "AU", "XS"])) + draw(alnum)
        text = base + isin_check_digit(base)
    elif kind == "na-isin":
        base = draw(st.text(DIGITS + LETTERS, min_size=8, max_size=8))
        text = cusip_to_isin(base + cusip_check_digit(base), draw(st.sampled_from(["US", "CA"])))
    else:
        text = draw(st.text(CUSIP_CHARS + "abc-. ", min_size=5, max_size=13))
    action = draw(st.sampled_from(["keep", "cut8", "cut6", "swap", "lower", "extra"]))
    if action == "cut8":
        text = text[:8]
    elif action == "cut6":
        text = text[:6]
    elif action == "swap" and text:
        i = draw(st.integers(0, len(text) - 1))
        text = text[:i] + draw(st.sampled_from(CUSIP_CHARS + "a-ßı")) + text[i + 1 :]
    elif action == "lower":
        text = text.lower()
    elif action == "extra":
        text += draw(st.sampled_from(["0", "X", "ﬁ", "\x00"]))
    pad = st.text(st.sampled_from(SPACES), max_size=3)
    return draw(pad) + text + draw(pad)


def check(values: list[str], expect: str = "") -> None:
    got = standardize_ids(values, expect=expect)  # type: ignore[arg-type]
    assert len(got.standard_id) == len(values)
    for i, value in enumerate(values):
        assert got.row(i) == oracle(value, expect), value
        assert classify_id(value, expect) == oracle(value, expect), value  # type: ignore[arg-type]


@given(st.lists(st.text(), max_size=40))
def test_arbitrary_text(values: list[str]) -> None:
    check(values)


@given(st.lists(near_ids(), max_size=60), st.sampled_from(["", "cusip", "isin"]))
def test_identifier_like_text(values: list[str], expect: str) -> None:
    check(values, expect)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("037833100", IdClass("037833100", "cusip", "valid", "", False)),
        (" 38259p50 ", IdClass("38259P508", "cusip", "fixed_check_digit", "", False)),
        ("037833", IdClass("", "cusip", "issuer_only", "", False)),
        ("037833109", IdClass("", "cusip", "bad_check_digit", "0", False)),
        ("03783-100", IdClass("", "cusip", "invalid_char", "", False)),
        ("us0378331005", IdClass("037833100", "cusip", "valid", "", True)),
        ("GB0002634946", IdClass("GB0002634946", "isin", "valid", "", False)),
        ("GB0002634947", IdClass("", "isin", "bad_check_digit", "6", False)),
        ("0378331", IdClass("", "", "invalid_length", "", False)),
        ("\u3000037833100", IdClass("037833100", "cusip", "valid", "", False)),  # Unicode space
    ],
)
def test_known_cases(text: str, expected: IdClass) -> None:
    assert standardize_ids([text]).row(0) == expected


def test_input_shapes_nulls_and_large_batches() -> None:
    values = ["037833100", None, "us0378331005", "bad"] * 5000
    plain = standardize_ids(values)
    for arr in (
        pa.array(values, pa.large_string()),
        pa.chunked_array([values[:7], values[7:]]),
        pa.array(values).dictionary_encode(),
    ):
        other = standardize_ids(arr)
        assert other.standard_id.equals(plain.standard_id)
        assert other.status.equals(plain.status)
    assert plain.row(1) == IdClass("", "", "invalid_length", "", False)
    assert plain.status_code.tolist()[:4] == [0, 3, 0, 3]
    assert plain.from_isin.sum() == 5000
    sliced = standardize_ids(pa.array(values)[3:9])
    assert [sliced.row(i) for i in range(6)] == [plain.row(i) for i in range(3, 9)]
    assert len(standardize_ids([]).standard_id) == 0
