"""Run statistics and the Prometheus endpoint.

:class:`RunStats` holds the accounting (docs/architecture.md, "Accounting") per source partition
(``read == accepted + rejected + duplicate``), dead letters by code, events by type and
sink counters. Bytewax workers in one process are threads, so updates take a lock (once
per batch, not per tick). :func:`serve_metrics` exposes it on 127.0.0.1 through a custom
collector, so the hot path never touches prometheus-client objects. Every metric is listed
with its type, labels and meaning in ``infra/METRICS.md``.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from ticktape.infra.observability.latency import BUCKETS_S, LatencyBook
from ticktape.infra.observability.market import MarketStats
from ticktape.schemas.records import DeadLetter, Event, Tally

OUTCOMES = ("accepted", "rejected", "duplicate")
#: ``ticktape_sink_write_latency_seconds`` upper bounds (Prometheus adds +Inf): 100us .. 30s.
SINK_BUCKETS_S: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
#: Most symbols ``[metrics] symbol_labels`` may name (bounded label cardinality).
MAX_SYMBOL_LABELS = 100


class PartitionCounts:
    """Accounting of one source partition."""

    __slots__ = ("accepted", "duplicate", "read", "rejected")

    def __init__(self) -> None:
        self.read = 0
        self.accepted = 0
        self.rejected = 0
        self.duplicate = 0

    @property
    def balanced(self) -> bool:
        return self.read == self.accepted + self.rejected + self.duplicate

    def as_dict(self) -> dict[str, int]:
        return {
            "read": self.read,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "duplicate": self.duplicate,
        }


class RunStats:
    """Counters of one run in one process."""

    def __init__(self, latency_window: int = 100_000) -> None:
        self._lock = threading.Lock()
        self.started = time.time()
        self.partitions: dict[str, PartitionCounts] = defaultdict(PartitionCounts)
        self.dead_letters: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.duplicates_below_window = 0
        self.missing_trades = 0
        self.sink_writes: Counter[str] = Counter()
        self.sink_errors: Counter[str] = Counter()
        self.sink_seconds: dict[str, float] = defaultdict(float)
        self.sink_latency: dict[str, list[int]] = {}  # per sink: bucket counts, +Inf last
        self.latency = LatencyBook(latency_window)
        self.recent_candles: deque[object] = deque(maxlen=6)
        self.collectors: list[Callable[[], Iterable[Metric]]] = []
        self.snapshots = 0
        self.last_snapshot: float | None = None
        #: Live mode: event times are wall-clock times, so ``venue_to_sink`` is meaningful.
        self.live = False
        #: ``[metrics] symbol_labels``: the only symbols that get a ``symbol`` label.
        self.symbol_labels: frozenset[str] = frozenset()
        self.symbol_ticks: Counter[tuple[str, str]] = Counter()
        #: Quotes and books of venue feeds (``ticktape_quote_*``, ``ticktape_book_*``).
        self.market = MarketStats()
        #: Errors of sink partitions' ``close()`` (kept so a failure while Bytewax
        #: unwinds cannot abort the process; the runner reports them).
        self.close_errors: list[BaseException] = []

    def configure(self, *, live: bool = False, symbol_labels: Iterable[str] = ()) -> None:
        """Set what the flow knows about the run (``build_flow`` calls this)."""
        symbols = frozenset(symbol_labels)
        if len(symbols) > MAX_SYMBOL_LABELS:
            raise ValueError(
                f"symbol_labels: expected at most {MAX_SYMBOL_LABELS} symbols, got {len(symbols)}"
            )
        self.live = live
        self.symbol_labels = symbols
        self.market.labels = symbols

    def count_source(self, src: str, read: int, rejected: int) -> None:
        with self._lock:
            part = self.partitions[src]
            part.read += read
            part.rejected += rejected

    def count_processed(self, per_src: Mapping[str, Tally]) -> None:
        """What the keyed step decided, per source partition."""
        with self._lock:
            for src, tally in per_src.items():
                part = self.partitions[src]
                part.accepted += tally.accepted
                part.rejected += tally.rejected
                part.duplicate += tally.duplicate

    def count_outcomes(
        self, per_src: Mapping[str, Tally] | None, dead: Sequence[DeadLetter], events: Sequence[Event]
    ) -> None:
        """What a step decided: the accounting per source partition, the dead letters'
        codes and the events' types (each skipped when empty)."""
        if per_src:
            self.count_processed(per_src)
        if dead:
            self.count_dead(dl.code for dl in dead)
        if events:
            self.count_events(e.type for e in events)

    def count_dead(self, codes: Iterable[str]) -> None:
        with self._lock:
            self.dead_letters.update(codes)

    def count_events(self, types: Iterable[str]) -> None:
        with self._lock:
            self.events.update(types)

    def add_gaps(self, missing: int, below_window: int) -> None:
        with self._lock:
            self.missing_trades += missing
            self.duplicates_below_window += below_window

    def count_sink(self, sink: str, rows: int, seconds: float, *, failed: bool = False) -> None:
        """One sink write of ``rows`` that took ``seconds``; also one observation of
        ``ticktape_sink_write_latency_seconds{sink}``, except for error notifications
        without a duration (``failed`` and ``seconds == 0``: a rejected row, say)."""
        with self._lock:
            self.sink_writes[sink] += rows
            self.sink_seconds[sink] += seconds
            if failed:
                self.sink_errors[sink] += 1
                if seconds == 0.0:
                    return
            counts = self.sink_latency.get(sink)
            if counts is None:
                counts = self.sink_latency[sink] = [0] * (len(SINK_BUCKETS_S) + 1)
            counts[bisect.bisect_left(SINK_BUCKETS_S, seconds)] += 1

    def count_snapshot(self) -> None:
        """A sink partition took its epoch snapshot (flushed for recovery)."""
        now = time.time()
        with self._lock:
            self.snapshots += 1
            self.last_snapshot = now

    def count_symbols(self, ticks: Iterable[Any]) -> None:
        """Accepted ticks (``.symbol``/``.venue``) of the ``symbol_labels`` symbols."""
        allowed = self.symbol_labels
        if not allowed:
            return
        seen = Counter((t.symbol, t.venue) for t in ticks if t.symbol in allowed)
        if seen:
            with self._lock:
                self.symbol_ticks.update(seen)

    def totals(self) -> PartitionCounts:
        total = PartitionCounts()
        with self._lock:
            for part in self.partitions.values():
                total.read += part.read
                total.accepted += part.accepted
                total.rejected += part.rejected
                total.duplicate += part.duplicate
        return total

    def accounting(self) -> dict[str, Any]:
        """The per-partition accounting and whether it balances."""
        with self._lock:
            parts = {
                src: p.as_dict() | {"balanced": p.balanced} for src, p in sorted(self.partitions.items())
            }
        total = self.totals()
        return {
            "partitions": parts,
            "total": total.as_dict(),
            "balanced": all(p["balanced"] for p in parts.values()),
        }


class _StatsCollector(Collector):
    def __init__(self, stats: RunStats) -> None:
        self.stats = stats

    def collect(self) -> Iterable[Metric]:
        s = self.stats
        read = CounterMetricFamily(
            "ticktape_ticks_read", "Records read per source partition.", labels=["partition"]
        )
        outcome = CounterMetricFamily(
            "ticktape_ticks",
            "Records by outcome per source partition.",
            labels=["partition", "outcome"],
        )
        with s._lock:
            parts = {src: p.as_dict() for src, p in s.partitions.items()}
            dead = dict(s.dead_letters)
            events = dict(s.events)
            writes, errors, seconds = dict(s.sink_writes), dict(s.sink_errors), dict(s.sink_seconds)
            missing = s.missing_trades
            sink_latency = {sink: list(counts) for sink, counts in s.sink_latency.items()}
            snapshots, last_snapshot = s.snapshots, s.last_snapshot
            symbols = dict(s.symbol_ticks)
        for src, counts in parts.items():
            read.add_metric([src], counts["read"])
            for name in OUTCOMES:
                outcome.add_metric([src, name], counts[name])
        yield read
        yield outcome
        dl = CounterMetricFamily("ticktape_dead_letters", "Dead letters by error code.", labels=["code"])
        for code, n in dead.items():
            dl.add_metric([code], n)
        yield dl
        ev = CounterMetricFamily("ticktape_events", "Events emitted by type.", labels=["type"])
        for typ, n in events.items():
            ev.add_metric([typ], n)
        yield ev
        yield CounterMetricFamily(
            "ticktape_missing_trades", "Trade ids missing in sequence gaps.", value=missing
        )
        sw = CounterMetricFamily("ticktape_sink_rows", "Rows written per sink.", labels=["sink"])
        se = CounterMetricFamily("ticktape_sink_errors", "Failed sink writes per sink.", labels=["sink"])
        ss = CounterMetricFamily(
            "ticktape_sink_write_seconds", "Time spent writing per sink.", labels=["sink"]
        )
        for sink in writes.keys() | errors.keys():
            sw.add_metric([sink], writes.get(sink, 0))
            se.add_metric([sink], errors.get(sink, 0))
            ss.add_metric([sink], seconds.get(sink, 0.0))
        yield sw
        yield se
        yield ss
        yield _histogram(
            "ticktape_sink_write_latency_seconds",
            "Duration of one sink write (a write_batch call or a flush).",
            "sink", SINK_BUCKETS_S, {k: (v, seconds.get(k, 0.0)) for k, v in sink_latency.items()},
        )  # fmt: skip
        yield from self._latency()
        yield CounterMetricFamily(
            "ticktape_recovery_snapshots",
            "Epoch snapshots taken by event-log sink partitions (one per partition per epoch).",
            value=snapshots,
        )
        if last_snapshot is not None:
            yield GaugeMetricFamily(
                "ticktape_recovery_last_snapshot_timestamp_seconds",
                "Unix time of the last epoch snapshot of a sink partition.",
                value=last_snapshot,
            )
        sym = CounterMetricFamily(
            "ticktape_symbol_ticks",
            "Accepted ticks of the [metrics] symbol_labels symbols.",
            labels=["symbol", "venue"],
        )
        for (symbol, venue), n in sorted(symbols.items()):
            sym.add_metric([symbol, venue], n)
        yield sym
        yield GaugeMetricFamily(
            "ticktape_run_start_time_seconds", "Unix time the run started.", value=s.started
        )
        yield from s.market.collect()
        for extra in list(s.collectors):
            yield from extra()

    def _latency(self) -> Iterable[Metric]:
        hist = HistogramMetricFamily(
            "ticktape_stage_latency_seconds", "Latency between pipeline stages.", labels=["stage"]
        )
        for name, (counts, total_ns) in self.stats.latency.histograms().items():
            cumulative, buckets = 0, []
            for bound, count in zip((*BUCKETS_S, float("inf")), counts, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            hist.add_metric([name], buckets, total_ns / 1e9)
        yield hist


def _histogram(
    name: str,
    doc: str,
    label: str,
    bounds: tuple[float, ...],
    series: dict[str, tuple[list[int], float]],
) -> HistogramMetricFamily:
    """A histogram family from per-label ``(bucket counts with +Inf last, sum)``."""
    hist = HistogramMetricFamily(name, doc, labels=[label])
    for value, (counts, total) in sorted(series.items()):
        cumulative, buckets = 0, []
        for bound, count in zip((*bounds, float("inf")), counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        hist.add_metric([value], buckets, total)
    return hist


def serve_metrics(stats: RunStats, host: str = "127.0.0.1", port: int = 9464) -> Callable[[], None]:
    """Serve ``stats`` (plus process CPU/memory) on ``host:port``; returns a stop function.

    Port 0 picks a free port (read it back from the returned function's ``port``)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StatsCollector(stats))
    ProcessCollector(namespace="ticktape", registry=registry)
    server, thread = start_http_server(port, addr=host, registry=registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    stop.port = server.server_address[1]  # type: ignore[attr-defined]
    return stop
