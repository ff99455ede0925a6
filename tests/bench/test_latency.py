"""Scenario ``latency`` with small sizes, and the backpressure property under overload."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.bench import check, record
from ticktape.infra.bench.cli import print_results
from ticktape.infra.bench.latency import latency_scenario
from ticktape.infra.bench.paced import paced_run

pytestmark = [pytest.mark.bench, pytest.mark.timeout(300)]
KEYS = ("p50_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms")


def test_latency(benchmark: Any) -> None:
    m = benchmark.pedantic(
        latency_scenario,
        kwargs={"rates": (2_000.0, 10_000.0), "duration": 2.0, "warmup": 1.0, "symbols": 50},
        rounds=1,
        iterations=1,
    )
    check(m, "latency")
    assert m.baseline == 10_000.0
    rows = m.extra["rates"]
    assert [r["offered_per_s"] for r in rows] == [2_000.0, 10_000.0]
    for row in rows:
        assert row["achieved_per_s"] > 0
        assert row["samples_lost"] == 0  # every tick of the measured interval, exactly
        for stage in ("recv_to_sink", "proc_to_sink", "due_to_sink"):
            pct = [row["latency_ms"][stage][k] for k in KEYS]
            assert pct == sorted(pct), (stage, pct)
            assert pct[-1] > 0
        rep = row["repetitions"][0]
        assert rep["latency_ms"]["recv_to_sink"]["count"] > 0
        assert rep["source_metrics_at_stop"]["ticktape_source_offered_rate"] == row["offered_per_s"]
    assert rows[1]["target_p99_ms"] == 1.0
    assert isinstance(rows[1]["meets_target"], bool)
    print_results([m])  # the table renders
    record(benchmark, m, rates=[{k: v for k, v in r.items() if k != "repetitions"} for r in rows])


def test_overload_grows_the_backlog_not_the_latency() -> None:
    """Offered far above what the flow can do: the backlog grows, recv->sink does not."""
    run = paced_run(400_000.0, symbols=50, duration=3.0, warmup=1.0)
    assert run.achieved < 0.9 * run.offered
    assert run.backlog_end > 50_000  # messages due but not read
    assert run.metrics["ticktape_source_backlog_messages"] > 50_000  # ... and exported
    assert run.mean_batch > 1_000  # polls read full batches (batch_size 2000)
    recv, due = run.latency["recv_to_sink"], run.latency["due_to_sink"]
    assert recv["p99_ms"] < 2_000  # bounded by one batch of work, not by the backlog
    assert due["max_ms"] > recv["max_ms"]  # the queueing shows in due->sink
