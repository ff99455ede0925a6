"""One paced live run of the real flow, for the time-based benches (``latency``, ``soak``).

The flow is the live job (embedded outputs in a temporary data dir, ``run.mode = live``,
one worker on this thread, no recovery) fed by :class:`~ticktape.connectors.synthetic.feed.SyntheticSource`
in paced mode: an open-loop feed at a fixed offered ``rate`` (``ticktape.connectors.synthetic.pacing``).

Timeline, on a controller thread: the run starts when the source's partitions exist;
after ``warmup`` seconds every stage's exact-percentile window is reset
(:meth:`~ticktape.infra.observability.latency.LatencyBook.reset_window`) and the read counter noted; after
``duration`` more seconds the source is stopped (an overloaded run ends on time instead
of draining its backlog) and the flow finishes what it read. The latency ring is sized
for ``rate x duration`` samples (plus slack) so the percentiles are over *every* tick of
the measured interval; :attr:`PacedResult.lost` says if any fell out (it should be 0).

Stages (ms): ``recv_to_sink`` (source read -> cache sink: readable in the cache),
``proc_to_sink``, ``recv_to_proc``, ``due_to_sink`` (the ``venue_to_sink`` stage: the
paced feed's event time is each message's *due* time, so this includes the time a
message waited in the source backlog: what an open-loop client would see) and, with
``durable=True``, ``recv_to_durable`` (source read -> committed in the event log,
:mod:`ticktape.infra.bench.durable`).
"""

from __future__ import annotations

import gc
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from bytewax.testing import run_main

from ticktape.connectors.stopping import StoppableSource
from ticktape.connectors.synthetic.feed import SyntheticSource
from ticktape.flows import wiring
from ticktape.flows.config import Config, from_dict
from ticktape.flows.live.dataflow import build_flow
from ticktape.infra.bench.durable import DurableLatency, stamped
from ticktape.infra.observability.metrics import RunStats
from ticktape.sinks.cache import embedded as cache_mod
from ticktape.sinks.eventlog.sink import EventLogSink

#: Stages reported, with the LatencyBook stage each comes from.
STAGES = {
    "recv_to_sink": "recv_to_sink",
    "proc_to_sink": "proc_to_sink",
    "recv_to_proc": "recv_to_proc",
    "due_to_sink": "venue_to_sink",
}
PERCENTILES = (50.0, 95.0, 99.0, 99.9)
#: A rate is sustained when the flow read at least this share of what was offered.
SUSTAINED = 0.97


@dataclass
class PacedResult:
    """What one paced run measured (times in seconds, latencies in ms)."""

    offered: float
    achieved: float
    read: int
    seconds: float
    mean_batch: float
    latency: dict[str, dict[str, float]]
    lost: int
    backlog: list[tuple[float, int]] = field(default_factory=list)  # (s since start, msgs)
    started: float = 0.0  # time.monotonic() when the source started
    measured_from: float = 0.0  # time.monotonic() at the end of the warm-up
    metrics: dict[str, float] = field(default_factory=dict)  # source gauges at the stop
    gc_pauses: dict[str, float] = field(default_factory=dict)
    stats: RunStats | None = None

    @property
    def backlog_end(self) -> int:
        return self.backlog[-1][1] if self.backlog else 0

    @property
    def backlog_max(self) -> int:
        return max((b for _, b in self.backlog), default=0)

    def row(self) -> dict[str, Any]:
        """The JSON-friendly summary (no stats object)."""
        return {
            "offered_per_s": round(self.offered, 1),
            "achieved_per_s": round(self.achieved, 1),
            "ticks_measured": self.read,
            "seconds": round(self.seconds, 3),
            "mean_batch": round(self.mean_batch, 1),
            "latency_ms": self.latency,
            "samples_lost": self.lost,
            "backlog_end": self.backlog_end,
            "backlog_max": self.backlog_max,
            "source_metrics_at_stop": self.metrics,
            "gc_pauses": self.gc_pauses,
        }


def percentiles_ms(samples_ns: np.ndarray) -> dict[str, float]:
    """Exact p50/p95/p99/p99.9/max (ms) of every sample (each is an observed value)."""
    if samples_ns.size == 0:
        return {"count": 0.0}
    q = np.percentile(np.maximum(samples_ns, 0), PERCENTILES, method="higher")
    out = {"count": float(samples_ns.size)}
    for p, v in zip(("p50", "p95", "p99", "p999"), q.tolist(), strict=True):
        out[f"{p}_ms"] = round(float(v) / 1e6, 4)
    out["max_ms"] = round(float(samples_ns.max()) / 1e6, 4)
    return out


class GcPauses:
    """Garbage-collector pauses (any thread) while installed: they stop the flow, so
    they explain part of the latency tail. ``since(t)`` summarises those after ``t``."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, int, float]] = []  # (start, generation, seconds)
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.monotonic()
        else:
            self.pauses.append((self._start, info["generation"], time.monotonic() - self._start))

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)

    def since(self, t: float) -> dict[str, float]:
        out: dict[str, float] = {}
        for start, gen, secs in self.pauses:
            if start >= t:
                out[f"gen{gen}_count"] = out.get(f"gen{gen}_count", 0) + 1
                out[f"gen{gen}_max_ms"] = round(max(out.get(f"gen{gen}_max_ms", 0.0), secs * 1e3), 3)
                out["total_ms"] = round(out.get("total_ms", 0.0) + secs * 1e3, 3)
        return out


def paced_config(
    data_dir: Path,
    rate: float,
    symbols: int,
    seconds: float,
    window: int,
    batch_size: int,
    settings: dict[str, Any],
) -> Config:
    """Live mode, one worker, paced synthetic feed, no metrics endpoint, plus ``settings``."""
    doc: dict[str, Any] = {
        "run": {"mode": "live", "data_dir": str(data_dir), "workers": 1, "batch_size": batch_size},
        "source": {"kind": "synthetic", "synthetic": {
            "symbols": symbols, "rate": rate, "duration": f"{round(seconds * 1000)}ms"}},
        "metrics": {"enabled": False, "latency_window": window},
    }  # fmt: skip
    for section, values in settings.items():
        doc[section] = {**doc.get(section, {}), **values}
    return from_dict(doc)


def _source_metrics(stats: RunStats) -> dict[str, float]:
    """The source's gauges as exported (summed over partitions)."""
    out: dict[str, float] = {}
    for collect in list(stats.collectors):
        for family in collect():
            if family.name.startswith("ticktape_source_"):
                out[family.name] = out.get(family.name, 0.0) + sum(s.value for s in family.samples)
    return out


def paced_run(
    rate: float,
    *,
    symbols: int = 500,
    duration: float = 10.0,
    warmup: float = 3.0,
    batch_size: int = 2000,
    window: int | None = None,
    sample_every: float = 0.1,
    settings: dict[str, Any] | None = None,
    durable: bool = False,
) -> PacedResult:
    """Run the flow paced at ``rate`` ticks/s for ``warmup + duration`` seconds;
    ``settings``: config sections to override (``{"run": {"shards": 4}}``); ``durable``:
    also measure ``recv_to_durable`` (the event-log commit)."""
    window = window or int(rate * duration * 1.25) + 20 * batch_size
    stop, done = threading.Event(), threading.Event()
    marks: dict[str, Any] = {"backlog": []}
    committed = DurableLatency() if durable else None
    with tempfile.TemporaryDirectory(prefix="ticktape-bench-paced-") as tmp:
        # the feed outlasts the run (+5 s) so the stop, not the end of the feed, ends it
        cfg = paced_config(
            Path(tmp), rate, symbols, warmup + duration + 5, window, batch_size, settings or {}
        )
        stats = RunStats(window)
        # as wiring.make_source builds it in live mode, plus the backlog metrics
        source = SyntheticSource(
            cfg.source.synthetic, pace=True, batch_size=cfg.run.batch_size, rules=cfg.validation,
            check_clock=True, stats=stats,
        )  # fmt: skip
        outputs = wiring.make_outputs(cfg, stats, recoverable=False)
        if committed is not None:
            outputs.events = [
                stamped(s, committed) if isinstance(s, EventLogSink) else s for s in outputs.events
            ]
        flow = build_flow(
            cfg, source=StoppableSource(source, stop), outputs=outputs, stats=stats, recoverable=False
        )
        ctl = threading.Thread(
            target=_control,
            args=(source, stats, committed, warmup, duration, sample_every, stop, done, marks),
            name="bench-paced-control",
            daemon=True,
        )
        ctl.start()
        try:
            with GcPauses() as pauses:
                run_main(flow, epoch_interval=timedelta(seconds=cfg.run.epoch_interval.seconds))  # type: ignore[no-untyped-call]
        finally:
            done.set()
            ctl.join(timeout=5)
            cache_mod.release(wiring.cache_path(cfg))
    if "t0" not in marks:
        raise RuntimeError(f"the paced run ended before its warm-up ({warmup}s) was over")
    seconds = marks["t1"] - marks["t0"]
    read = marks["r1"] - marks["r0"]
    latency, lost = {}, 0
    for name, stage in STAGES.items():
        samples, stage_lost = stats.latency.window(stage)
        latency[name] = percentiles_ms(samples)
        lost += stage_lost
    if committed is not None:
        # undecodable: PriceUpdated events whose payload had no ts_recv (should be 0)
        latency["recv_to_durable"] = percentiles_ms(committed.window()) | {
            "undecodable": committed.undecodable
        }
    batches = marks["b1"] - marks["b0"]
    return PacedResult(
        offered=rate, achieved=read / seconds if seconds > 0 else 0.0, read=read, seconds=seconds,
        mean_batch=read / batches if batches else 0.0, latency=latency, lost=lost,
        backlog=marks["backlog"], started=marks["start"], measured_from=marks["t0"],
        metrics=marks.get("metrics", {}), gc_pauses=pauses.since(marks["t0"]), stats=stats,
    )  # fmt: skip


def _control(
    source: SyntheticSource,
    stats: RunStats,
    committed: DurableLatency | None,
    warmup: float,
    duration: float,
    every: float,
    stop: threading.Event,
    done: threading.Event,
    marks: dict[str, Any],
) -> None:
    """Warm-up, measured interval, stop (see the module docstring)."""
    while not source.pacers():
        if done.wait(0.005):
            return
    start = marks["start"] = time.monotonic()

    def batches() -> int:
        return sum(p.batches for _, p, _ in source.pacers())

    def sample(now: float) -> None:
        marks["backlog"].append((round(now - start, 3), sum(source.backlog().values())))

    for mark, until in (("t0", start + warmup), ("t1", start + warmup + duration)):
        while (now := time.monotonic()) < until and not done.is_set():
            sample(now)
            done.wait(min(every, until - now))
        if mark == "t0":
            if done.is_set():
                return
            stats.latency.reset_window()
            if committed is not None:
                committed.reset_window()
            marks["r0"], marks["b0"], marks["t0"] = stats.totals().read, batches(), time.monotonic()
    marks["metrics"] = _source_metrics(stats)
    marks["r1"], marks["b1"], marks["t1"] = stats.totals().read, batches(), time.monotonic()
    sample(marks["t1"])
    stop.set()
