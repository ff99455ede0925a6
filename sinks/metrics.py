"""Run statistics and the Prometheus endpoint.

:class:`RunStats` holds the accounting of DESIGN 3.1 per source partition
(``read == accepted + rejected + duplicate``), dead letters by code, events by type and
sink counters. Bytewax workers in one process are threads, so updates take a lock (once
per batch, not per tick). :func:`serve_metrics` exposes it on 127.0.0.1 through a custom
collector, so the hot path never touches prometheus-client objects.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from sinks.latency import BUCKETS_S, LatencyBook

OUTCOMES = ("accepted", "rejected", "duplicate")


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
        self.latency = LatencyBook(latency_window)
        self.recent_candles: deque[object] = deque(maxlen=6)
        self.collectors: list[Callable[[], Iterable[Metric]]] = []

    def count_source(self, src: str, read: int, rejected: int) -> None:
        with self._lock:
            part = self.partitions[src]
            part.read += read
            part.rejected += rejected

    def count_processed(self, per_src: dict[str, tuple[int, int, int]]) -> None:
        """``per_src[src] = (accepted, rejected, duplicate)`` from the keyed step."""
        with self._lock:
            for src, (acc, rej, dup) in per_src.items():
                part = self.partitions[src]
                part.accepted += acc
                part.rejected += rej
                part.duplicate += dup

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
        with self._lock:
            self.sink_writes[sink] += rows
            self.sink_seconds[sink] += seconds
            if failed:
                self.sink_errors[sink] += 1

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
        yield from self._latency()
        yield GaugeMetricFamily(
            "ticktape_run_start_time_seconds", "Unix time the run started.", value=s.started
        )
        for extra in list(s.collectors):
            yield from extra()

    def _latency(self) -> Iterable[Metric]:
        hist = HistogramMetricFamily(
            "ticktape_stage_latency_seconds", "Latency between pipeline stages.", labels=["stage"]
        )
        with self.stats.latency._lock:
            for name, stage in self.stats.latency.stages.items():
                if not stage.n:
                    continue
                cumulative, buckets = 0, []
                for bound, count in zip((*BUCKETS_S, float("inf")), stage.counts.tolist(), strict=True):
                    cumulative += count
                    buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
                hist.add_metric([name], buckets, stage.total_ns / 1e9)
        yield hist


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
