"""ticktape.schemas.timeparse: exact unit conversions and the hand-written RFC 3339 parser."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticktape.schemas.timeparse import (
    days_from_civil,
    ms_to_ns,
    ns_to_iso,
    rfc3339_to_ns,
    s_to_ns,
    unit_to_ns,
    us_to_ns,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def test_integer_units() -> None:
    assert ms_to_ns(123456785) == 123_456_785_000_000
    assert us_to_ns(1_675_329_600_138_000) == 1_675_329_600_138_000_000
    assert s_to_ns(1_762_795_433) == 1_762_795_433_000_000_000
    assert unit_to_ns(5, "ns") == 5
    assert unit_to_ns("1675329600138", "ms") == 1_675_329_600_138_000_000


def test_kraken_seconds_keep_every_digit() -> None:
    # Kraken REST sends 1762795433.9717445: through a float product this would be off.
    assert s_to_ns("1762795433.9717445") == 1_762_795_433_971_744_500
    assert s_to_ns(1762795433.9717445) == 1_762_795_433_971_744_500
    assert s_to_ns("1762820035.982277754") == 1_762_820_035_982_277_754


def test_decimal_strings() -> None:
    assert s_to_ns("-1.5") == -1_500_000_000
    assert s_to_ns("+2") == 2_000_000_000
    assert s_to_ns(".25") == 250_000_000
    assert s_to_ns("1.0000000019") == 1_000_000_001  # finer than 1 ns: truncated
    assert s_to_ns("1.7627954339717445e9") == 1_762_795_433_971_744_500
    assert ms_to_ns("1.5") == 1_500_000
    assert us_to_ns(2.5) == 2_500


@pytest.mark.parametrize("bad", ["", ".", "-", "1.2.3", "1_000", "abc", "1e", "٣"])
def test_bad_decimal_strings(bad: str) -> None:
    with pytest.raises(ValueError, match="not a decimal number"):
        s_to_ns(bad)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), True])
def test_bad_time_values(bad: float) -> None:
    with pytest.raises(ValueError, match="not a"):
        s_to_ns(bad)


def test_unknown_unit() -> None:
    with pytest.raises(ValueError, match="unknown time unit"):
        unit_to_ns(1, "min")


@given(st.integers(min_value=-(10**19), max_value=10**19))
def test_decimal_text_of_ns_round_trips(ns: int) -> None:
    sign = "-" if ns < 0 else ""
    whole, frac = divmod(abs(ns), 10**9)
    assert s_to_ns(f"{sign}{whole}.{frac:09d}") == ns
    assert s_to_ns(f"{sign}{whole}.{frac:09d}123") == ns  # sub-ns digits are dropped


@given(st.integers(min_value=-(10**13), max_value=10**13))
def test_integral_texts_match_ints(value: int) -> None:
    assert ms_to_ns(str(value)) == ms_to_ns(value) == value * 10**6
    assert us_to_ns(str(value)) == us_to_ns(value) == value * 10**3
    assert s_to_ns(str(value)) == s_to_ns(value) == value * 10**9


def test_rfc3339_samples() -> None:
    assert rfc3339_to_ns("2026-04-07T14:30:02.789012Z") == 1_775_572_202_789_012_000
    assert rfc3339_to_ns("2023-10-06T17:35:55.440295Z") == 1_696_613_755_440_295_000
    assert rfc3339_to_ns("1970-01-01T00:00:00Z") == 0
    assert rfc3339_to_ns("2023-02-02 09:20:00.138000+00:00") == 1_675_329_600_138_000_000
    assert rfc3339_to_ns("1970-01-01T01:00:00+01:00") == 0
    assert rfc3339_to_ns("1969-12-31T19:00:00.5-05:00") == 500_000_000
    assert rfc3339_to_ns("2024-02-29t12:00:00.123456789z") == 1_709_208_000_123_456_789
    assert rfc3339_to_ns("2024-02-29T12:00:00.1234567891234Z") == 1_709_208_000_123_456_789


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "2026-04-07",
        "2026-04-07T14:30:02",  # no offset
        "2026-04-07T14:30:02.Z",  # empty fraction
        "2026/04/07T14:30:02Z",
        "2026-13-07T14:30:02Z",
        "2026-00-07T14:30:02Z",
        "2023-02-29T14:30:02Z",
        "2026-04-31T14:30:02Z",
        "2026-04-07T24:00:00Z",
        "2026-04-07T14:60:00Z",
        "2026-04-07T14:30:02+0100",
        "2026-04-07T14:30:02+24:00",
        "2026-04-07T14:30:02Zjunk",
        "2026-04-07T14:30:02.5X",
        "2026-04-07T1a:30:02Z",
        "2026-04-07T14:30:02.٣Z",
        "+026-04-07T14:30:02Z",
    ],
)
def test_rfc3339_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        rfc3339_to_ns(bad)


@given(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.text(alphabet="0123456789", max_size=9),
    st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
    st.sampled_from(["T", "t", " "]),
)
def test_rfc3339_agrees_with_datetime(dt: datetime, frac: str, offset_min: int, sep: str) -> None:
    dt = dt.replace(microsecond=0)
    if offset_min == 0:
        tz = "Z"
    else:
        sign = "-" if offset_min < 0 else "+"
        tz = f"{sign}{abs(offset_min) // 60:02d}:{abs(offset_min) % 60:02d}"
    text = (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}{sep}"
        f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}" + (f".{frac}" if frac else "") + tz
    )
    aware = dt.replace(tzinfo=timezone(timedelta(minutes=offset_min)))
    expected = (aware - EPOCH) // timedelta(seconds=1) * 10**9 + int(frac.ljust(9, "0"))
    assert rfc3339_to_ns(text) == expected
    assert rfc3339_to_ns(text) == expected  # second time through the per-second cache


def test_rfc3339_cached_second_still_checks_the_rest() -> None:
    assert rfc3339_to_ns("2026-04-07T14:30:02.1Z") == 1_775_572_202_100_000_000
    assert rfc3339_to_ns("2026-04-07T14:30:02.25Z") == 1_775_572_202_250_000_000
    assert rfc3339_to_ns("2026-04-07T14:30:02-00:30") == 1_775_574_002_000_000_000
    for bad in ("2026-04-07T14:30:02.Z", "2026-04-07T14:30:02.1x2Z", "2026-04-07T14:30:02+1:00"):
        with pytest.raises(ValueError, match="RFC 3339"):
            rfc3339_to_ns(bad)


@given(st.dates())
def test_days_from_civil_matches_ordinal(day: date) -> None:
    assert days_from_civil(day.year, day.month, day.day) == (day - EPOCH.date()).days


def test_ns_to_iso() -> None:
    assert ns_to_iso(1_775_572_202_789_012_000) == "2026-04-07T14:30:02.789012000Z"
    assert ns_to_iso(-1) == "1969-12-31T23:59:59.999999999Z"
    assert rfc3339_to_ns(ns_to_iso(1_696_613_755_440_295_123)) == 1_696_613_755_440_295_123
