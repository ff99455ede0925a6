"""Throughput scenarios with small sizes: flow, cluster, candles, backfill, loader.

The benchmarked call is the scenario's core (``rounds=3``); the scenario itself runs
once more for its baseline and ratio, which go into ``extra_info``. What is asserted is
what a run shows whatever the machine: the sizes, the counts and the accounting, and a
complete result (see :mod:`tests.support.bench`); how fast is the bench report's job.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.support.bench import check, pedantic_scenario, record, spy
from ticktape.flows.steps.candles import CandleConfig, CandleEngine
from ticktape.infra.bench import backfill as backfill_mod
from ticktape.infra.bench import candles as candles_mod
from ticktape.infra.bench import flow as flow_mod
from ticktape.infra.bench.backfill import backfill_scenario, fast_path, write_trades
from ticktape.infra.bench.candles import bench_ticks, candles_scenario, run_engine
from ticktape.infra.bench.cluster import cluster_scenario
from ticktape.infra.bench.common import synthetic_messages
from ticktape.infra.bench.flow import flow_scenario, run_flow_once
from ticktape.infra.bench.loader import loader_scenario
from ticktape.infra.observability.metrics import RunStats
from ticktape.schemas.records import Candle

pytestmark = [pytest.mark.bench, pytest.mark.timeout(300)]
SEC = 1_000_000_000
INTERVALS_S = tuple(int(i) // SEC for i in CandleConfig().intervals)


def assert_every_tick_accounted(stats: RunStats, ticks: int) -> None:
    """Every tick read was accepted (the synthetic feed is clean) and each partition's
    accounting balances (read = accepted + rejected + duplicate)."""
    accounting = stats.accounting()
    assert accounting["balanced"], accounting
    assert accounting["total"] == {"read": ticks, "accepted": ticks, "rejected": 0, "duplicate": 0}


def trades_per_interval(candles: list[Candle]) -> Counter[int]:
    """Trades in the latest revision of every window, summed per interval (s)."""
    latest: dict[tuple[str, str, int, int], Candle] = {}
    for c in candles:
        key = (c.venue, c.symbol, c.interval, c.start)
        if key not in latest or c.revision > latest[key].revision:
            latest[key] = c
    return Counter({iv: sum(c.trades for c in latest.values() if c.interval == iv) for iv in INTERVALS_S})


def test_flow(benchmark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    messages = synthetic_messages(5_000, 50)
    dirs = iter(range(100))

    def fresh() -> tuple[tuple[Any, ...], dict[str, Any]]:
        path = tmp_path / f"run{next(dirs)}"
        path.mkdir()
        return (messages, path), {}

    elapsed, stats = benchmark.pedantic(run_flow_once, setup=fresh, rounds=3)
    assert elapsed > 0
    assert_every_tick_accounted(stats, 5_000)
    runs = spy(monkeypatch, flow_mod, "run_flow_once")  # the scenario's own runs
    m = check(flow_scenario(ticks=5_000, symbols=50, repeats=1), "flow", repeats=1, ticks=5_000, symbols=50)
    assert len(runs) == 2  # the warm-up and one repetition
    for _, run_stats in runs:
        assert_every_tick_accounted(run_stats, 5_000)
    # every accepted tick reached the cache sink: one recv->sink sample each
    assert m.extra["latency_ms"]["recv_to_sink"]["count"] == 5_000
    record(benchmark, m)


def test_cluster(benchmark: Any) -> None:
    # The scenario fails unless each process of each run wrote its run report.
    m = pedantic_scenario(benchmark, cluster_scenario, "cluster", ticks=40_000, symbols=50, repeats=1)
    assert (m.extra["ticks"], m.extra["symbols"], m.extra["processes"]) == (40_000, 50, 2)


def test_candles(benchmark: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    outputs: list[list[Candle]] = []

    class Recording(CandleEngine):  # what each timed run of run_engine emitted
        def flush(self, out: list[Candle]) -> None:
            super().flush(out)
            outputs.append(out)

    monkeypatch.setattr(candles_mod, "CandleEngine", Recording)
    ticks = bench_ticks(20_000, 50)
    assert len(ticks) == 20_000  # every synthetic message decoded and valid
    assert benchmark.pedantic(run_engine, args=(ticks, CandleConfig()), rounds=3) > 0
    m = check(
        candles_scenario(ticks=20_000, symbols=50, repeats=1), "candles", repeats=1, ticks=20_000, symbols=50,
        intervals=list(INTERVALS_S),
    )  # fmt: skip
    assert len(outputs) == 3 + 2  # the benchmark's rounds, then the scenario's warm-up and repetition
    for out in outputs:  # every tick is in exactly one window per interval
        assert trades_per_interval(out) == dict.fromkeys(INTERVALS_S, 20_000)
    record(benchmark, m)


def test_backfill(benchmark: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    results = spy(monkeypatch, backfill_mod, "candles_with_admission")  # the fast path's candles
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trades.parquet"
        assert write_trades(path, 20_000, 50) == 20_000
        assert benchmark.pedantic(fast_path, args=(path,), rounds=3) > 0
    m = check(backfill_scenario(ticks=20_000, symbols=50, repeats=1), "backfill", repeats=1, rows=20_000)
    assert m.extra["intervals_s"] == [60, 300, 3600]
    assert m.baseline in (m.extra["polars"], m.extra["duckdb"])  # the faster of the two
    assert m.extra["streaming_path"] > 0
    assert len(results) == 3 + 2  # the benchmark's rounds, then the scenario's warm-up and repetition
    for result in results:
        assert result is not None
        candles, admission = result
        assert admission.accepted.all()  # in order: every row admitted
        assert Counter({iv: sum(c.trades for c in candles if c.interval == iv) for iv in (60, 300, 3600)}) == (
            dict.fromkeys((60, 300, 3600), 20_000)
        )  # fmt: skip
    record(benchmark, m)


def test_loader(benchmark: Any) -> None:
    m = pedantic_scenario(benchmark, loader_scenario, "loader", rows=20_000, repeats=1)
    assert m.extra["rows"] == 20_000
    dq = m.extra["dq"]
    assert dq["balanced"], dq  # rows read = loaded + rejected + duplicates resolved
    assert dq["rows_loaded"] == dq["expected_loaded"]  # exactly the generator's survivors
    assert sum(dq["rejected"].values()) > 0  # the generated file is dirty on purpose
    assert dq["duplicates_resolved"] > 0
    assert set(m.extra["samples"]) == {"csv", "csv_baseline", "parquet", "parquet_baseline"}
    assert all(len(s) == 1 for s in m.extra["samples"].values())
