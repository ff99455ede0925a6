"""The Bytewax sink of the candle store.

:class:`ParquetCandleSink` writes candle files (:mod:`ticktape.sinks.candles.store`),
buffered per partition. Delivery: at-least-once files, upsert-by-revision on read
(effectively once). Resume state: none; the buffer is written before every snapshot.
Unit of parallelism: the sink partitions (``PartitionedSink``); a partition's files are
named after it (``pNNN-...``), so on start it removes the temporary files a crash of its
previous run left (no other writer uses the name).
"""

from __future__ import annotations

import time
from pathlib import Path

from bytewax.outputs import StatefulSinkPartition

from ticktape.infra.observability.metrics import RunStats
from ticktape.schemas.records import Candle
from ticktape.sinks.base.background import BackgroundWriter
from ticktape.sinks.base.partitioned import PartitionedSink
from ticktape.sinks.candles.store import CandleStore


class _CandlePart(StatefulSinkPartition[list[Candle], None]):
    def __init__(
        self,
        store: CandleStore,
        writer: str,
        max_buffer: int,
        max_age_s: float,
        stats: RunStats | None,
        durable: bool,
    ) -> None:
        self.store = store
        self.writer = writer
        self.max_buffer = max_buffer
        self.max_age_s = max_age_s
        self.stats = stats
        self.durable = durable
        self.buffer: list[Candle] = []
        self.since = time.monotonic()
        self.files = BackgroundWriter(self._write, name=f"candles-{writer}")

    def write_batch(self, values: list[list[Candle]]) -> None:
        for batch in values:
            self.buffer.extend(batch)
        if len(self.buffer) >= self.max_buffer or time.monotonic() - self.since >= self.max_age_s:
            self._hand_off()

    def _hand_off(self) -> None:
        """Give the buffer to the file-writer thread (the worker never waits for Parquet)."""
        if self.buffer:
            self.files.submit(self.buffer)
            self.buffer = []
        self.since = time.monotonic()

    def _write(self, candles: list[Candle]) -> None:
        t0 = time.perf_counter()
        self.store.append(candles, self.writer)
        if self.stats is not None:
            self.stats.count_sink("candles_parquet", len(candles), time.perf_counter() - t0)

    def snapshot(self) -> None:
        if self.durable:
            self._hand_off()
            self.files.drain()

    def close(self) -> None:
        self._hand_off()
        self.files.close()


class ParquetCandleSink(PartitionedSink[list[Candle], None]):
    """Candles into the Parquet candle store, buffered up to ``max_buffer`` candles or
    ``max_age_s`` seconds per partition; files are written on a thread of the partition,
    in order (snapshots wait for it when ``durable_snapshots``)."""

    def __init__(
        self,
        root: Path,
        partitions: int,
        *,
        max_buffer: int = 20_000,
        max_age_s: float = 5.0,
        stats: RunStats | None = None,
        durable_snapshots: bool = True,
    ) -> None:
        super().__init__(partitions, durable_snapshots=durable_snapshots)
        self.root = root
        self.max_buffer = max_buffer
        self.max_age_s = max_age_s
        self.stats = stats

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _CandlePart:
        store, writer = CandleStore(self.root), f"p{int(for_part):03d}"
        store.clean_temporary(writer)
        return _CandlePart(store, writer, self.max_buffer, self.max_age_s, self.stats, self.durable_snapshots)
