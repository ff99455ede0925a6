"""``[backtest]``: the strategy, its inputs and the simulated execution."""

from __future__ import annotations

from typing import Any

import msgspec

from ticktape.schemas.durations import Duration


class BacktestConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[backtest]`` (see README "Backtesting"); every key has a ``ticktape backtest`` flag.

    - ``strategy``: ``module:Class`` (a subclass of ``ticktape.flows.backtest.strategy.Strategy``);
      ``params``: its keyword arguments (``[backtest.params]``; ``-p name=value`` overrides).
    - inputs: ``trades`` (history files: freqtrade JSON, CSV, Kraken REST, Parquet),
      ``archive`` (replay the job's archive instead), ``candles`` (replay stored candles of
      ``interval`` from the candle store), ``quotes`` (CSV/Parquet top of book);
      ``symbols``/``start``/``end`` filter them (times: ns, YYYY-MM-DD or RFC 3339).
    - ``interval``: candles for ``on_candle`` (built from the trades unless ``candles``).
    - ``speed``: ``max`` or ``<n>x`` (1x = event time at wall-clock pace).
    - execution: ``cash`` (decimal text), ``latency``, ``slippage_bps``, ``maker_fee_bps``,
      ``taker_fee_bps``, ``participation`` (the largest share of a trade's or candle's
      volume that fills our orders), ``account``, ``venue``.
    - ``sample``: the equity sampling period (returns, Sharpe, drawdown use it).
    """

    strategy: str = "ticktape.flows.backtest.examples:MovingAverageCrossover"
    params: dict[str, Any] = {}
    trades: tuple[str, ...] = ()
    archive: bool = False
    candles: bool = False
    quotes: tuple[str, ...] = ()
    symbols: tuple[str, ...] = ()
    start: str = ""
    end: str = ""
    interval: Duration = Duration.parse("1m")
    speed: str = "max"
    cash: str = "10000"
    latency: Duration = Duration.parse("0s")
    slippage_bps: float = 0.0
    maker_fee_bps: float = 0.0
    taker_fee_bps: float = 0.0
    participation: float = 1.0
    account: str = "backtest"
    venue: str = "backtest"
    sample: Duration = Duration.parse("1m")

    def __post_init__(self) -> None:
        if not 0 < self.participation <= 1:
            raise ValueError(f"participation: expected a fraction in (0, 1], got {self.participation}")
        for name in ("slippage_bps", "maker_fee_bps", "taker_fee_bps"):
            value = getattr(self, name)
            if not -10_000 < value < 10_000:
                raise ValueError(f"{name}: expected basis points in (-10000, 10000), got {value}")
        if int(self.sample) <= 0 or int(self.interval) < 1_000_000_000 or int(self.interval) % 1_000_000_000:
            raise ValueError("sample: expected a duration > 0; interval: whole seconds >= 1s")
        speed = self.speed.strip().lower()
        if speed != "max" and not (speed.endswith("x") and _positive(speed[:-1])):
            raise ValueError(f"speed: expected max or <n>x (1x, 10x, 0.5x), got {self.speed!r}")


def _positive(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False


def speed_factor(speed: str) -> float:
    """0 for ``max``, else the factor of ``<n>x``."""
    speed = speed.strip().lower()
    return 0.0 if speed == "max" else float(speed[:-1])
