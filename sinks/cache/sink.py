"""The Bytewax sinks of the cache: latest price, metadata and candles per symbol.

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
from ticktape.schemas.records import Candle, PriceUpdate
from ticktape.sinks.base.partitioned import PartitionedSink
from ticktape.sinks.cache import embedded as cache_mod
from ticktape.sinks.cache import metrics as cache_metrics
from ticktape.sinks.cache.api import HISTORY, METADATA, PRICE, CacheBackend, Write, cache_key

_enc = msgspec.json.Encoder()


def cache_writes(updates: list[PriceUpdate], candles: list[Candle]) -> list[Write]:
    """Latest price and symbol metadata per symbol, latest candle per symbol+interval;
    only the newest value per key of a batch is encoded."""
    latest: dict[str, Write] = {}
    newest = {(u.venue, u.symbol): u for u in updates}  # the last update of each symbol wins
    for u in newest.values():
        key = cache_key(PRICE, u.venue, u.symbol)
        latest[key] = Write(PRICE, key, u.ts_event, u.seq, _enc.encode(u))
        meta = {
            "venue": u.venue,
            "symbol": u.symbol,
            "seq": u.seq,
            "ts_event": u.ts_event,
            "src": u.src,
            "offset": u.offset,
        }
        key = cache_key(METADATA, u.venue, u.symbol)
        latest[key] = Write(METADATA, key, u.ts_event, u.seq, _enc.encode(meta))
    for c in candles:
        key = cache_key(HISTORY, c.venue, c.symbol, f"candle/{c.interval}")
        write = Write(HISTORY, key, c.start, c.revision, _enc.encode(c))
        prev = latest.get(key)
        if prev is None or (write.v1, write.v2) > (prev.v1, prev.v2):
            latest[key] = write
    return list(latest.values())


class CacheSinkPartition(StatefulSinkPartition[tuple[list[PriceUpdate], list[Candle]], None]):
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

    def write_batch(self, values: list[tuple[list[PriceUpdate], list[Candle]]]) -> None:
        t0 = time.perf_counter()
        updates = [u for ups, _ in values for u in ups]
        candles = [c for _, cs in values for c in cs]
        writes = cache_writes(updates, candles)
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


class EmbeddedCacheSink(PartitionedSink[tuple[list[PriceUpdate], list[Candle]], None]):
    """Latest prices, metadata and candles into the process-wide cache for ``path``."""

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
        super().__init__(partitions)
        self.durable_snapshots = durable_snapshots
        self.path = path
        self.ttls_ns = ttls_ns
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.stats = stats

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> CacheSinkPartition:
        cache = cache_mod.shared(self.path, self.ttls_ns, self.max_entries, self.max_bytes)
        cache_metrics.register(self.stats, cache)  # ticktape_cache_*, once per process
        return CacheSinkPartition(cache, self.stats, durable=self.durable_snapshots)
