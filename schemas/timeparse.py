"""Fast, exact conversions of venue timestamps to ``int`` nanoseconds since the Unix epoch.

These run once per message, so they avoid ``datetime``, regular expressions and
``Decimal`` on the common paths:

- ``ms_to_ns``/``us_to_ns``/``s_to_ns`` take ints (exact), decimal strings (parsed
  digit by digit, exact) or floats (converted through their shortest round-trip text,
  so ``1762795433.9717445`` keeps every digit the venue sent). Digits finer than a
  nanosecond are truncated toward zero.
- ``rfc3339_to_ns`` parses ``YYYY-MM-DDTHH:MM:SS[.fffffffff](Z|+HH:MM|-HH:MM)`` by
  slicing and a days-from-civil formula.

``ns_to_iso`` is for display only and may use ``datetime``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction
from math import isfinite
from typing import Final

NS_PER_S: Final = 1_000_000_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_DAYS_IN_MONTH: Final = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_POW10: Final[tuple[int, ...]] = tuple(int(10**i) for i in range(19))
# Decimal exponent that turns a value in the unit into nanoseconds.
UNIT_EXP: Final = {"s": 9, "ms": 6, "us": 3, "ns": 0}
_MAX_SECONDS: Final = 4096
_seconds: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM:SS" -> seconds since epoch


def _decimal_to_int(text: str, exp: int) -> int:
    """``text`` (a plain decimal such as ``-12.345``) times ``10**exp``, truncated toward
    zero, computed exactly. Falls back to an exact rational parse for exponent forms."""
    s = text.strip()
    neg = s[:1] == "-"
    if neg or s[:1] == "+":
        s = s[1:]
    whole, _, frac = s.partition(".")
    if not ((whole + frac).isdigit() and s.isascii()):
        if "e" in s or "E" in s:
            return _exponent_to_int(text, exp)
        raise ValueError(f"not a decimal number: {text!r}")
    frac = frac[:exp]
    value = int(whole or "0") * _POW10[exp] + (int(frac) * _POW10[exp - len(frac)] if frac else 0)
    return -value if neg else value


def _exponent_to_int(text: str, exp: int) -> int:
    """Exact parse of scientific notation (rare path: ``1.7627954339717445e9``)."""
    try:
        value = Fraction(text.strip()) * _POW10[exp]
    except (ValueError, ZeroDivisionError) as exc:
        raise ValueError(f"not a decimal number: {text!r}") from exc
    return int(value)  # int() truncates toward zero


def _to_ns(value: int | float | str, exp: int) -> int:
    if type(value) is int:
        return value * _POW10[exp]
    if isinstance(value, str):
        return _decimal_to_int(value, exp)
    if isinstance(value, float):
        if not isfinite(value):
            raise ValueError(f"not a finite time: {value!r}")
        return _decimal_to_int(repr(value), exp)
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value) * _POW10[exp]
    raise ValueError(f"not a time value: {value!r}")


def s_to_ns(value: int | float | str) -> int:
    """Seconds (int, float or decimal string) to ns, keeping every digit given."""
    return _to_ns(value, 9)


def ms_to_ns(value: int | float | str) -> int:
    """Milliseconds (int, float or decimal string) to ns."""
    if type(value) is int:
        return value * 1_000_000
    return _to_ns(value, 6)


def us_to_ns(value: int | float | str) -> int:
    """Microseconds (int, float or decimal string) to ns."""
    if type(value) is int:
        return value * 1_000
    return _to_ns(value, 3)


def unit_to_ns(value: int | float | str, unit: str) -> int:
    """``value`` in ``unit`` (``s``, ``ms``, ``us`` or ``ns``) to ns."""
    try:
        exp = UNIT_EXP[unit]
    except KeyError:
        raise ValueError(f"unknown time unit {unit!r}; expected one of s, ms, us, ns") from None
    return _to_ns(value, exp)


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (valid for any year)."""
    if month <= 2:
        year -= 1
        mp = month + 9
    else:
        mp = month - 3
    era = year // 400
    yoe = year - era * 400
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def _bad(text: str, why: str) -> ValueError:
    return ValueError(f"not an RFC 3339 timestamp ({why}): {text!r}")


def _second_of(text: str) -> int:
    """Seconds since epoch of ``YYYY-MM-DDTHH:MM:SS`` (the first 19 characters), validated
    and remembered."""
    if text[4] != "-" or text[7] != "-" or text[10] not in "Tt " or text[13] != ":" or text[16] != ":":
        raise _bad(text, "separators")
    digits = text[0:4] + text[5:7] + text[8:10] + text[11:13] + text[14:16] + text[17:19]
    if not (digits.isdigit() and digits.isascii()):
        raise _bad(text, "digits")
    year = int(digits[0:4])
    month = int(digits[4:6])
    day = int(digits[6:8])
    hour = int(digits[8:10])
    minute = int(digits[10:12])
    second = int(digits[12:14])
    if not 1 <= month <= 12:
        raise _bad(text, "month")
    dim = _DAYS_IN_MONTH[month]
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        dim = 29
    if not 1 <= day <= dim or hour > 23 or minute > 59 or second > 60:
        raise _bad(text, "field out of range")
    secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
    if len(_seconds) >= _MAX_SECONDS:
        _seconds.clear()
    _seconds[text[:19]] = secs
    return secs


def _offset_seconds(text: str, tz: str) -> int:
    """``+HH:MM``/``-HH:MM`` as signed seconds east of UTC."""
    oh, om = tz[1:3], tz[4:6]
    if (
        len(tz) != 6
        or tz[0] not in "+-"
        or tz[3] != ":"
        or not (oh + om).isdigit()
        or int(oh) > 23
        or int(om) > 59
    ):
        raise _bad(text, "offset")
    seconds = int(oh) * 3600 + int(om) * 60
    return -seconds if tz[0] == "-" else seconds


def rfc3339_to_ns(text: str) -> int:
    """Parse ``2026-04-07T14:30:02.789012Z`` (``T``, ``t`` or space separator; 0 or more
    fraction digits, truncated to ns; ``Z`` or ``+HH:MM``/``-HH:MM``) to ns since epoch.

    Seconds ``60`` (leap second) are accepted and counted like POSIX time does.
    Raises ``ValueError`` on anything malformed. The ``YYYY-MM-DDTHH:MM:SS`` part is
    cached (trades of a stream share it), so the usual cost is a dict lookup and one int.
    """
    n = len(text)
    if n < 20 or not text.isascii():
        raise _bad(text, "too short" if n < 20 else "non-ASCII")
    secs = _seconds.get(text[:19])
    if secs is None:
        secs = _second_of(text)
    if text[-1] in "Zz":
        end, offset = n - 1, 0
    else:
        end = n - 6
        offset = _offset_seconds(text, text[end:]) if end >= 19 else 0
        if end < 19:
            raise _bad(text, "offset")
    frac_ns = 0
    if end != 19:
        frac = text[20:end]
        if text[19] != "." or not frac.isdigit():
            raise _bad(text, "fraction")
        if len(frac) > 9:
            frac = frac[:9]
        frac_ns = int(frac) * _POW10[9 - len(frac)]
    return (secs - offset) * NS_PER_S + frac_ns


def ns_to_iso(ns: int) -> str:
    """Display form of a ns timestamp: ``2026-04-07T14:30:02.789012000Z`` (UTC, 9 digits)."""
    secs, frac = divmod(ns, NS_PER_S)
    dt = _EPOCH + timedelta(seconds=secs)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{frac:09d}Z"
