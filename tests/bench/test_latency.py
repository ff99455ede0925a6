"""Scenario ``latency`` with small sizes, and the backpressure property under overload.

Asserted: the rates and durations asked for, every sample of the measured interval
kept, consistent percentiles of both latencies (readable in the cache: recv->sink;
committed in the event log: recv->durable), each run's accounting balanced, and a
complete result.
Whether a target was met is reported (``meets_target``), not asserted: latency depends
on the machine (the bench report's job).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.bench import check, record, spy
from ticktape.infra.bench import latency as latency_mod
from ticktape.infra.bench.cli import print_results
from ticktape.infra.bench.latency import TARGETS_P99_MS, latency_scenario
from ticktape.infra.bench.paced import SUSTAINED, PacedResult, paced_run

pytestmark = [pytest.mark.bench, pytest.mark.timeout(300)]
KEYS = ("p50_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms")


def assert_balanced(run: PacedResult) -> None:
    """The run read ticks and every one read was accepted, rejected or a duplicate."""
    assert run.stats is not None
    accounting = run.stats.accounting()
    assert accounting["balanced"], accounting
    assert accounting["total"]["read"] >= run.read > 0  # the measured interval is part of the run


def test_latency(benchmark: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = spy(monkeypatch, latency_mod, "paced_run")
    m = benchmark.pedantic(
        latency_scenario,
        kwargs={"rates": (2_000.0, 10_000.0), "duration": 2.0, "warmup": 1.0, "symbols": 50},
        rounds=1,
        iterations=1,
    )
    check(m, "latency", repeats=1, symbols=50, duration_s=2.0, warmup_s=1.0)
    assert m.extra["repeats"] == 1
    assert m.baseline == 10_000.0  # the highest offered rate
    assert [r.offered for r in runs] == [2_000.0, 10_000.0]
    for run in runs:
        assert_balanced(run)
    rows = m.extra["rates"]
    assert [r["offered_per_s"] for r in rows] == [2_000.0, 10_000.0]
    for row, run in zip(rows, runs, strict=True):
        assert row["achieved_per_s"] > 0
        assert row["samples_lost"] == 0  # every tick of the measured interval, exactly
        assert isinstance(row["sustained"], bool)
        for stage in ("recv_to_sink", "recv_to_durable", "proc_to_sink", "due_to_sink"):
            pct = [row["latency_ms"][stage][k] for k in KEYS]
            assert pct == sorted(pct), (stage, pct)
            assert pct[-1] > 0
        (rep,) = row["repetitions"]
        assert rep["ticks_measured"] == run.read > 0
        assert rep["latency_ms"]["recv_to_sink"]["count"] > 0
        assert rep["latency_ms"]["recv_to_durable"]["count"] > 0  # committed in the event log
        assert rep["latency_ms"]["recv_to_durable"]["undecodable"] == 0
        assert rep["source_metrics_at_stop"]["ticktape_source_offered_rate"] == row["offered_per_s"]
        assert row["target_p99_ms"] == TARGETS_P99_MS.get(row["offered_per_s"])
    assert (rows[1]["target_p99_ms"], rows[1]["target_p999_ms"]) == (1.0, 3.0)
    assert isinstance(rows[1]["meets_target"], bool)
    assert rows[0]["meets_target"] is None  # no target at 2,000/s
    print_results([m])  # the table renders
    record(benchmark, m, rates=[{k: v for k, v in r.items() if k != "repetitions"} for r in rows])


def test_overload_queues_in_the_backlog_not_in_recv_to_sink() -> None:
    """Offered far above what one worker reads: what it cannot read waits in the source
    backlog (counted and exported), where ``due_to_sink`` sees it and ``recv_to_sink``
    (stamped when the source reads, after the queue) does not. The one premise about the
    machine, that a worker cannot read 400k ticks/s, is checked with its own message;
    nothing asserts how fast or slow the flow was."""
    run = paced_run(400_000.0, symbols=50, duration=3.0, warmup=1.0)
    assert_balanced(run)
    assert run.lost == 0
    assert run.mean_batch > 0  # ticks per poll that read any (read and polls are sampled apart)
    assert run.achieved < SUSTAINED * run.offered, f"premise: this machine kept up with {run.offered:,.0f}/s"
    assert run.backlog_max > 0  # messages due but not read ...
    assert run.metrics["ticktape_source_backlog_messages"] > 0  # ... and exported
    # The source reads a message no earlier than (one pacing step before) it is due, so
    # with a backlog due->sink is at least recv->sink at every percentile: the queueing
    # shows there, not in recv->sink.
    recv, due = run.latency["recv_to_sink"], run.latency["due_to_sink"]
    assert all(due[k] >= recv[k] for k in KEYS), (due, recv)
