"""Human durations in configuration (``"250ms"``, ``"5s"``, ``"1m"``, ``"1h"``, ``"1d"``).

:class:`Duration` is an ``int`` of nanoseconds, so it is used directly in time arithmetic.
Every duration lies in ``0 .. MAX_NS`` (100 years: added to any time of this century it
still fits a signed 64-bit nanosecond count); :class:`PositiveDuration` also refuses 0,
for settings where 0 would mean "never" or a busy loop.
"""

from __future__ import annotations

import re
from typing import Any, Self

from ticktape.schemas.errors import ConfigError

_UNITS = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
}
MAX_NS = 36_500 * 86_400_000_000_000  # 100 years
_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h|d)")


class Duration(int):
    """Nanoseconds, parsed from ``"90s"``, ``"1h30m"``, ``"250ms"`` or a number of seconds."""

    @classmethod
    def parse(cls, value: object) -> Self:
        if isinstance(value, cls):
            return value
        if isinstance(value, Duration):
            return cls._checked(int(value), value)
        if isinstance(value, bool):
            raise ConfigError(f"expected a duration like '5s', got {value!r}")
        if isinstance(value, int | float):
            if not value >= 0:  # also NaN
                raise ConfigError(f"expected a non-negative duration, got {value!r}")
            if value * 1_000_000_000 > MAX_NS:
                raise ConfigError(f"expected a duration of at most 100 years, got {value!r}")
            return cls._checked(round(value * 1_000_000_000), value)
        if not isinstance(value, str):
            raise ConfigError(f"expected a duration like '5s', got {value!r}")
        text = value.strip().lower()
        pos, total = 0, 0.0
        for match in _PART.finditer(text):
            if match.start() != pos:
                break
            total += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if pos != len(text) or not text:
            raise ConfigError(f"expected a duration like '250ms', '5s', '1m', '1h30m' or '1d', got {value!r}")
        if total > MAX_NS:
            raise ConfigError(f"expected a duration of at most 100 years, got {value!r}")
        return cls._checked(round(total), value)

    @classmethod
    def _checked(cls, ns: int, given: object) -> Self:
        return cls(ns)

    @property
    def seconds(self) -> float:
        return self / 1_000_000_000

    def __repr__(self) -> str:
        return f"Duration({format_duration(self)!r})"


class PositiveDuration(Duration):
    """A :class:`Duration` greater than zero."""

    @classmethod
    def _checked(cls, ns: int, given: object) -> Self:
        if ns <= 0:
            raise ConfigError(f"expected a duration > 0, got {given!r}")
        return cls(ns)


def format_duration(ns: int) -> str:
    """The shortest exact text for ``ns`` (``60_000_000_000`` -> ``"1m"``)."""
    if ns == 0:
        return "0s"
    for unit in ("d", "h", "m", "s", "ms", "us", "ns"):
        size = _UNITS[unit]
        if ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns}ns"  # pragma: no cover - "ns" always divides


def dec_hook(typ: type, obj: Any) -> Any:
    """msgspec decode hook turning config values into :class:`Duration` (or a subclass)."""
    if isinstance(typ, type) and issubclass(typ, Duration):
        try:
            return typ.parse(obj)
        except ConfigError as exc:  # a ValueError lets msgspec add the key: `$.dedupe.stale_after`
            raise ValueError(str(exc)) from None
    raise NotImplementedError(f"unsupported config type {typ!r}")


def enc_hook(obj: Any) -> Any:
    """msgspec encode hook (for printing the effective config)."""
    if isinstance(obj, Duration):
        return format_duration(obj)
    raise NotImplementedError(f"cannot encode {type(obj)!r}")
