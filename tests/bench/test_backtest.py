"""Backtest scenarios with small sizes: the trade replay and the candle strategy."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.bench import check, record
from ticktape.infra.bench.backtest import (
    backtest_candles_scenario,
    backtest_scenario,
    random_trades,
    replay_once,
)

pytestmark = [pytest.mark.bench, pytest.mark.timeout(300)]


def test_backtest_replay(benchmark: Any) -> None:
    data = random_trades(50_000, 20)
    assert benchmark.pedantic(replay_once, args=(data,), rounds=3) > 0
    record(benchmark, check(backtest_scenario(trades=50_000, symbols=20, repeats=1), "backtest"))


def test_backtest_candles(benchmark: Any) -> None:
    m = check(
        benchmark.pedantic(backtest_candles_scenario, kwargs={"candles": 5_000, "repeats": 1}, rounds=1),
        "backtest-candles",
    )
    assert m.extra["full"] > 0
    record(benchmark, m)
