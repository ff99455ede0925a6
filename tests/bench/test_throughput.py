"""Throughput scenarios with small sizes: flow, cluster, candles, backfill, loader.

The benchmarked call is the scenario's core (``rounds=3``); the scenario itself runs
once more for its baseline and ratio, which go into ``extra_info``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.support.bench import check, pedantic_scenario, record
from ticktape.flows.steps.candles import CandleConfig
from ticktape.infra.bench.backfill import backfill_scenario, fast_path, write_trades
from ticktape.infra.bench.candles import bench_ticks, candles_scenario, run_engine
from ticktape.infra.bench.cluster import cluster_scenario
from ticktape.infra.bench.common import synthetic_messages
from ticktape.infra.bench.flow import flow_scenario, run_flow_once
from ticktape.infra.bench.loader import loader_scenario

pytestmark = [pytest.mark.bench, pytest.mark.timeout(300)]


def test_flow(benchmark: Any, tmp_path: Path) -> None:
    messages = synthetic_messages(5_000, 50)
    dirs = iter(range(100))

    def fresh() -> tuple[tuple[Any, ...], dict[str, Any]]:
        path = tmp_path / f"run{next(dirs)}"
        path.mkdir()
        return (messages, path), {}

    elapsed, stats = benchmark.pedantic(run_flow_once, setup=fresh, rounds=3)
    assert elapsed > 0
    assert stats.totals().read == 5_000
    assert stats.accounting()["balanced"]
    m = check(flow_scenario(ticks=5_000, symbols=50, repeats=1), "flow")
    assert m.extra["latency_ms"]["recv_to_sink"]["p99_ms"] > 0
    record(benchmark, m)


def test_cluster(benchmark: Any) -> None:
    m = pedantic_scenario(benchmark, cluster_scenario, "cluster", ticks=40_000, symbols=50, repeats=1)
    assert m.extra["processes"] == 2


def test_candles(benchmark: Any) -> None:
    ticks = bench_ticks(20_000, 50)
    assert benchmark.pedantic(run_engine, args=(ticks, CandleConfig()), rounds=3) > 0
    record(benchmark, check(candles_scenario(ticks=20_000, symbols=50, repeats=1), "candles"))


def test_backfill(benchmark: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trades.parquet"
        assert write_trades(path, 20_000, 50) == 20_000
        assert benchmark.pedantic(fast_path, args=(path,), rounds=3) > 0
    m = check(backfill_scenario(ticks=20_000, symbols=50, repeats=1), "backfill")
    record(benchmark, m)


def test_loader(benchmark: Any) -> None:
    pedantic_scenario(benchmark, loader_scenario, "loader", rows=20_000, repeats=1)
