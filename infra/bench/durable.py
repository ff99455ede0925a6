"""Source read -> durable in the event log: the second latency of the ``latency`` scenario.

The first latency, ``recv_to_sink``, ends when the cache sink has written the update
(readable by clients). This one ends when the event log's writer thread has *committed*
the transaction holding the update's ``PriceUpdated`` event: the event-log partition
calls its ``on_commit`` hook (:class:`~ticktape.sinks.eventlog.log.EventLogPartition`)
with the stored events and the commit time, and :class:`DurableLatency` records
``commit time - ts_recv`` for each ``PriceUpdated`` (``ts_recv`` is read from the
event's JSON payload, the :class:`~ticktape.schemas.records.PriceUpdate` array).
Durable means what a commit means under ``eventlog.synchronous`` (``NORMAL``, WAL:
survives a crash of the process; ``FULL``: also a power loss).

Every sample of the measured interval is kept (exact percentiles, as for the other
stages); :meth:`DurableLatency.reset_window` starts the interval. Decoding the ``ts_recv``
costs about a microsecond per event on the writer thread, which holds the GIL meanwhile,
so the paced runs that do not report it (the soak) leave it off.
"""

from __future__ import annotations

import threading
from pathlib import Path

import msgspec
import numpy as np

from ticktape.infra.observability.metrics import RunStats
from ticktape.schemas.records import Event, EventType
from ticktape.sinks.eventlog.sink import EventLogSink, MaintainerFactory, _EventLogPart


class _Stamps(msgspec.Struct, array_like=True):
    """The leading fields of a ``PriceUpdate`` payload, up to ``ts_recv`` (the rest is
    ignored by the decoder)."""

    venue: str
    symbol: str
    price: float
    size: float
    side: str
    trade_id: str
    ts_event: int
    ts_kafka: int
    ts_recv: int


_decode = msgspec.json.Decoder(_Stamps).decode


class DurableLatency:
    """``recv_to_durable`` samples (ns), thread-safe: every event-log writer calls
    :meth:`on_commit`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self.undecodable = 0

    def on_commit(self, events: list[Event], committed_ns: int) -> None:
        """The event-log hook: one sample per ``PriceUpdated`` of the commit."""
        price_updated = EventType.PRICE_UPDATED
        recv = []
        bad = 0
        for e in events:
            if e.type == price_updated:
                try:
                    recv.append(_decode(e.payload).ts_recv)
                except msgspec.DecodeError:
                    bad += 1
        if not recv and not bad:
            return
        samples = committed_ns - np.fromiter(recv, dtype=np.int64, count=len(recv))
        with self._lock:
            self._chunks.append(samples)
            self.undecodable += bad

    def reset_window(self) -> None:
        """Forget the samples so far (the end of a warm-up)."""
        with self._lock:
            self._chunks = []
            self.undecodable = 0

    def window(self) -> np.ndarray:
        """Every sample since the last reset (ns)."""
        with self._lock:
            chunks = list(self._chunks)
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)


class StampedEventLogSink(EventLogSink):
    """The event-log sink whose partition writers call ``on_commit`` after each commit."""

    def __init__(
        self,
        directory: Path,
        partitions: int,
        on_commit: DurableLatency,
        *,
        synchronous: str = "NORMAL",
        stats: RunStats | None = None,
        snapshot_every: int = 0,
        maintainer: MaintainerFactory | None = None,
        durable_snapshots: bool = True,
    ) -> None:
        super().__init__(
            directory, partitions, synchronous=synchronous, stats=stats, snapshot_every=snapshot_every,
            maintainer=maintainer, durable_snapshots=durable_snapshots,
        )  # fmt: skip
        self.durable = on_commit

    @classmethod
    def like(cls, sink: EventLogSink, durable: DurableLatency) -> StampedEventLogSink:
        """The same sink as ``sink`` (as the wiring built it), stamped."""
        return cls(
            sink.directory, sink.partitions, durable, synchronous=sink.synchronous, stats=sink.stats,
            snapshot_every=sink.snapshot_every, maintainer=sink.maintainer,
            durable_snapshots=sink.durable_snapshots,
        )  # fmt: skip

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _EventLogPart:
        part = super().build_part(step_id, for_part, resume_state)
        part.part.on_commit = self.durable.on_commit
        return part
