"""Bytewax sinks for the embedded outputs: event log, cache, dead-letter files.

* :class:`EventLogSink` - partitioned by aggregate (``run``'s event-log partitions), each
  partition one SQLite file. Delivery: at-least-once input, idempotent by ``event_id``
  (effectively once). Resume state: none (idempotence makes it unnecessary); every
  snapshot first waits until the partition's queued writes are committed.
* :class:`EmbeddedCacheSink` - one process-wide cache shared by all workers of a process.
  Delivery: idempotent by version (never older over newer). Resume state: none.
* :class:`ParquetCandleSink` - candle files per partition (``sinks.candlestore``).
  Delivery: at-least-once files, upsert-by-revision on read (effectively once). Resume
  state: none; buffered candles are written before every snapshot.
* :class:`DeadLetterFileSink` - JSON lines per partition. Delivery: exactly once under
  recovery: the resume state is the file length at the snapshot, and the file is cut
  back to it on resume before the replayed input is written again.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import msgspec
from bytewax.outputs import (
    DynamicSink,
    FixedPartitionedSink,
    StatefulSinkPartition,
    StatelessSinkPartition,
)

from schemas.records import Candle, DeadLetter, Event, PriceUpdate
from sinks import cache as cache_mod
from sinks.cache import HISTORY, METADATA, PRICE, EmbeddedCache, Write, cache_key
from sinks.candlestore import CandleStore
from sinks.eventlog import EventLogPartition, partition_path
from sinks.metrics import RunStats

_enc = msgspec.json.Encoder()


class _EventLogPart(StatefulSinkPartition[list[Event], None]):
    def __init__(self, part: EventLogPartition, stats: RunStats | None) -> None:
        self.part = part
        self.stats = stats

    def write_batch(self, values: list[list[Event]]) -> None:
        t0 = time.perf_counter()
        events = [e for batch in values for e in batch]
        self.part.append(events)
        if self.stats is not None:
            self.stats.count_sink("eventlog", len(events), time.perf_counter() - t0)

    def snapshot(self) -> None:
        self.part.flush()

    def close(self) -> None:
        self.part.close()


class EventLogSink(FixedPartitionedSink[list[Event], None]):
    """Items are ``(str(partition_index), [Event, ...])``."""

    def __init__(
        self,
        directory: Path,
        partitions: int,
        *,
        synchronous: str = "NORMAL",
        stats: RunStats | None = None,
        background: bool = True,
    ) -> None:
        self.directory = directory
        self.partitions = partitions
        self.synchronous = synchronous
        self.stats = stats
        self.background = background

    def list_parts(self) -> list[str]:
        return [str(i) for i in range(self.partitions)]

    def part_fn(self, item_key: str) -> int:
        return int(item_key)

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _EventLogPart:
        path = partition_path(self.directory, int(for_part))
        return _EventLogPart(
            EventLogPartition(path, synchronous=self.synchronous, background=self.background),
            self.stats,
        )


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


class _CachePart(StatelessSinkPartition[tuple[list[PriceUpdate], list[Candle]]]):
    def __init__(self, cache: EmbeddedCache, stats: RunStats | None) -> None:
        self.cache = cache
        self.stats = stats

    def write_batch(self, items: list[tuple[list[PriceUpdate], list[Candle]]]) -> None:
        t0 = time.perf_counter()
        updates = [u for ups, _ in items for u in ups]
        candles = [c for _, cs in items for c in cs]
        writes = cache_writes(updates, candles)
        self.cache.put_many(writes)
        if self.stats is not None:
            now = time.time_ns()
            self.stats.latency.record_since("proc_to_sink", now, [u.ts_proc for u in updates])
            self.stats.latency.record_since("recv_to_sink", now, [u.ts_recv for u in updates])
            self.stats.count_sink("cache", len(writes), time.perf_counter() - t0)


class EmbeddedCacheSink(DynamicSink[tuple[list[PriceUpdate], list[Candle]]]):
    """Items are ``(updates, candles)`` batches."""

    def __init__(
        self,
        path: Path,
        ttls_ns: dict[str, int],
        max_entries: int,
        max_bytes: int,
        stats: RunStats | None = None,
    ) -> None:
        self.path = path
        self.ttls_ns = ttls_ns
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.stats = stats

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _CachePart:
        cache = cache_mod.shared(self.path, self.ttls_ns, self.max_entries, self.max_bytes)
        return _CachePart(cache, self.stats)


def dead_letter_json(dl: DeadLetter) -> dict[str, Any]:
    """A dead letter as a JSON object; ``raw`` is text when it is UTF-8, else base64."""
    try:
        raw, encoding = dl.raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        raw, encoding = base64.b64encode(dl.raw).decode("ascii"), "base64"
    return {
        "dl_id": dl.dl_id, "code": dl.code, "message": dl.message, "src": dl.src,
        "offset": dl.offset, "venue": dl.venue, "symbol": dl.symbol, "ts_recv": dl.ts_recv,
        "ts_kafka": dl.ts_kafka, "raw": raw, "raw_encoding": encoding,
    }  # fmt: skip


class _DeadLetterPart(StatefulSinkPartition[list[DeadLetter], int]):
    def __init__(self, path: Path, resume_at: int | None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("ab")
        if resume_at is not None:
            self.file.truncate(resume_at)
        self.file.seek(0, 2)

    def write_batch(self, values: list[list[DeadLetter]]) -> None:
        lines = [_enc.encode(dead_letter_json(dl)) + b"\n" for batch in values for dl in batch]
        self.file.write(b"".join(lines))
        self.file.flush()

    def snapshot(self) -> int:
        return self.file.tell()

    def close(self) -> None:
        self.file.close()


class DeadLetterFileSink(FixedPartitionedSink[list[DeadLetter], int]):
    """Items are ``(str(partition_index), [DeadLetter, ...])``; files
    ``<directory>/part-NNN.jsonl``."""

    def __init__(self, directory: Path, partitions: int) -> None:
        self.directory = directory
        self.partitions = partitions

    def list_parts(self) -> list[str]:
        return [str(i) for i in range(self.partitions)]

    def part_fn(self, item_key: str) -> int:
        return int(item_key)

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _DeadLetterPart:
        return _DeadLetterPart(self.directory / f"part-{int(for_part):03d}.jsonl", resume_state)


class _CandlePart(StatefulSinkPartition[list[Candle], None]):
    def __init__(
        self, store: CandleStore, writer: str, max_buffer: int, max_age_s: float, stats: RunStats | None
    ) -> None:
        self.store = store
        self.writer = writer
        self.max_buffer = max_buffer
        self.max_age_s = max_age_s
        self.stats = stats
        self.buffer: list[Candle] = []
        self.since = time.monotonic()

    def write_batch(self, values: list[list[Candle]]) -> None:
        for batch in values:
            self.buffer.extend(batch)
        if len(self.buffer) >= self.max_buffer or time.monotonic() - self.since >= self.max_age_s:
            self._flush()

    def _flush(self) -> None:
        t0 = time.perf_counter()
        try:
            if self.buffer:
                self.store.append(self.buffer, self.writer)
                if self.stats is not None:
                    self.stats.count_sink("candles_parquet", len(self.buffer), time.perf_counter() - t0)
        finally:
            self.buffer = []
            self.since = time.monotonic()

    def snapshot(self) -> None:
        self._flush()

    def close(self) -> None:
        self._flush()


class ParquetCandleSink(FixedPartitionedSink[list[Candle], None]):
    """Items are ``(str(partition_index), [Candle, ...])``; buffered up to ``max_buffer``
    candles or ``max_age_s`` seconds per partition."""

    def __init__(
        self,
        root: Path,
        partitions: int,
        *,
        max_buffer: int = 20_000,
        max_age_s: float = 5.0,
        stats: RunStats | None = None,
    ) -> None:
        self.root = root
        self.partitions = partitions
        self.max_buffer = max_buffer
        self.max_age_s = max_age_s
        self.stats = stats

    def list_parts(self) -> list[str]:
        return [str(i) for i in range(self.partitions)]

    def part_fn(self, item_key: str) -> int:
        return int(item_key)

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _CandlePart:
        return _CandlePart(
            CandleStore(self.root), f"p{int(for_part):03d}", self.max_buffer, self.max_age_s, self.stats
        )
