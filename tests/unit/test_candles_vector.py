"""The vectorized candle path equals the streaming engine bit for bit (no late data)."""

from __future__ import annotations

import random

import msgspec
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from tests.support import records
from tests.support.data import TRADES
from ticktape.flows.steps.candles import CandleConfig, CandleEngine
from ticktape.flows.steps.candles_vector import candles_from_table
from ticktape.schemas.durations import dec_hook
from ticktape.schemas.history import HistorySpec, open_history
from ticktape.schemas.records import Candle, Tick

SEC = 1_000_000_000


def streaming(ticks: list[Tick], intervals: tuple[str, ...] = ("1m", "5m", "1h")) -> list[Candle]:
    cfg = msgspec.convert({"intervals": list(intervals)}, CandleConfig, dec_hook=dec_hook)
    engine = CandleEngine(cfg, live=False)
    out: list[Candle] = []
    wmark = 0
    for t in ticks:
        wmark = max(wmark, t.ts_event)
        t.wmark = wmark
        engine.observe_watermark(t.src, wmark, out)
        assert engine.add(t, out)
    engine.flush(out)
    return out


def table(ticks: list[Tick]) -> pa.Table:
    cols = ("venue", "symbol", "price", "size", "side", "trade_id", "trade_no", "ts_event")
    return pa.table({c: [getattr(t, c) for t in ticks] for c in cols})


def same(a: list[Candle], b: list[Candle]) -> None:
    def key(c: Candle) -> tuple[object, ...]:
        return (c.venue, c.symbol, c.interval, c.start)

    left = sorted((msgspec.structs.replace(c, ts_final=0) for c in a), key=key)
    right = sorted((msgspec.structs.replace(c, ts_final=0) for c in b), key=key)
    assert left == right


def test_real_binance_trades_identical():
    rows, decode = open_history(TRADES / "XRP_ETH-trades.json.gz", HistorySpec(format="freqtrade"))
    ticks = [t for row, raw in rows for t in decode(raw, "xrp", row, 0, 0)]
    intervals = (60 * SEC, 300 * SEC, 3600 * SEC)
    vector = candles_from_table(table(ticks), intervals)
    assert len(vector) > 1000
    same(streaming(ticks), vector)


def test_many_symbols_ties_and_awkward_sizes_identical():
    rng = random.Random(5)
    ticks = []
    ts = 1_704_067_200 * SEC
    for i in range(20_000):
        ts += rng.choice((0, 0, 1, 137, SEC))  # equal timestamps: order by trade id
        sym = f"S{rng.randrange(40)}-USD"
        size = rng.choice((1e-9, 0.1, 3.3, 1e7, 123456.789)) * rng.random()
        price = rng.uniform(0.0001, 200_000)
        ticks.append(
            records.tick(
                venue="v",
                symbol=sym,
                price=price,
                size=size,
                side=rng.choice(("buy", "sell", "unknown")),
                trade_id=str(i),
                ts_event=ts,
                ts_recv=0,
                src="p",
                offset=i,
                trade_no=i,
            )
        )
    same(streaming(ticks), candles_from_table(table(ticks), (60 * SEC, 300 * SEC, 3600 * SEC)))


@given(
    st.lists(
        st.tuples(st.floats(1e-6, 1e6), st.floats(0, 1e6), st.integers(0, 10**12)), min_size=1, max_size=200
    )
)
def test_property_identical_on_arbitrary_values(rows):
    ts0 = 1_704_067_200 * SEC
    ticks = [
        records.tick(
            venue="v",
            symbol="A-B",
            price=p,
            size=s,
            side="buy",
            trade_id=str(i),
            ts_event=ts0 + dt,
            ts_recv=0,
            src="p",
            offset=i,
            trade_no=i,
        )
        for i, (p, s, dt) in enumerate(sorted(rows, key=lambda r: r[2]))
    ]
    same(streaming(ticks, ("1m",)), candles_from_table(table(ticks), (60 * SEC,)))


def dirty_stream(seed: int, n: int = 6000) -> list[Tick]:
    """Arrival order with duplicates, out-of-order and late trades on 2 partitions."""
    rng = random.Random(seed)
    ts0 = 1_704_067_200 * SEC
    clean = []
    for i in range(n):
        sym = f"S{i % 6}-USD"
        clean.append(
            records.tick(
                venue="v",
                symbol=sym,
                price=100 + rng.random(),
                size=rng.random() * 3,
                side=rng.choice(("buy", "sell")),
                trade_id=str(i // 6 + 1),
                ts_event=ts0 + i * 200_000_000,
                ts_recv=0,
                src=f"p{i % 6 % 2}",
                offset=i,
                trade_no=i // 6 + 1,
            )
        )
    arrival = []
    for t in clean:
        r = rng.random()
        if r < 0.03 and arrival:  # duplicate of a recent trade
            arrival.append(rng.choice(arrival[-20:]))
        if r > 0.97:  # late: arrives up to 10 minutes behind
            late = msgspec.structs.replace(
                t,
                ts_event=t.ts_event - rng.randrange(1, 600) * SEC,
                trade_id=f"{t.trade_id}",
                trade_no=t.trade_no,
            )
            arrival.append(late)
            continue
        arrival.append(t)
    # out of order within a few trades
    for i in range(0, len(arrival) - 3, 7):
        arrival[i], arrival[i + 2] = arrival[i + 2], arrival[i]
    return arrival


def streaming_shard(ticks: list[Tick], cfg: CandleConfig) -> list[Candle]:
    from ticktape.flows.steps.shard import ShardProcessor, ShardSettings
    from ticktape.schemas.validation import ValidationRules

    settings = ShardSettings(
        rules=ValidationRules(max_jump_pct=0.0, zscore_threshold=0.0), window=4096, reorder=256,
        contiguous_venues=frozenset(), stale_after=10**18, stale_overrides={}, live=False, candles=cfg,
    )  # fmt: skip
    proc = ShardProcessor(settings)
    wm: dict[str, int] = {}
    stamped = []
    for t in ticks:
        wm[t.src] = max(wm.get(t.src, 0), t.ts_event)
        stamped.append(msgspec.structs.replace(t, wmark=wm[t.src]))
    out = proc.process(stamped).candles + proc.flush().candles
    best: dict[tuple[object, ...], Candle] = {}
    for c in out:
        key = (c.venue, c.symbol, c.interval, c.start)
        if key not in best or c.revision > best[key].revision:
            best[key] = c
    return list(best.values())


def test_dirty_input_vector_equals_streaming():
    from ticktape.flows.steps.candles_vector import candles_with_admission
    from ticktape.schemas.durations import Duration

    cfg = CandleConfig(
        intervals=(Duration.parse("1m"), Duration.parse("5m")), revision_horizon=Duration.parse("3m")
    )
    for seed in (1, 2, 3):
        ticks = dirty_stream(seed)
        cols = ("venue", "symbol", "price", "size", "side", "trade_id", "trade_no", "ts_event", "src")
        tbl = pa.table({c: [getattr(t, c) for t in ticks] for c in cols})
        result = candles_with_admission(
            tbl,
            tuple(int(i) for i in cfg.intervals),
            grace_ns=int(cfg.grace),
            horizon_ns=int(cfg.revision_horizon),
            window=4096,
        )
        assert result is not None
        vector, adm = result
        assert adm.duplicates > 0
        assert adm.late_rejected > 0
        assert any(c.revision > 0 for c in vector)
        same(streaming_shard(ticks, cfg), vector)


def test_vwap_stays_within_low_and_high_for_prices_near_the_float_minimum():
    """Issue 13 item 14: price 1e-320 lost its notional to the fixed-point scale and the
    candle said vwap 0.0, below its low; both paths now keep vwap within [low, high]."""
    t0 = 1_704_067_200 * SEC
    prices = (1e-320, 3e-320, 2e-320)
    ticks = [
        Tick("v", "TINY-USD", p, 1.0, "buy", str(i + 1), t0 + i * SEC, 0, "p", i, 0, i + 1)
        for i, p in enumerate(prices)
    ]
    for candles in (streaming(ticks, ("1m",)), candles_from_table(table(ticks), (60 * SEC,))):
        (c,) = candles
        assert (c.low, c.high) == (1e-320, 3e-320)
        assert c.low <= c.vwap <= c.high


def test_a_watermark_exactly_at_a_window_end_plus_grace_closes_it_before_the_tick() -> None:
    """The candle watermark is the tick's watermark minus grace; a window closes when it
    *reaches* the window's end, so the tick whose watermark is exactly end + grace closes
    it first (and a later trade of that window is a revision, not part of the first
    emission)."""
    second = 1_000_000_000
    engine = CandleEngine(CandleConfig(intervals=(CandleConfig().intervals[0],)), live=False)
    t0 = 1_700_000_040 * second  # 20 s into a minute window [1_700_000_020 s, ...)
    start = t0 // (60 * second) * 60 * second
    end = start + 60 * second
    grace = int(CandleConfig().grace)

    def tick(n: int, ts: int, wmark: int) -> Tick:
        return records.tick(trade_id=str(n), ts_event=ts, wmark=wmark, src="p/0")

    out: list[Candle] = []
    assert engine.add(tick(1, t0, t0), out)
    assert out == []
    at_end = end + grace  # the watermark reaches the window's end exactly
    assert engine.add(tick(2, at_end, at_end), out)
    assert [(c.start, c.trades, c.revision) for c in out] == [(start, 1, 0)]
    out.clear()
    assert engine.add(tick(3, end - 1, at_end), out)  # late but inside the horizon
    assert [(c.start, c.trades, c.revision) for c in out] == [(start, 2, 1)]
