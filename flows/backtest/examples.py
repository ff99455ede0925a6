"""Example strategies that ship with ticktape (load them as ``module:Class``):

* ``ticktape.flows.backtest.examples:MovingAverageCrossover`` — on candles: long
  ``quantity`` when the fast simple moving average of closes crosses above the slow one,
  flat when it crosses back below;
* ``ticktape.flows.backtest.examples:ZScoreMeanReversion`` — on trades: the z-score of the
  trade price against the last ``window`` trades; buy below ``-entry``, sell above
  ``+entry`` (short only with ``allow_short``), close when it comes back within ``exit``;
* ``ticktape.flows.backtest.examples:NoOp`` — receives every trade and does nothing (the
  replay-speed benchmark).
"""

from __future__ import annotations

import math
from collections import deque

from ticktape.flows.backtest.strategy import Bar, Strategy, TradeTick


class NoOp(Strategy):
    def on_trade(self, trade: TradeTick) -> None:
        return None


class MovingAverageCrossover(Strategy):
    """Long-only SMA crossover on candle closes, per symbol (market orders).

    A cross is a change of ``fast SMA > slow SMA`` between two consecutive candles of the
    symbol (both averages over whole windows); the first candle with both averages only
    sets the state. SMAs are exact-rounded sums (``math.fsum``) over the window.
    """

    def __init__(self, fast: int = 10, slow: int = 30, quantity: float | str = 1, symbol: str = "") -> None:
        super().__init__(fast=fast, slow=slow, quantity=quantity, symbol=symbol)
        if not 0 < fast < slow:
            raise ValueError(f"expected 0 < fast < slow, got fast={fast}, slow={slow}")
        self.fast, self.slow, self.quantity, self.symbol = fast, slow, quantity, symbol
        self.closes: dict[str, deque[float]] = {}
        self.above: dict[str, bool] = {}

    def on_candle(self, bar: Bar) -> None:
        if self.symbol and bar.symbol != self.symbol:
            return
        closes = self.closes.get(bar.symbol)
        if closes is None:
            closes = self.closes[bar.symbol] = deque(maxlen=self.slow)
        closes.append(bar.close)
        if len(closes) < self.slow:
            return
        window = list(closes)
        fast = math.fsum(window[-self.fast :]) / self.fast
        slow = math.fsum(window) / self.slow
        above = fast > slow
        before = self.above.get(bar.symbol)
        self.above[bar.symbol] = above
        if before is None or above == before:
            return
        held = self.position(bar.symbol)
        if above and held <= 0:
            self.buy(bar.symbol, self.quantity)
        elif not above and held > 0:
            self.close(bar.symbol)


class ZScoreMeanReversion(Strategy):
    """Mean reversion on the trade price's z-score over the last ``window`` trades."""

    def __init__(
        self, window: int = 200, entry: float = 2.0, exit: float = 0.5, quantity: float | str = 1,
        allow_short: bool = False,
    ) -> None:  # fmt: skip
        super().__init__(window=window, entry=entry, exit=exit, quantity=quantity, allow_short=allow_short)
        if window < 2 or not 0 <= exit < entry:
            raise ValueError(f"expected window >= 2 and 0 <= exit < entry, got {window}, {exit}, {entry}")
        self.window, self.entry, self.exit = window, entry, exit
        self.quantity, self.allow_short = quantity, allow_short
        self.prices: dict[str, deque[float]] = {}
        self.pending: dict[str, str] = {}

    def on_trade(self, trade: TradeTick) -> None:
        sym, px = trade.symbol, trade.price
        prices = self.prices.get(sym)
        if prices is None:
            prices = self.prices[sym] = deque(maxlen=self.window)
        prices.append(px)
        if len(prices) < self.window:
            return
        pending = self.pending.get(sym)
        if pending is not None and pending in self.open_orders(sym):
            return
        mean = math.fsum(prices) / self.window
        var = math.fsum((p - mean) ** 2 for p in prices) / (self.window - 1)
        if var <= 0:
            return
        z = (px - mean) / math.sqrt(var)
        held = self.position(sym)
        oid = None
        if held == 0:
            if z < -self.entry:
                oid = self.buy(sym, self.quantity)
            elif z > self.entry and self.allow_short:
                oid = self.sell(sym, self.quantity)
        elif (held > 0 and z > -self.exit) or (held < 0 and z < self.exit):
            oid = self.close(sym)
        if oid is not None:
            self.pending[sym] = oid
