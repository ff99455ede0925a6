"""Backtest metrics against their textbook formulas on a hand-computed fixture."""

from __future__ import annotations

import math

import pytest

from ticktape.flows.backtest.metrics import drawdown, drawdown_series, metrics

DAY = 86_400_000_000_000
TS = [i * DAY for i in range(5)]
EQUITY = [100.0, 110.0, 99.0, 121.0, 121.0]
EXPOSED = [False, True, True, True, False]
PNLS = [5.0, -2.0, 3.0, -1.0]


def test_the_fixture_by_hand() -> None:
    m = metrics(TS, EQUITY, EXPOSED, 86_400.0, PNLS)
    r = [0.1, -0.1, 22 / 99, 0.0]  # 110/100-1, 99/110-1, 121/99-1, 121/121-1
    mean = sum(r) / 4
    sd = math.sqrt(sum((x - mean) ** 2 for x in r) / 3)
    downside = math.sqrt((0.1**2) / 4)  # only -0.1 is below the 0 target
    assert m["total_return"] == pytest.approx(0.21)
    assert m["cagr"] == pytest.approx(1.21 ** (365 / 4) - 1)
    assert m["volatility"] == pytest.approx(sd * math.sqrt(365))
    assert m["sharpe"] == pytest.approx(mean / sd * math.sqrt(365))
    assert m["sortino"] == pytest.approx(mean / downside * math.sqrt(365))
    assert m["max_drawdown"] == pytest.approx(0.1)  # 99 after the 110 peak
    assert m["max_drawdown_duration_s"] == 2 * 86_400  # from day 1 (110) back above it on day 3
    assert m["win_rate"] == 0.5
    assert m["profit_factor"] == pytest.approx(8 / 3)
    assert m["exposure"] == 0.75  # 3 of the 4 periods ended with a position
    assert m["trades"] == 4
    assert (m["initial_equity"], m["final_equity"], m["periods"]) == (100.0, 121.0, 4)


def test_no_losses_no_trades_and_a_flat_curve_have_no_ratio_instead_of_infinity() -> None:
    m = metrics(TS, [100.0] * 5, [False] * 5, 86_400.0, [])
    assert (m["sharpe"], m["sortino"], m["win_rate"], m["profit_factor"]) == (None, None, None, None)
    assert m["total_return"] == 0.0
    assert m["max_drawdown"] == 0.0
    only_wins = metrics(TS, EQUITY, EXPOSED, 86_400.0, [1.0, 2.0])
    assert only_wins["profit_factor"] is None
    assert only_wins["win_rate"] == 1.0


def test_a_drawdown_that_never_recovers_lasts_until_the_end() -> None:
    assert drawdown(TS, [100.0, 90.0, 95.0, 80.0, 85.0]) == (pytest.approx(0.2), 4 * 86_400.0)
    assert drawdown_series([100.0, 50.0, 100.0, 150.0, 75.0]) == [0.0, 0.5, 0.0, 0.0, 0.5]
