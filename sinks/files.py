"""Bytewax sinks that write local files: dead-letter JSON lines and Parquet candles.

* :class:`DeadLetterFileSink` - ``<dir>/part-NNN.jsonl``, one JSON object per dead letter
  (``schemas.records.dead_letter_json``). Delivery: exactly once: under recovery the
  resume state is the file length at the snapshot, and the file is cut back to it on
  resume before the replayed input is written again; across runs (replays into the same
  directory) a dead letter whose ``dl_id`` is already in the file is not written again.
* :class:`ParquetCandleSink` - candle files (``sinks.candlestore``), buffered per
  partition. Delivery: at-least-once files, upsert-by-revision on read (effectively
  once). Resume state: none; the buffer is written before every snapshot.

Unit of parallelism: the sink partitions (``PartitionedSink``).
"""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
from bytewax.outputs import StatefulSinkPartition

from schemas.records import Candle, DeadLetter, dead_letter_json
from sinks.candlestore import CandleStore
from sinks.metrics import RunStats
from sinks.partitioned import PartitionedSink

_enc = msgspec.json.Encoder()


class _Id(msgspec.Struct):
    dl_id: str


_ID = msgspec.json.Decoder(_Id)


class _DeadLetterPart(StatefulSinkPartition[list[DeadLetter], int]):
    def __init__(self, path: Path, resume_at: int | None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("a+b")
        if resume_at is not None:
            self.file.truncate(resume_at)
        self.file.seek(0)
        self.seen = {_ID.decode(line).dl_id for line in self.file if line.strip()}
        self.file.seek(0, 2)

    def write_batch(self, values: list[list[DeadLetter]]) -> None:
        lines = []
        for batch in values:
            for dl in batch:
                if dl.dl_id not in self.seen:
                    self.seen.add(dl.dl_id)
                    lines.append(_enc.encode(dead_letter_json(dl)) + b"\n")
        if lines:
            self.file.write(b"".join(lines))
            self.file.flush()

    def snapshot(self) -> int:
        return self.file.tell()

    def close(self) -> None:
        self.file.close()


class DeadLetterFileSink(PartitionedSink[list[DeadLetter], int]):
    """Dead letters as JSON lines, one file per partition."""

    def __init__(self, directory: Path, partitions: int) -> None:
        super().__init__(partitions)
        self.directory = directory

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


class ParquetCandleSink(PartitionedSink[list[Candle], None]):
    """Candles into the Parquet candle store, buffered up to ``max_buffer`` candles or
    ``max_age_s`` seconds per partition."""

    def __init__(
        self,
        root: Path,
        partitions: int,
        *,
        max_buffer: int = 20_000,
        max_age_s: float = 5.0,
        stats: RunStats | None = None,
    ) -> None:
        super().__init__(partitions)
        self.root = root
        self.max_buffer = max_buffer
        self.max_age_s = max_age_s
        self.stats = stats

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _CandlePart:
        return _CandlePart(
            CandleStore(self.root), f"p{int(for_part):03d}", self.max_buffer, self.max_age_s, self.stats
        )
