"""Performance metrics of a backtest: textbook formulas on the sampled equity curve and
the round-trip trades (plain Python floats; equity values come from exact accounting).

With equity samples ``E_0 .. E_n`` taken every ``period`` seconds and returns
``r_k = E_k / E_(k-1) - 1`` (k = 1..n), ``P = 365 * 86400 / period`` periods per year
(markets that trade every day), and ``Y = (t_n - t_0) / (365 days)``:

=====================  =======================================================================
total_return           ``E_n / E_0 - 1``
cagr                   ``(E_n / E_0) ** (1 / Y) - 1`` (None when ``Y == 0`` or ``E_n <= 0``)
volatility             ``stdev(r) * sqrt(P)`` (sample standard deviation, n - 1)
sharpe                 ``mean(r) / stdev(r) * sqrt(P)`` (risk-free rate 0; None when stdev is 0)
sortino                ``mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(P)`` (target 0; None without losses)
max_drawdown           ``max_k (1 - E_k / max_(j<=k) E_j)``
max_drawdown_duration  longest time (s) from a peak until equity is back at it (or the end)
win_rate               winning closed trades / closed trades (None without closed trades)
profit_factor          gross profit / gross loss of closed trades (None without a loss)
exposure               share of the sample periods that ended with a position
=====================  =======================================================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

_YEAR_S = 365 * 86_400


def _mean(xs: Sequence[float]) -> float:
    return math.fsum(xs) / len(xs)


def metrics(
    ts: Sequence[int],
    equity: Sequence[float],
    exposed: Sequence[bool],
    period_s: float,
    trade_pnls: Sequence[float],
) -> dict[str, Any]:
    """Every metric of the module doc (see there for the formulas)."""
    n = len(equity)
    out: dict[str, Any] = {
        "initial_equity": equity[0] if n else None, "final_equity": equity[-1] if n else None,
        "total_return": None, "cagr": None, "volatility": None, "sharpe": None, "sortino": None,
        "max_drawdown": 0.0, "max_drawdown_duration_s": 0.0, "exposure": None,
        "periods": max(n - 1, 0), "period_s": period_s,
    }  # fmt: skip
    if n:
        e0, en = equity[0], equity[-1]
        out["total_return"] = en / e0 - 1 if e0 else None
        years = (ts[-1] - ts[0]) / 1e9 / _YEAR_S
        if years > 0 and e0 > 0 and en > 0:
            out["cagr"] = (en / e0) ** (1 / years) - 1
        out["exposure"] = sum(exposed[1:]) / (n - 1) if n > 1 else (1.0 if exposed[0] else 0.0)
        dd, dur = drawdown(ts, equity)
        out["max_drawdown"], out["max_drawdown_duration_s"] = dd, dur
    if n > 2:
        r = [equity[k] / equity[k - 1] - 1 for k in range(1, n) if equity[k - 1]]
        ppy = _YEAR_S / period_s
        mu = _mean(r)
        sd = math.sqrt(math.fsum((x - mu) ** 2 for x in r) / (len(r) - 1)) if len(r) > 1 else 0.0
        out["volatility"] = sd * math.sqrt(ppy)
        out["sharpe"] = mu / sd * math.sqrt(ppy) if sd > 0 else None
        down = math.sqrt(math.fsum(min(x, 0.0) ** 2 for x in r) / len(r))
        out["sortino"] = mu / down * math.sqrt(ppy) if down > 0 else None
    wins = [p for p in trade_pnls if p > 0]
    losses = [p for p in trade_pnls if p < 0]
    out["win_rate"] = len(wins) / len(trade_pnls) if trade_pnls else None
    out["profit_factor"] = math.fsum(wins) / -math.fsum(losses) if losses else None
    out["trades"] = len(trade_pnls)
    return out


def drawdown(ts: Sequence[int], equity: Sequence[float]) -> tuple[float, float]:
    """``(max drawdown as a fraction, longest underwater time in seconds)``: underwater
    from a peak until the equity is back at or above it (or the end of the curve)."""
    peak, peak_ts, under = -math.inf, 0, False
    worst, longest = 0.0, 0
    for t, e in zip(ts, equity, strict=True):
        if e >= peak:
            if under:
                longest, under = max(longest, t - peak_ts), False
            peak, peak_ts = e, t
        else:
            under = True
            worst = max(worst, 1 - e / peak if peak > 0 else 0.0)
    if under:
        longest = max(longest, ts[-1] - peak_ts)
    return worst, longest / 1e9


def drawdown_series(equity: Sequence[float]) -> list[float]:
    """``1 - E_k / max_(j<=k) E_j`` for every sample (for the chart)."""
    out, peak = [], -math.inf
    for e in equity:
        peak = max(peak, e)
        out.append(1 - e / peak if peak > 0 else 0.0)
    return out
