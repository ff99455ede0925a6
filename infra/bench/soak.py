"""Scenario ``soak``: memory of the live flow over a long paced run.

Method: one paced live run (:func:`ticktape.infra.bench.paced.paced_run`: the real flow with
embedded outputs, one worker, this process) at ``rate`` ticks/s (default 50k) over
``symbols`` symbols (default 10,000) with every candle interval (1m, 5m, 1h) for
``warmup + duration`` (default 11 + 10 minutes: the keyed state legitimately grows until
closed windows leave the 5-minute revision horizon, which for 5m windows is 10 minutes
after the start, so the warm-up outlasts that).
A thread samples the process RSS every
``every`` seconds (psutil when installed, else ``VmRSS`` from ``/proc/self/status``).

Verdict: after the warm-up every RSS sample stays within ``tolerance`` (10%) of the
first post-warm-up sample. The report has first/last/min/max after the warm-up, the
slope, and whether the rate was sustained. Run it at a rate the machine sustains: when
it cannot keep up, the paced feed's event times (each message's due time) fall ever
further behind the clock, and once they are older than ``validation.max_past`` (10
minutes) the ticks are rejected as too old, a different workload (as measured on the
2-core VM at 50k/s: RSS jumped when the rejections began). The samples go to
``<prefix>soak-rss.json`` and the curve
(with the source backlog) to ``<prefix>soak-rss.png`` (matplotlib's Agg canvas, no
pyplot; skipped when matplotlib is missing).
"""

from __future__ import annotations

import importlib
import json
import threading
import time
from pathlib import Path
from typing import Any

from ticktape.flows.steps.candles import CandleConfig
from ticktape.infra.bench.common import Measurement, slope
from ticktape.infra.bench.paced import SUSTAINED, PacedResult, paced_run

MIB = 1024 * 1024


def rss_reader() -> tuple[str, Any]:
    """``(method, fn)`` where ``fn()`` is this process's resident set size in bytes."""
    try:
        proc = importlib.import_module("psutil").Process()
        return "psutil", lambda: int(proc.memory_info().rss)
    except ImportError:
        return "/proc/self/status VmRSS", _vmrss


def _vmrss() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class RssSampler(threading.Thread):
    """Samples ``(time.monotonic(), rss bytes)`` every ``every`` seconds until stopped."""

    def __init__(self, every: float) -> None:
        super().__init__(name="bench-rss", daemon=True)
        self.every = every
        self.method, self.read = rss_reader()
        self.samples: list[tuple[float, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while True:
            self.samples.append((time.monotonic(), self.read()))
            if self._halt.wait(self.every):
                return

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=self.every + 5)


def verdict(post: list[int], tolerance: float) -> dict[str, Any]:
    """First/last/min/max (MiB) after the warm-up and whether all are within ``tolerance``."""
    if not post:
        return {"within_tolerance": False, "reason": "no samples after the warm-up"}
    first = post[0]
    worst = max(abs(x - first) for x in post) / first
    return {
        "first_mib": round(first / MIB, 1), "last_mib": round(post[-1] / MIB, 1),
        "min_mib": round(min(post) / MIB, 1), "max_mib": round(max(post) / MIB, 1),
        "max_deviation": round(worst, 4), "tolerance": tolerance, "within_tolerance": worst <= tolerance,
    }  # fmt: skip


def write_plot(path: Path, doc: dict[str, Any]) -> bool:
    """The RSS curve (and the backlog on a second axis) as a PNG; False without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return False
    fig = Figure(figsize=(9, 4.5), layout="tight")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    t = [s["t_s"] / 60 for s in doc["samples"]]
    ax.plot(t, [s["rss_mib"] for s in doc["samples"]], marker=".", color="tab:blue", label="RSS")
    ax.axvspan(min(t, default=0.0), doc["warmup_s"] / 60, color="0.9", label="warm-up")
    v = doc["summary"]
    if "first_mib" in v:
        for bound in (1 - v["tolerance"], 1 + v["tolerance"]):
            ax.axhline(v["first_mib"] * bound, color="tab:red", linestyle="--", linewidth=0.8)
    ax.set_xlabel("minutes since the source started")
    ax.set_ylabel("RSS (MiB)")
    ax.set_ylim(bottom=0)
    backlog = doc["backlog"]
    if backlog:
        ax2 = ax.twinx()
        ax2.plot([b[0] / 60 for b in backlog], [b[1] for b in backlog], color="tab:orange", linewidth=0.8)
        ax2.set_ylabel("source backlog (messages)", color="tab:orange")
    verdict_text = "within" if v.get("within_tolerance") else "NOT within"
    ax.set_title(
        f"soak: {doc['offered_per_s']:,.0f}/s offered, {doc['achieved_per_s']:,.0f}/s achieved, "
        f"{doc['symbols']:,} symbols; RSS {verdict_text} {v.get('tolerance', 0):.0%} after warm-up",
        fontsize=10,
    )
    ax.legend(loc="lower right")
    fig.savefig(path, dpi=110)
    return True


def soak_scenario(
    rate: float = 50_000.0,
    symbols: int = 10_000,
    duration: float = 600.0,
    warmup: float = 660.0,
    every: float = 5.0,
    tolerance: float = 0.10,
    out_prefix: Path | None = None,
    settings: dict[str, Any] | None = None,
) -> Measurement:
    """Run the soak; write ``<out_prefix>soak-rss.json``/``.png`` (default ``./``)."""
    sampler = RssSampler(every)
    sampler.start()
    try:
        run = paced_run(
            rate, symbols=symbols, duration=duration, warmup=warmup, window=200_000, sample_every=1.0,
            settings=settings,
        )  # fmt: skip
    finally:
        sampler.stop()
    doc = soak_doc(run, sampler, symbols, warmup, duration, every, tolerance)
    prefix = str(out_prefix) if out_prefix is not None else ""
    json_path, png_path = Path(f"{prefix}soak-rss.json"), Path(f"{prefix}soak-rss.png")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(doc, indent=1))
    files = {"samples": str(json_path)}
    if write_plot(png_path, doc):
        files["plot"] = str(png_path)
    return Measurement(
        scenario="soak",
        unit="ticks/s",
        value=run.achieved,
        baseline_name="offered rate (open loop)",
        baseline=rate,
        samples=[run.achieved],
        baseline_samples=[rate],
        extra={k: v for k, v in doc.items() if k not in ("samples", "backlog")} | {"files": files},
    )


def soak_doc(
    run: PacedResult, sampler: RssSampler, symbols: int, warmup: float, duration: float, every: float,
    tolerance: float,
) -> dict[str, Any]:  # fmt: skip
    """The JSON document: settings, RSS samples (s since the source started), verdict.
    Judged are the samples of the measured interval only: the sampler also runs while
    the job starts and while it shuts down (which frees its state)."""
    intervals = [int(iv) // 1_000_000_000 for iv in CandleConfig().intervals]
    samples = [(t - run.started, rss) for t, rss in sampler.samples]
    post = [(t, float(rss)) for t, rss in samples if warmup <= t <= warmup + duration]
    growth = slope(post)  # bytes per second
    return {
        "offered_per_s": run.offered, "achieved_per_s": round(run.achieved, 1),
        "sustained": run.achieved >= SUSTAINED * run.offered, "symbols": symbols,
        "intervals_s": intervals, "warmup_s": warmup, "duration_s": duration, "every_s": every,
        "rss_method": sampler.method,
        "summary": verdict([int(rss) for _, rss in post], tolerance)
        | {"slope_mib_per_min": round(growth * 60 / MIB, 3)},
        "latency_ms_last_200k": run.latency, "backlog_end": run.backlog_end, "backlog_max": run.backlog_max,
        "gc_pauses": run.gc_pauses,
        "samples": [{"t_s": round(t, 2), "rss_mib": round(rss / MIB, 2)} for t, rss in samples],
        "backlog": run.backlog[:: max(1, len(run.backlog) // 2000)],
    }  # fmt: skip
