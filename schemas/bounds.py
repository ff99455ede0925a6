"""Bounds of numeric configuration values, declared on the config fields themselves.

Every ``int`` and ``float`` field of a config section is ``Annotated`` with a lower and an
upper bound (:func:`between`), so msgspec rejects a value outside them while decoding,
naming the key (``run.batch_size: expected `int` >= 1, got 0``); the config fuzz test
walks the sections and fails for a numeric field without both bounds. Durations are
bounded by :class:`~ticktape.schemas.durations.Duration` itself (0 .. 100 years) and
:class:`~ticktape.schemas.durations.PositiveDuration` (no zero).
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

INT64_MAX = 2**63 - 1


def between(low: float, high: float) -> Meta:
    """``low <= value <= high``."""
    return Meta(ge=low, le=high)


#: A count of things (workers, shards, partitions, rows): at least one.
Count = Annotated[int, between(1, 1_000_000_000)]
#: A TCP port; 0 = any free port.
Port = Annotated[int, between(0, 65_535)]
#: A fraction of messages or a probability.
Fraction = Annotated[float, between(0.0, 1.0)]
#: Nanoseconds since the epoch (0 = not set).
EpochNs = Annotated[int, between(0, INT64_MAX)]
#: A rate per second; 0 where the field says it means "unlimited".
Rate = Annotated[float, between(0.0, 1e9)]
