"""Stage latency recording (docs/architecture.md, "Latency").

Each stage keeps (a) cumulative histogram bucket counts for Prometheus and (b) a ring of
the last ``window`` samples for exact percentiles (p50/p95/p99/max) in reports and
benches (a bench sizes the ring for its whole measured interval and starts that interval
with :meth:`LatencyBook.reset_window`, so its percentiles are over every sample).
Samples arrive per batch as integer nanoseconds; a batch's differences go to a plain list
per stage, and the lists are folded into the histograms and rings by a few vectorized
numpy calls once :data:`FOLD_AT` samples are pending or when anything reads a stage, so
recording costs well under a microsecond per tick however small the batches are.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

#: ``recv_to_sink`` and ``venue_to_sink`` are end to end (``venue_to_sink`` in live runs only:
#: in replays and backfills event times are history, not a clock reading).
STAGES = ("venue_to_recv", "kafka_to_recv", "recv_to_proc", "proc_to_sink", "recv_to_sink", "venue_to_sink")

# Upper bounds in seconds: 10us .. 60s, roughly x2.5 per step (Prometheus adds +Inf).
BUCKETS_S: tuple[float, ...] = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
_BUCKETS_NS = np.array([round(b * 1e9) for b in BUCKETS_S], dtype=np.int64)


class StageLatency:
    """One stage: histogram counts, sum, and a ring of recent samples (ns)."""

    def __init__(self, window: int) -> None:
        self.counts = np.zeros(len(_BUCKETS_NS) + 1, dtype=np.int64)
        self.total_ns = 0
        self.n = 0
        self._ring = np.zeros(max(window, 1), dtype=np.int64)
        self._pos = 0
        self._filled = 0
        self._n_at_reset = 0

    def add(self, samples_ns: np.ndarray) -> None:
        if samples_ns.size == 0:
            return
        samples_ns = np.maximum(samples_ns, 0)
        idx = np.searchsorted(_BUCKETS_NS, samples_ns, side="left")
        self.counts += np.bincount(idx, minlength=self.counts.size)
        self.total_ns += int(samples_ns.sum())
        self.n += int(samples_ns.size)
        ring = self._ring
        size = ring.size
        if samples_ns.size >= size:
            ring[:] = samples_ns[-size:]
            self._pos, self._filled = 0, size
            return
        end = self._pos + samples_ns.size
        if end <= size:
            ring[self._pos : end] = samples_ns
        else:
            cut = size - self._pos
            ring[self._pos :] = samples_ns[:cut]
            ring[: end - size] = samples_ns[cut:]
        self._pos = end % size
        self._filled = min(size, self._filled + samples_ns.size)

    def recent(self) -> np.ndarray:
        return self._ring[: self._filled].copy()

    def reset_window(self) -> None:
        """Start a new measured interval: forget the recent samples (the histogram
        counts, sum and count keep accumulating for Prometheus)."""
        self._pos = self._filled = 0
        self._n_at_reset = self.n

    @property
    def window_lost(self) -> int:
        """Samples since the last :meth:`reset_window` that the ring no longer holds
        (0 means :meth:`recent` is every sample of the interval, exactly)."""
        return self.n - self._n_at_reset - self._filled

    def percentiles(self) -> dict[str, float]:
        """Exact p50/p95/p99/p99.9/max over the recent window, in milliseconds."""
        data = self.recent()
        if data.size == 0:
            return {}
        q = np.percentile(data, [50, 95, 99, 99.9], method="higher")
        return {
            "count": float(self.n),
            "p50_ms": float(q[0]) / 1e6,
            "p95_ms": float(q[1]) / 1e6,
            "p99_ms": float(q[2]) / 1e6,
            "p999_ms": float(q[3]) / 1e6,
            "max_ms": float(data.max()) / 1e6,
        }


#: Pending samples (all stages) that trigger a fold into the numpy histograms and rings.
FOLD_AT = 16_384


class LatencyBook:
    """All stages of one run; thread-safe (Bytewax workers are threads in a process).
    Reading :attr:`stages` (or any report) first folds the pending samples, so readers
    always see every sample recorded so far."""

    def __init__(self, window: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._stages = {name: StageLatency(window) for name in STAGES}
        self._pending: dict[str, list[int]] = {name: [] for name in STAGES}
        self._pending_n = 0

    @property
    def stages(self) -> dict[str, StageLatency]:
        """Every stage, up to date."""
        with self._lock:
            self._fold()
        return self._stages

    def _fold(self) -> None:
        """Move pending samples into the stages (the caller holds the lock)."""
        if not self._pending_n:
            return
        for name, values in self._pending.items():
            if values:
                self._stages[name].add(np.array(values, dtype=np.int64))
                values.clear()
        self._pending_n = 0

    def _add(self, stage: str, diffs: list[int]) -> None:
        with self._lock:
            self._pending[stage].extend(diffs)
            self._pending_n += len(diffs)
            if self._pending_n >= FOLD_AT:
                self._fold()

    def record(
        self,
        stage: str,
        later_ns: Sequence[int] | np.ndarray,
        earlier_ns: Sequence[int] | np.ndarray,
    ) -> None:
        """Record ``later - earlier`` per element for ``stage``."""
        if len(later_ns) == 0:
            return
        if isinstance(later_ns, np.ndarray) or isinstance(earlier_ns, np.ndarray):
            diff = np.asarray(later_ns, dtype=np.int64) - np.asarray(earlier_ns, dtype=np.int64)
            self._add(stage, diff.tolist())
            return
        self._add(stage, [a - b for a, b in zip(later_ns, earlier_ns, strict=True)])

    def record_since(self, stage: str, now_ns: int, earlier_ns: Sequence[int] | np.ndarray) -> None:
        """Record ``now - earlier`` per element (one sink timestamp for a whole batch)."""
        if len(earlier_ns) == 0:
            return
        if isinstance(earlier_ns, np.ndarray):
            self._add(stage, (now_ns - earlier_ns.astype(np.int64)).tolist())
            return
        self._add(stage, [now_ns - e for e in earlier_ns])

    def histograms(self) -> dict[str, tuple[list[int], int]]:
        """Per stage with samples: its bucket counts (the last is +Inf) and sum (ns)."""
        with self._lock:
            self._fold()
            return {name: (s.counts.tolist(), s.total_ns) for name, s in self._stages.items() if s.n}

    def report(self) -> dict[str, dict[str, float]]:
        with self._lock:
            self._fold()
            return {name: s.percentiles() for name, s in self._stages.items() if s.n}

    def reset_window(self) -> None:
        """Start a new measured interval on every stage (benches: after a warm-up)."""
        with self._lock:
            self._fold()
            for stage in self._stages.values():
                stage.reset_window()

    def window(self, stage: str) -> tuple[np.ndarray, int]:
        """Every sample of ``stage`` (ns, in arrival order) since the last
        :meth:`reset_window` that the ring still holds, and how many it lost."""
        with self._lock:
            self._fold()
            s = self._stages[stage]
            ring, pos, filled = s._ring, s._pos, s._filled
            data = (
                np.concatenate((ring[pos:filled], ring[:pos]))
                if filled == ring.size
                else ring[:filled].copy()
            )
            return data, s.window_lost
