"""Bytewax sinks for the embedded stores: the event log and the cache.

* :class:`EventLogSink` - one SQLite file per event-log partition (items keyed by
  partition of the aggregate). Delivery: at-least-once input, idempotent by
  ``event_id`` (effectively once). Resume state: none; every snapshot first waits until
  the partition's queued writes are committed.
* :class:`EmbeddedCacheSink` - one process-wide cache shared by all workers of a process
  (items keyed by shard). Delivery: idempotent by version (never older over newer).
  Resume state: none; pending writes reach the cache file before every snapshot.

Unit of parallelism: the sink partitions (``PartitionedSink``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
from bytewax.outputs import StatefulSinkPartition

from schemas.records import Candle, Event, PriceUpdate
from sinks import cache as cache_mod
from sinks import cache_metrics
from sinks.archive_config import ArchiveConfig, make_archiver
from sinks.cache import HISTORY, METADATA, PRICE, Write, cache_key
from sinks.cache_api import CacheBackend
from sinks.eventlog import EventLogPartition, partition_path
from sinks.metrics import RunStats
from sinks.partitioned import PartitionedSink
from sinks.snapshots import Snapshotter

if TYPE_CHECKING:
    from sinks.archive import Archiver

_enc = msgspec.json.Encoder()


class _EventLogPart(StatefulSinkPartition[list[Event], None]):
    def __init__(
        self,
        part: EventLogPartition,
        stats: RunStats | None,
        archiver: Archiver | None,
        snapshotter: Snapshotter | None,
    ) -> None:
        self.part = part
        self.stats = stats
        self.archiver = archiver
        self.snapshotter = snapshotter

    def write_batch(self, values: list[list[Event]]) -> None:
        t0 = time.perf_counter()
        events = [e for batch in values for e in batch]
        self.part.append(events)
        if self.archiver is not None:
            self.archiver.maybe_run()  # cheap until due; the pass runs on its own thread
        if self.stats is not None:
            self.stats.count_sink("eventlog", len(events), time.perf_counter() - t0)

    def snapshot(self) -> None:
        self.part.flush()
        if self.stats is not None:
            self.stats.count_snapshot()

    def close(self) -> None:
        self.part.close()
        if self.snapshotter is not None:
            self.snapshotter.close()
        if self.archiver is not None:
            self.archiver.close()


class EventLogSink(PartitionedSink[list[Event], None]):
    """Events into ``<directory>/part-NNN.sqlite``; optionally snapshots every
    ``snapshot_every`` events per aggregate (on the writer thread) and the archiver
    (``archive``: mark-then-delete, see ``sinks.archive``)."""

    def __init__(
        self,
        directory: Path,
        partitions: int,
        *,
        synchronous: str = "NORMAL",
        stats: RunStats | None = None,
        background: bool = True,
        snapshot_every: int = 0,
        archive: ArchiveConfig | None = None,
    ) -> None:
        super().__init__(partitions)
        self.directory = directory
        self.synchronous = synchronous
        self.stats = stats
        self.background = background
        self.snapshot_every = snapshot_every
        self.archive = archive

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _EventLogPart:
        path = partition_path(self.directory, int(for_part))
        part = EventLogPartition(path, synchronous=self.synchronous, background=self.background)
        snapshotter = Snapshotter(path, every=self.snapshot_every) if self.snapshot_every else None
        if snapshotter is not None:
            part.after_write = snapshotter.maybe_run
        archiver = make_archiver(path, int(for_part), self.archive, self.stats) if self.archive else None
        return _EventLogPart(part, self.stats, archiver, snapshotter)


def cache_writes(updates: list[PriceUpdate], candles: list[Candle]) -> list[Write]:
    """Latest price and symbol metadata per symbol, latest candle per symbol+interval;
    only the newest value per key of a batch is encoded."""
    latest: dict[str, Write] = {}
    seen: set[tuple[str, str]] = set()
    for u in reversed(updates):
        ident = (u.venue, u.symbol)
        if ident in seen:
            continue
        seen.add(ident)
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
    """One cache sink partition over any :class:`~sinks.cache_api.CacheBackend`: builds the
    writes (:func:`cache_writes`), records ``proc_to_sink``/``recv_to_sink`` latency (and
    ``venue_to_sink`` in live runs) and flushes before every snapshot. ``owned``: the
    partition closes the backend at the end (else it only flushes it: the embedded cache
    is shared by the process's partitions)."""

    def __init__(
        self, cache: CacheBackend, stats: RunStats | None, *, name: str = "cache", owned: bool = False
    ) -> None:
        self.cache = cache
        self.stats = stats
        self.name = name
        self.owned = owned

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
    ) -> None:
        super().__init__(partitions)
        self.path = path
        self.ttls_ns = ttls_ns
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.stats = stats

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> CacheSinkPartition:
        cache = cache_mod.shared(self.path, self.ttls_ns, self.max_entries, self.max_bytes)
        cache_metrics.register(self.stats, cache)  # ticktape_cache_*, once per process
        return CacheSinkPartition(cache, self.stats)
