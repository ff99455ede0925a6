"""The Bytewax sinks of the cache: latest price, metadata and candles per symbol, and the
top of book of venue feeds.

* :class:`CacheSinkPartition` - one partition over any :class:`~ticktape.sinks.cache.api.CacheBackend`
  (the Redis sink uses it too).
* :class:`EmbeddedCacheSink` - one process-wide embedded cache shared by all workers of a
  process (items keyed by shard). Delivery: idempotent by version (never older over
  newer). Resume state: none; pending writes reach the cache file before every snapshot.

Unit of parallelism: the sink partitions (``PartitionedSink``).
"""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
from bytewax.outputs import StatefulSinkPartition

from ticktape.infra.observability.metrics import RunStats
from ticktape.schemas.records import Candle, PriceUpdate, Quote
from ticktape.sinks.base.partitioned import PartitionedSink
from ticktape.sinks.cache import embedded as cache_mod
from ticktape.sinks.cache import metrics as cache_metrics
from ticktape.sinks.cache.api import HISTORY, METADATA, PRICE, CacheBackend, Write, cache_key

_enc = msgspec.json.Encoder()
#: What the flow sends to a cache sink per shard: price updates, candles, quotes.
CacheItem = tuple[list[PriceUpdate], list[Candle], list[Quote]]
#: The suffix of top-of-book keys: ``price/<venue>/<symbol>/quote``.
QUOTE_SUFFIX = "quote"


class SymbolMetadata(msgspec.Struct, gc=False):
    """The ``metadata`` entry of a symbol: where its latest update came from (JSON object
    with these keys, in this order)."""

    venue: str
    symbol: str
    seq: int
    ts_event: int
    src: str
    offset: int


class QuoteValue(msgspec.Struct, gc=False):
    """The cached top of book of a symbol (``price/<venue>/<symbol>/quote``)."""

    venue: str
    symbol: str
    bid: float
    bid_size: float
    ask: float
    ask_size: float
    mid: float
    spread: float
    spread_bps: float
    ts_event: int
    ts_recv: int
    seq: int
    update_id: int
    src: str
    offset: int


def quote_value(q: Quote) -> QuoteValue:
    mid = (q.bid + q.ask) / 2.0
    spread = q.ask - q.bid
    return QuoteValue(q.venue, q.symbol, q.bid, q.bid_size, q.ask, q.ask_size, mid, spread,
                      spread / mid * 1e4 if mid > 0 else 0.0, q.ts_event, q.ts_recv, q.seq, q.update_id,
                      q.src, q.offset)  # fmt: skip


def cache_writes(
    updates: list[PriceUpdate], candles: list[Candle], quotes: list[Quote] | None = None
) -> list[Write]:
    """Latest price and symbol metadata per symbol, latest candle per symbol+interval,
    latest top of book (with mid and spread) per symbol; only the newest value per key of
    a batch is encoded. Versions: ``(ts_event, seq)`` for prices and quotes,
    ``(start, revision)`` for candles, so replays never move a value back."""
    latest: dict[str, Write] = {}
    newest = {(u.venue, u.symbol): u for u in updates}  # the last update of each symbol wins
    for u in newest.values():
        key = cache_key(PRICE, u.venue, u.symbol)
        latest[key] = Write(PRICE, key, u.ts_event, u.seq, _enc.encode(u))
        meta = SymbolMetadata(u.venue, u.symbol, u.seq, u.ts_event, u.src, u.offset)
        key = cache_key(METADATA, u.venue, u.symbol)
        latest[key] = Write(METADATA, key, u.ts_event, u.seq, _enc.encode(meta))
    for c in candles:
        key = cache_key(HISTORY, c.venue, c.symbol, f"candle/{c.interval}")
        write = Write(HISTORY, key, c.start, c.revision, _enc.encode(c))
        prev = latest.get(key)
        if prev is None or (write.v1, write.v2) > (prev.v1, prev.v2):
            latest[key] = write
    if quotes:
        done: set[tuple[str, str]] = set()
        for q in reversed(quotes):
            ident = (q.venue, q.symbol)
            if ident in done:
                continue
            done.add(ident)
            key = cache_key(PRICE, q.venue, q.symbol, QUOTE_SUFFIX)
            latest[key] = Write(PRICE, key, q.ts_event, q.seq, _enc.encode(quote_value(q)))
    return list(latest.values())


class CacheSinkPartition(StatefulSinkPartition[CacheItem, None]):
    """One cache sink partition over any :class:`~ticktape.sinks.cache.api.CacheBackend`: builds the
    writes (:func:`cache_writes`), records ``proc_to_sink``/``recv_to_sink`` latency (and
    ``venue_to_sink`` in live runs) and flushes before every snapshot (``durable``; else
    the backend persists on its own schedule and at the end). ``owned``: the
    partition closes the backend at the end (else it only flushes it: the embedded cache
    is shared by the process's partitions)."""

    def __init__(
        self,
        cache: CacheBackend,
        stats: RunStats | None,
        *,
        name: str = "cache",
        owned: bool = False,
        durable: bool = True,
    ) -> None:
        self.cache = cache
        self.stats = stats
        self.name = name
        self.owned = owned
        self.durable = durable

    def write_batch(self, values: list[CacheItem]) -> None:
        t0 = time.perf_counter()
        updates = [u for item in values for u in item[0]]
        candles = [c for item in values for c in item[1]]
        quotes = [q for item in values if len(item) > 2 for q in item[2]]  # older callers send 2-tuples
        writes = cache_writes(updates, candles, quotes)
        self.cache.put_many(writes)
        if self.stats is not None:
            now = time.time_ns()
            self.stats.latency.record_since("proc_to_sink", now, [u.ts_proc for u in updates])
            self.stats.latency.record_since("recv_to_sink", now, [u.ts_recv for u in updates])
            if self.stats.live:  # event time is wall-clock time only in live runs
                self.stats.latency.record_since("venue_to_sink", now, [u.ts_event for u in updates])
            self.stats.count_sink(self.name, len(writes), time.perf_counter() - t0)

    def snapshot(self) -> None:
        if self.durable:
            self.cache.flush()

    def close(self) -> None:
        if self.owned:
            self.cache.close()
        else:
            self.cache.flush()


class EmbeddedCacheSink(PartitionedSink[CacheItem, None]):
    """Latest prices, metadata, candles and quotes into the process-wide cache for ``path``."""

    def __init__(
        self,
        path: Path,
        ttls_ns: dict[str, int],
        max_entries: int,
        max_bytes: int,
        *,
        partitions: int = 4,
        stats: RunStats | None = None,
        durable_snapshots: bool = True,
    ) -> None:
        super().__init__(partitions, durable_snapshots=durable_snapshots)
        self.path = path
        self.ttls_ns = ttls_ns
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.stats = stats

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> CacheSinkPartition:
        cache = cache_mod.shared(self.path, self.ttls_ns, self.max_entries, self.max_bytes)
        cache_metrics.register(self.stats, cache)  # ticktape_cache_*, once per process
        return CacheSinkPartition(cache, self.stats, durable=self.durable_snapshots)
