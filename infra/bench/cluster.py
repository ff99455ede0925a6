"""Scenario ``cluster``: the same job in two processes against one process.

Method: ``ticktape run`` as real subprocesses on a bounded, unpaced synthetic feed
(``run.mode = replay``, 2 source partitions, 500 symbols, embedded outputs, no metrics
endpoint): once as one process with one worker, once as a two-process cluster
(``-i 0|1 -a host:port,host:port`` on loopback, one worker each). Each process writes its
run report (``<data_dir>/reports/run-*.json``: ticks read, seconds inside the dataflow,
so interpreter start-up and imports are excluded); the rate of a run is all ticks read
over the slowest process's seconds.

Measurement: ``value`` = the two-process rate, ``baseline`` = the one-process rate, so
the ratio is the scaling factor (target >= 1.7x). On a 2-core machine the cluster's two
processes, their event-log writer threads and the inter-worker exchange share those two
cores, so the ratio there is a floor, not what more cores give.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from ticktape.infra.bench.common import Measurement, median, repeat
from ticktape.infra.devstack.ports import free_port

CONFIG = """
[run]
mode = "replay"
data_dir = "{data}"
workers = 1

[source]
kind = "synthetic"

[source.synthetic]
symbols = {symbols}
rate = 10000.0
duration = "{seconds}s"
partitions = 2

[metrics]
enabled = false
"""


def run_processes(ticks: int, symbols: int, processes: int) -> float:
    """Ticks/s of one bounded run split over ``processes`` local processes."""
    with tempfile.TemporaryDirectory(prefix="ticktape-bench-cluster-") as tmp:
        data = Path(tmp) / "data"
        cfg = Path(tmp) / "job.toml"
        cfg.write_text(CONFIG.format(data=data, symbols=symbols, seconds=max(ticks // 10_000, 1)))
        base = [sys.executable, "-m", "ticktape.flows.cli.main", "run", "-c", str(cfg)]
        if processes == 1:
            commands = [base]
        else:
            addresses = ",".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
            commands = [[*base, "-i", str(i), "-a", addresses] for i in range(processes)]
        procs = [
            subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: S603 - our own argv
            for c in commands
        ]
        for proc in procs:
            _, err = proc.communicate(timeout=1800)
            if proc.returncode != 0:
                raise RuntimeError(f"bench run failed ({proc.returncode}): {err.decode()[-2000:]}")
        reports = [json.loads(p.read_text()) for p in sorted((data / "reports").glob("run-*.json"))]
        if len(reports) != processes:
            raise RuntimeError(f"expected {processes} run reports, found {len(reports)}")
        read = sum(int(r["accounting"]["total"]["read"]) for r in reports)
        return read / max(float(r["elapsed_s"]) for r in reports)


def cluster_scenario(ticks: int = 400_000, symbols: int = 500, repeats: int = 3) -> Measurement:
    """Median ticks/s of a two-process cluster and of one process, same feed."""
    # fresh processes every time, so no warm-up run
    one = repeat(lambda: run_processes(ticks, symbols, 1), repeats, warmup=0)
    two = repeat(lambda: run_processes(ticks, symbols, 2), repeats, warmup=0)
    return Measurement(
        scenario="cluster",
        unit="ticks/s",
        value=median(two),
        baseline_name="one process",
        baseline=median(one),
        samples=two,
        baseline_samples=one,
        extra={"ticks": ticks, "symbols": symbols, "processes": 2, "target_ratio": 1.7},
    )
