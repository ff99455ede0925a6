"""Scenarios ``backtest`` and ``backtest-candles``.

* ``backtest``: the event-driven replay of trades through a strategy whose ``on_trade``
  does nothing (``examples:NoOp``), in trades/s: the engine's trade loop with the
  simulated broker and equity sampling (every minute of event time), 50 symbols of
  random-walk trades. Baseline: a bare Python ``for`` over the same columns calling a
  no-op function per trade, the floor any Python strategy callback pays.
* ``backtest-candles``: the moving-average crossover (``examples:MovingAverageCrossover``,
  fast 10 / slow 30, 10 bps taker fee) over 1-minute random-walk candles of one symbol,
  in candles/s. The value is the simulation from candles in memory: the engine, the
  strategy, the simulated venue and every order through the order state machine into
  order events (what backtesting.py does, plus the events). Baseline: the backtesting.py
  library running the same strategy on the same candles (``Backtest.run``), the
  independent implementation of the cross-check tests. ``extra["full"]`` is the whole
  ``ticktape backtest`` path for scale: candles read from the Parquet candle store, the
  simulation, the event log written to SQLite, the projections folded from it and the
  report (no PNG), with its own ratio to the library.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ticktape.flows.backtest.broker import Execution, SimBroker
from ticktape.flows.backtest.data import MarketData, Trades, candles_from_store
from ticktape.flows.backtest.engine import Engine
from ticktape.flows.backtest.examples import MovingAverageCrossover, NoOp
from ticktape.flows.backtest.run import run_backtest
from ticktape.flows.config import from_dict
from ticktape.infra.bench.common import Measurement, median, repeat
from ticktape.schemas.orders.fixed import SCALE
from ticktape.schemas.records import Candle
from ticktape.sinks.candles.store import CandleStore

T0 = 1_700_000_000_000_000_000
MINUTE = 60_000_000_000


def random_trades(n: int, symbols: int, seed: int = 7) -> MarketData:
    rng = np.random.default_rng(seed)
    sym = rng.integers(0, symbols, n).astype(np.int32)
    steps = rng.normal(0, 0.0005, n)
    price = 100.0 * np.exp(np.cumsum(steps))
    ts = T0 + np.cumsum(rng.integers(1, 2_000_000, n)).astype(np.int64)
    trades = Trades(
        ts,
        sym,
        np.round(price, 6),
        np.round(rng.uniform(0.01, 5, n), 4),
        rng.choice([-1, 1], n).astype(np.int8),
    )
    return MarketData([f"S{i:03d}-USD" for i in range(symbols)], trades)


def replay_once(data: MarketData) -> float:
    broker = SimBroker(data.names, Execution(), 10_000 * SCALE)
    engine = Engine(data, NoOp(), broker, sample_ns=MINUTE)
    t0 = time.perf_counter()
    engine.run()
    elapsed = time.perf_counter() - t0
    assert engine.events == len(data.trades or ())
    return len(data.trades or ()) / elapsed


def plain_loop_once(data: MarketData) -> float:
    t = data.trades
    assert t is not None

    def noop(ts: int, sym: int, px: float, sz: float, side: int) -> None:
        return None

    ts_l, sym_l, px_l, sz_l, sd_l = (
        t.ts.tolist(),
        t.sym.tolist(),
        t.price.tolist(),
        t.size.tolist(),
        t.side.tolist(),
    )
    t0 = time.perf_counter()
    for ts, sym, px, sz, sd in zip(ts_l, sym_l, px_l, sz_l, sd_l, strict=True):
        noop(ts, sym, px, sz, sd)
    return len(ts_l) / (time.perf_counter() - t0)


def backtest_scenario(trades: int = 1_000_000, symbols: int = 50, repeats: int = 3) -> Measurement:
    data = random_trades(trades, symbols)
    ours = repeat(lambda: replay_once(data), repeats)
    plain = repeat(lambda: plain_loop_once(data), repeats)
    return Measurement(
        scenario="backtest", unit="trades/s", value=median(ours), baseline_name="bare Python loop + no-op call",
        baseline=median(plain), samples=ours, baseline_samples=plain,
        extra={"trades": trades, "symbols": symbols, "target_trades_per_s": 500_000},
    )  # fmt: skip


def random_candles(n: int, seed: int = 11) -> list[Candle]:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = np.abs(rng.normal(0, 0.0008, n)) * close
    high, low = np.maximum(open_, close) + spread, np.minimum(open_, close) - spread
    vol = rng.uniform(50, 500, n)
    out = []
    for i in range(n):
        start = T0 - T0 % MINUTE + i * MINUTE
        o, h, lo, c, v = (round(float(x), 6) for x in (open_[i], high[i], low[i], close[i], vol[i]))
        out.append(
            Candle(
                "bench",
                "BENCH-USD",
                60,
                start,
                start + MINUTE,
                o,
                h,
                lo,
                c,
                v,
                v * c,
                c,
                10,
                v / 2,
                v / 2,
                "1",
                "2",
                0,
                0,
            )
        )
    return out


def ours_candles_once(data_dir: Path, n: int) -> float:
    cfg = from_dict({
        "run": {"data_dir": str(data_dir)}, "metrics": {"enabled": False},
        "backtest": {"candles": True, "interval": "1m", "cash": "100000", "taker_fee_bps": 10.0,
                     "strategy": "ticktape.flows.backtest.examples:MovingAverageCrossover",
                     "params": {"fast": 10, "slow": 30, "quantity": 10}},
    })  # fmt: skip
    t0 = time.perf_counter()
    result = run_backtest(cfg, data_dir / "out", chart=False)
    elapsed = time.perf_counter() - t0
    assert result.report["fills"] > 0
    return n / elapsed


def library_once(frame: Any, n: int) -> float:
    import pandas as pd
    from backtesting import Backtest, Strategy

    def sma(values: Any, k: int) -> Any:
        return pd.Series(values).rolling(k).mean()

    class Crossover(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.fast = self.I(sma, self.data.Close, 10)
            self.slow = self.I(sma, self.data.Close, 30)

        def next(self) -> None:
            above, before = self.fast[-1] > self.slow[-1], self.fast[-2] > self.slow[-2]
            if above and not before and not self.position:
                self.buy(size=10)
            elif before and not above and self.position:
                self.position.close()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        stats = Backtest(frame, Crossover, cash=100_000, commission=0.001).run()
        elapsed = time.perf_counter() - t0
    assert stats["# Trades"] > 0
    return n / elapsed


def engine_candles_once(data: MarketData) -> float:
    broker = SimBroker(data.names, Execution(taker_fee_bps=10 * SCALE), 100_000 * SCALE)
    engine = Engine(data, MovingAverageCrossover(fast=10, slow=30, quantity=10), broker, sample_ns=MINUTE)
    t0 = time.perf_counter()
    engine.run()
    elapsed = time.perf_counter() - t0
    assert broker.fills
    assert not broker.dead
    return engine.events / elapsed


def backtest_candles_scenario(candles: int = 100_000, repeats: int = 3) -> Measurement:
    import pandas as pd

    bars = random_candles(candles)
    tmp = Path(tempfile.mkdtemp(prefix="ticktape-bench-bt-"))
    try:
        CandleStore(tmp / "candles").append(bars, writer="bench")
        frame = pd.DataFrame(
            {"Open": [c.open for c in bars], "High": [c.high for c in bars], "Low": [c.low for c in bars],
             "Close": [c.close for c in bars], "Volume": [c.volume for c in bars]},
            index=pd.to_datetime([c.start for c in bars], unit="ns"),
        )  # fmt: skip
        names, cols = candles_from_store(
            CandleStore(tmp / "candles"), interval_s=60, since=None, until=None, symbols=[]
        )
        data = MarketData(names, candles=cols, candle_symbols=frozenset(range(len(names))))
        ours = repeat(lambda: engine_candles_once(data), repeats)
        lib = repeat(lambda: library_once(frame, candles), repeats)
        full = repeat(lambda: ours_candles_once(tmp, candles), repeats)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Measurement(
        scenario="backtest-candles", unit="candles/s", value=median(ours), baseline_name="backtesting.py Backtest.run",
        baseline=median(lib), samples=ours, baseline_samples=lib,
        extra={"candles": candles, "strategy": "SMA 10/30", "full": median(full), "full_samples": full,
               "full_ratio": median(full) / median(lib)},
    )  # fmt: skip
