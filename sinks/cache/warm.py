"""Warm a cache at start-up (or with ``ticktape cache warm``) from what the job already wrote.

Sources, both optional:

* the event log: the newest ``PriceUpdated`` event of every aggregate (``symbol@venue``),
  found with :meth:`~ticktape.sinks.eventlog.store.EventStore.latest_per_aggregate`, gives the latest
  price and metadata of every symbol;
* the Parquet candle store: the latest candle (highest ``start``, then revision) of every
  symbol and interval, read with :meth:`~ticktape.sinks.candles.store.CandleStore.read`.

The writes are exactly those the live sinks make (:func:`~ticktape.sinks.cache.sink.cache_writes`),
with the same versions, so warming is idempotent and never moves a value backwards: on a
cache that already holds newer values every warm write is refused as stale. Values get
their type's full TTL from the moment they are warmed (as any write does), so an old
candle can read as fresh: pass ``candles_since`` (e.g. now minus the history TTL) to leave
old windows out, which also bounds what is read from a large candle store.
"""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec

from ticktape.schemas.records import Candle, EventType, PriceUpdate
from ticktape.sinks.cache.api import CacheBackend
from ticktape.sinks.cache.sink import cache_writes
from ticktape.sinks.candles.store import CandleStore
from ticktape.sinks.eventlog.store import EventStore

log = logging.getLogger("ticktape.cache.warm")
_price = msgspec.json.Decoder(PriceUpdate)


def latest_prices(events_dir: Path) -> list[PriceUpdate]:
    """The newest price update of every aggregate in the event log under ``events_dir``."""
    with EventStore(events_dir) as store:
        return [_price.decode(e.payload) for e in store.latest_per_aggregate(EventType.PRICE_UPDATED)]


def latest_candles(candles_dir: Path, since: int | None = None) -> list[Candle]:
    """The latest candle (by start, then revision) of every venue, symbol and interval."""
    latest: dict[tuple[str, str, int], Candle] = {}
    for c in CandleStore(candles_dir).read(since=since):  # latest revision of each window
        key = (c.venue, c.symbol, c.interval)
        prev = latest.get(key)
        if prev is None or (c.start, c.revision) > (prev.start, prev.revision):
            latest[key] = c
    return list(latest.values())


def warm(
    cache: CacheBackend,
    events_dir: Path,
    *,
    candles_dir: Path | None = None,
    candles_since: int | None = None,
) -> int:
    """Write the latest prices, metadata and candles into ``cache``; how many landed
    (writes refused because the cache holds newer versions are not counted)."""
    updates = latest_prices(events_dir)
    candles = latest_candles(candles_dir, candles_since) if candles_dir is not None else []
    writes = cache_writes(updates, candles)
    if not writes:
        return 0
    landed = cache.put_many(writes)
    cache.flush()
    log.info(
        "warmed the cache: %d of %d writes landed (%d symbols from the event log, %d candles)",
        landed, len(writes), len(updates), len(candles),
    )  # fmt: skip
    return landed
