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
from typing import Any

from ticktape.flows.backtest.strategy import Bar, Strategy, TradeTick


class NoOp(Strategy):
    def on_trade(self, trade: TradeTick) -> None:
        return None


class MovingAverageCrossover(Strategy):
    """Long-only SMA crossover on candle closes, per symbol (market orders).

    A cross is a change of ``fast SMA > slow SMA`` between two consecutive candles of the
    symbol (both averages over whole windows); the first candle with both averages only
    sets the state. The averages are compared exactly: closes are read as fixed-point
    integers (1e-9) and ``sum_fast * slow > sum_slow * fast`` is integer arithmetic, so
    no float rounding can invent or hide a cross (O(1) per candle).
    """

    def __init__(self, fast: int = 10, slow: int = 30, quantity: float | str = 1, symbol: str = "") -> None:
        super().__init__(fast=fast, slow=slow, quantity=quantity, symbol=symbol)
        if not 0 < fast < slow:
            raise ValueError(f"expected 0 < fast < slow, got fast={fast}, slow={slow}")
        self.fast, self.slow, self.quantity, self.symbol = fast, slow, quantity, symbol
        self.state: dict[str, list[Any]] = {}  # symbol -> [window, fast sum, slow sum, above]

    def on_candle(self, bar: Bar) -> None:
        sym = bar.symbol
        if self.symbol and sym != self.symbol:
            return
        st = self.state.get(sym)
        if st is None:
            st = self.state[sym] = [deque(), 0, 0, None]
        window: deque[int] = st[0]
        close = round(bar.close * 1e9)
        window.append(close)
        st[1] += close
        st[2] += close
        n = len(window)
        if n > self.fast:
            st[1] -= window[n - 1 - self.fast]
        if n > self.slow:
            st[2] -= window.popleft()
            n -= 1
        if n < self.slow:
            return
        above = st[1] * self.slow > st[2] * self.fast
        before = st[3]
        st[3] = above
        if before is None or above == before:
            return
        held = self.position(sym)
        if above and held <= 0:
            self.buy(sym, self.quantity)
        elif not above and held > 0:
            self.close(sym)


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
        if pending is not None and self.is_open(pending):
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
