"""The replay loop: market events in merge order -> broker -> strategy; equity samples.

Three loops share one contract (the third, candles only, is the first's twin):

* :meth:`Engine._trades_loop` — trades only (no candles or quotes needed by the
  strategy), unpaced: a ``zip`` over Python lists of columns; per trade it compares two
  ints, stores the last price, and calls ``on_trade`` with the one reused
  :class:`~ticktape.flows.backtest.strategy.TradeTick` (no allocation). This is the
  path the ``backtest`` bench measures.
* :meth:`Engine._mixed_loop` — candles, quotes and trades interleaved (and pacing).

Per event, in this order: equity samples due before it are taken (so a sample at
boundary ``b`` shows the state after every event before ``b``), the broker activates and
cancels what is due, the event updates the last price and is matched against working
orders, then the strategy sees it. Pacing (``speed`` 1x, 10x, ...) sleeps so that event
time advances ``speed`` times faster than the clock (clock and sleep are injected);
``max`` never sleeps. Same data, same strategy, same settings: the same orders, fills
and samples, bit for bit.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ticktape.flows.backtest.broker import SimBroker
from ticktape.flows.backtest.data import CANDLE, QUOTE, MarketData, merged_order
from ticktape.flows.backtest.strategy import Bar, QuoteTick, Strategy, TradeTick, overrides
from ticktape.schemas.orders.fixed import SCALE2

_SIDE_WORDS = {1: "buy", -1: "sell", 0: "unknown"}


class Samples:
    """Equity at every sample boundary: ``ts`` (ns), equity (float), exposed (position != 0)."""

    def __init__(self) -> None:
        self.ts: list[int] = []
        self.equity: list[float] = []
        self.exposed: list[bool] = []


class Engine:
    """One backtest run over ``data`` (see the module doc)."""

    def __init__(
        self,
        data: MarketData,
        strategy: Strategy,
        broker: SimBroker,
        *,
        sample_ns: int,
        speed: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.data = data
        self.strategy = strategy
        self.broker = broker
        self.sample_ns = sample_ns
        self.speed = speed
        self.clock, self.sleep = clock, sleep
        self.samples = Samples()
        self.events = 0
        strategy._broker = broker
        first, _ = data.span
        self.start = first - first % sample_ns
        self._next_sample = self.start

    def run(self) -> Samples:
        strategy, broker = self.strategy, self.broker
        first, last = self.data.span
        broker.now = first
        strategy.on_start()
        d = self.data
        only_trades = d.candles is None and d.quotes is None and d.trades is not None
        only_candles = d.trades is None and d.quotes is None and d.candles is not None
        if only_trades and not self.speed:
            self._trades_loop()
        elif only_candles and not self.speed:
            self._candles_loop()
        else:
            self._mixed_loop()
        broker.now = last
        strategy.on_end()
        broker.finish(last)
        self._sample_until(last, final=True)
        return self.samples

    def _sample_until(self, ts: int, *, final: bool = False) -> int:
        """Take the samples due at or before ``ts``; the next boundary."""
        b = self.broker
        nxt, s = self._next_sample, self.samples
        if nxt <= ts:
            exposed = b.open_positions > 0
            eq = (b.equity18() if exposed else b.cash18) / SCALE2
            step = self.sample_ns
            while nxt <= ts:
                s.ts.append(nxt)
                s.equity.append(eq)
                s.exposed.append(exposed)
                nxt += step
        if final and (not s.ts or s.ts[-1] < ts):  # the end of the replay, between boundaries
            s.ts.append(ts)
            s.equity.append(b.equity18() / SCALE2)
            s.exposed.append(b.open_positions > 0)
        self._next_sample = nxt
        return nxt

    def _trades_loop(self) -> None:
        t = self.data.trades
        assert t is not None
        broker, strategy = self.broker, self.strategy
        on_trade = strategy.on_trade if overrides(strategy, "on_trade") else None
        names, working, last = self.broker.names, broker.working, broker.last
        tick = TradeTick()
        side_words = [_SIDE_WORDS[s] for s in (-1, 0, 1)]
        sides = (t.side + 1).tolist()
        nxt = self._next_sample
        n = 0
        for ts, sym, px, sz, sd in zip(
            t.ts.tolist(), t.sym.tolist(), t.price.tolist(), t.size.tolist(), sides, strict=True
        ):
            if ts >= nxt:
                nxt = self._sample_until(ts)
            if ts >= broker.next_at:
                broker.advance(ts)
            last[sym] = px
            if working[sym]:
                broker.now = ts
                broker.on_trade(ts, sym, px, sz)
            if on_trade is not None:
                broker.now = ts
                tick.ts, tick.symbol, tick.price, tick.size, tick.side = (
                    ts,
                    names[sym],
                    px,
                    sz,
                    side_words[sd],
                )
                on_trade(tick)
            n += 1
        self.events += n

    def _candles_loop(self) -> None:
        c = self.data.candles
        assert c is not None
        broker, strategy = self.broker, self.strategy
        on_candle = strategy.on_candle if overrides(strategy, "on_candle") else None
        names, working, last = broker.names, broker.working, broker.last
        match = [i in self.data.candle_symbols for i in range(len(names))]
        bar = Bar()
        bar.interval = c.interval
        nxt = self._next_sample
        order = np.lexsort((np.arange(len(c)), c.sym, c.ts))  # the merge order (module doc)
        columns = (c.ts, c.sym, c.start, c.open, c.high, c.low, c.close, c.volume, c.trades)
        for ts, sym, start, o, h, lo, cl, v, n in zip(*(col[order].tolist() for col in columns), strict=True):
            if ts >= nxt:
                nxt = self._sample_until(ts)
            if ts >= broker.next_at:
                broker.advance(ts)
            broker.now = ts
            last[sym] = cl
            if working[sym] and match[sym]:
                broker.on_candle(sym, start, o, h, lo, v)
            if on_candle is not None:
                bar.ts, bar.symbol, bar.start, bar.open, bar.high, bar.low, bar.close = (
                    ts,
                    names[sym],
                    start,
                    o,
                    h,
                    lo,
                    cl,
                )
                bar.volume, bar.trades = v, n
                on_candle(bar)
        self.events += len(c)

    def _mixed_loop(self) -> None:
        d, broker, strategy = self.data, self.broker, self.strategy
        ts_all, kinds, syms, rows = merged_order(d)
        on_trade = strategy.on_trade if overrides(strategy, "on_trade") else None
        on_candle = strategy.on_candle if overrides(strategy, "on_candle") else None
        on_quote = strategy.on_quote if overrides(strategy, "on_quote") else None
        names, working, last = broker.names, broker.working, broker.last
        tick, bar, quote = TradeTick(), Bar(), QuoteTick()
        cols = _columns(d)
        candle_match = [i in d.candle_symbols for i in range(len(names))]
        interval = d.candles.interval if d.candles is not None else 0
        nxt = self._next_sample
        pace = self.speed > 0
        t0_event, t0_wall = int(ts_all[0]) if len(ts_all) else 0, self.clock()
        for ts, kind, sym, row in zip(
            ts_all.tolist(), kinds.tolist(), syms.tolist(), rows.tolist(), strict=True
        ):
            if pace:
                due = t0_wall + (ts - t0_event) / 1e9 / self.speed
                wait = due - self.clock()
                if wait > 0:
                    self.sleep(wait)
            if ts >= nxt:
                nxt = self._sample_until(ts)
            if ts >= broker.next_at:
                broker.advance(ts)
            broker.now = ts
            if kind == CANDLE:
                c = cols["candle"]
                last[sym] = c[4][row]
                if candle_match[sym] and working[sym]:
                    broker.on_candle(sym, c[0][row], c[1][row], c[2][row], c[3][row], c[5][row])
                if on_candle is not None:
                    bar.ts, bar.symbol, bar.interval, bar.start = ts, names[sym], interval, c[0][row]
                    bar.open, bar.high, bar.low, bar.close, bar.volume, bar.trades = (
                        c[1][row], c[2][row], c[3][row], c[4][row], c[5][row], c[6][row],
                    )  # fmt: skip
                    on_candle(bar)
            elif kind == QUOTE:
                q = cols["quote"]
                bid, ask = q[0][row], q[1][row]
                if bid > 0 and ask > 0:
                    last[sym] = (bid + ask) / 2
                if working[sym]:
                    broker.on_quote(ts, sym, bid, ask, q[2][row], q[3][row])
                if on_quote is not None:
                    quote.ts, quote.symbol, quote.bid, quote.ask, quote.bid_size, quote.ask_size = (
                        ts, names[sym], bid, ask, q[2][row], q[3][row],
                    )  # fmt: skip
                    on_quote(quote)
            else:
                tr = cols["trade"]
                px, sz = tr[0][row], tr[1][row]
                last[sym] = px
                if working[sym] and not candle_match[sym]:
                    broker.on_trade(ts, sym, px, sz)
                if on_trade is not None:
                    tick.ts, tick.symbol, tick.price, tick.size, tick.side = (
                        ts,
                        names[sym],
                        px,
                        sz,
                        _SIDE_WORDS[tr[2][row]],
                    )
                    on_trade(tick)
        self.events += len(ts_all)


def _columns(d: MarketData) -> dict[str, list[list[float]] | list[list[int]] | list[list[object]]]:
    out: dict[str, list[list[float]] | list[list[int]] | list[list[object]]] = {}
    if d.candles is not None:
        c = d.candles
        out["candle"] = [c.start.tolist(), c.open.tolist(), c.high.tolist(), c.low.tolist(), c.close.tolist(),
                         c.volume.tolist(), c.trades.tolist()]  # fmt: skip
    if d.quotes is not None:
        q = d.quotes
        out["quote"] = [q.bid.tolist(), q.ask.tolist(), q.bid_size.tolist(), q.ask_size.tolist()]
    if d.trades is not None:
        t = d.trades
        out["trade"] = [t.price.tolist(), t.size.tolist(), np.asarray(t.side, np.int64).tolist()]
    return out
