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

import copy as _copy
import threading

import msgspec
import numpy as np

from ticktape.schemas.records import Event, EventType, PriceUpdate
from ticktape.sinks.eventlog.sink import EventLogSink

_decode = msgspec.json.Decoder(PriceUpdate).decode


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


def stamped(sink: EventLogSink, durable: DurableLatency) -> EventLogSink:
    """The same sink as ``sink`` (as the wiring built it), its partitions calling
    ``durable.on_commit`` after each commit."""
    copy = _copy.copy(sink)
    copy.on_commit = durable.on_commit
    return copy
