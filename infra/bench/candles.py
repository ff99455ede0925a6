"""Scenario ``candles``: the candle engine on synthetic ticks at three intervals.

Baseline: a plain Python loop computing OHLCV per (symbol, interval, window) in dicts,
with float sums and no watermark, late-data or revision handling. The ratio is the cost
of market-grade semantics (order-defined open/close, exact sums, watermarks, revisions).
"""

from __future__ import annotations

import time

from ticktape.flows.steps.candles import CandleConfig, CandleEngine
from ticktape.infra.bench.common import Measurement, median, repeat, synthetic_messages
from ticktape.schemas.decoding import BatchDecoder
from ticktape.schemas.records import Candle, Tick
from ticktape.schemas.validation import TickValidator, ValidationRules
from ticktape.schemas.venues import generic


def bench_ticks(n: int, symbols: int) -> list[Tick]:
    messages = synthetic_messages(n, symbols)["bench/0"]
    decoder = BatchDecoder(
        "bench/0", generic.decode_tick, TickValidator(ValidationRules(), check_clock=False)
    )
    return decoder.decode((i, raw, 0, 0) for i, raw in enumerate(messages)).ticks


def run_engine(ticks: list[Tick], cfg: CandleConfig) -> float:
    engine = CandleEngine(cfg, live=False)
    out: list[Candle] = []
    t0 = time.perf_counter()
    for t in ticks:
        engine.observe_watermark(t.src, t.wmark, out)
        engine.add(t, out)
    engine.flush(out)
    return time.perf_counter() - t0


def run_plain(ticks: list[Tick], intervals: tuple[int, ...]) -> float:
    """Naive OHLCV: windows keyed in a dict, first/last by arrival, float sums."""
    t0 = time.perf_counter()
    windows: dict[tuple[str, int, int], list[float]] = {}
    for t in ticks:
        for iv in intervals:
            key = (t.symbol, iv, t.ts_event // iv * iv)
            w = windows.get(key)
            if w is None:
                windows[key] = [t.price, t.price, t.price, t.price, t.size, t.price * t.size, 1.0]
            else:
                w[1] = max(w[1], t.price)
                w[2] = min(w[2], t.price)
                w[3] = t.price
                w[4] += t.size
                w[5] += t.price * t.size
                w[6] += 1
    return time.perf_counter() - t0


def candles_scenario(ticks: int = 200_000, symbols: int = 500, repeats: int = 3) -> Measurement:
    data = bench_ticks(ticks, symbols)
    cfg = CandleConfig()
    intervals = tuple(int(i) for i in cfg.intervals)
    engine = repeat(lambda: len(data) / run_engine(data, cfg), repeats)
    plain = repeat(lambda: len(data) / run_plain(data, intervals), repeats)
    return Measurement(
        scenario="candles",
        unit="ticks/s",
        value=median(engine),
        baseline_name="plain Python dict OHLCV",
        baseline=median(plain),
        samples=engine,
        baseline_samples=plain,
        extra={"ticks": len(data), "symbols": symbols, "intervals": [i // 1_000_000_000 for i in intervals]},
    )
