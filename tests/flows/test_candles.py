"""Candle correctness (issue 3): real data vs an independent computation, order and
batching independence, late data, quiet symbols, replay stalls, bounded memory."""

from __future__ import annotations

import random
import time
from datetime import timedelta

import msgspec
import polars as pl
import pytest
from bytewax.testing import TestingSource

from tests.support import records
from tests.support.data import TRADES
from tests.support.flows import config, run_collect
from ticktape.connectors.files.history import FileSource, FileSourceConfig
from ticktape.flows.steps.candles import CandleConfig, CandleEngine
from ticktape.schemas.decoding import BatchDecoder
from ticktape.schemas.history import HistorySpec, open_history
from ticktape.schemas.records import Candle, DLCode, EventType, Tick, TickBatch
from ticktape.schemas.validation import TickValidator, ValidationRules
from ticktape.schemas.venues import generic

XRP = TRADES / "XRP_ETH-trades.json.gz"
MIN, SEC = 60_000_000_000, 1_000_000_000
NO_JUMP = {"max_jump_pct": 0.0, "zscore_threshold": 0.0}


def xrp_ticks() -> list[Tick]:
    rows, decode = open_history(XRP, HistorySpec(format="freqtrade"))
    return [t for row, raw in rows for t in decode(raw, "xrp", row, 0, 0)]


def polars_candles(ticks: list[Tick], interval_ns: int) -> dict[int, dict[str, float]]:
    """Independent OHLCV: polars group-by on (ts_event, trade_no) order."""
    df = pl.DataFrame(
        {
            "ts": [t.ts_event for t in ticks],
            "no": [t.trade_no for t in ticks],
            "price": [t.price for t in ticks],
            "size": [t.size for t in ticks],
        }
    ).sort(["ts", "no"])
    out = (
        df.with_columns(
            (pl.col("ts") // interval_ns * interval_ns).alias("start"),
            (pl.col("price") * pl.col("size")).alias("notional"),
        )
        .group_by("start", maintain_order=True)
        .agg(
            pl.col("price").first().alias("open"),
            pl.col("price").max().alias("high"),
            pl.col("price").min().alias("low"),
            pl.col("price").last().alias("close"),
            pl.col("size").sum().alias("volume"),
            pl.col("notional").sum().alias("notional"),
            pl.len().alias("trades"),
        )
    )
    return {row["start"]: row for row in out.iter_rows(named=True)}


def tick_batches(ticks: list[Tick], batch_size: int, src: str = "t/0") -> list[TickBatch]:
    """Re-encode ticks as generic JSON and decode them like a source partition would."""
    decoder = BatchDecoder(
        src, generic.decode_tick, TickValidator(ValidationRules(**NO_JUMP), check_clock=False)
    )
    raws = [
        records.trade_message(
            venue=t.venue,
            symbol=t.symbol,
            price=t.price,
            size=t.size,
            side=t.side,
            trade_id=t.trade_id,
            ts_event=t.ts_event,
        )
        for t in ticks
    ]
    return [
        decoder.decode((s + i, r, 0, 0) for i, r in enumerate(raws[s : s + batch_size]))
        for s in range(0, len(raws), batch_size)
    ]


def ticks_source(ticks: list[Tick], batch_size: int, src: str = "t/0") -> TestingSource:
    return TestingSource(tick_batches(ticks, batch_size, src))


def candle_cfg(tmp_path, **candles: object):
    return config(tmp_path, candles={"intervals": ["1m", "5m"], **candles}, validation=NO_JUMP)


def latest(candles):
    best = {}
    for c in candles:
        key = (c.venue, c.symbol, c.interval, c.start)
        if key not in best or c.revision > best[key].revision:
            best[key] = c
    return best


def assert_candles_match_polars(
    candles: list[Candle], ticks: list[Tick], interval_s: int
) -> tuple[dict[int, Candle], dict[int, dict[str, float]]]:
    """The ``interval_s`` candles equal :func:`polars_candles` window by window (OHLC and
    trades exactly, sums to 1e-9); returns both by window start."""
    expected = polars_candles(ticks, interval_s * SEC)
    got = {c.start: c for c in candles if c.interval == interval_s}
    assert set(got) == set(expected)
    for start, e in expected.items():
        c = got[start]
        assert (c.open, c.high, c.low, c.close, c.trades) == (
            e["open"],
            e["high"],
            e["low"],
            e["close"],
            e["trades"],
        )
        assert c.volume == pytest.approx(e["volume"], rel=1e-9)
        assert c.notional == pytest.approx(e["notional"], rel=1e-9)
    return got, expected


def test_real_binance_candles_match_polars(tmp_path):
    ticks = xrp_ticks()
    cfg = config(tmp_path, candles={"intervals": ["1m", "5m"]})
    source = FileSource(FileSourceConfig(paths=(str(XRP),)), batch_size=777)
    out = run_collect(cfg, source)
    assert all(c.revision == 0 for c in out.candles)  # ordered input: nothing late
    for interval_s in (60, 300):
        got, expected = assert_candles_match_polars(out.candles, ticks, interval_s)
        for start, e in expected.items():
            assert got[start].vwap == pytest.approx(e["notional"] / e["volume"], rel=1e-9)
            assert got[start].end == start + interval_s * SEC
        assert sum(c.trades for c in got.values()) == len(ticks)


def shuffled_within(ticks: list[Tick], max_shift_ns: int, seed: int) -> list[Tick]:
    """Reorder so that no tick arrives after a tick more than ``max_shift_ns`` later."""
    rng = random.Random(seed)
    keyed = sorted(ticks, key=lambda t: t.ts_event + rng.randrange(max_shift_ns))
    return keyed


@pytest.mark.parametrize("workers", [1, 2])
def test_order_batching_and_workers_do_not_change_candles(tmp_path, workers):
    ticks = xrp_ticks()[:4000]
    reference = run_collect(candle_cfg(tmp_path / "ref"), ticks_source(ticks, 1000)).candles
    assert reference
    assert all(c.revision == 0 for c in reference)
    ref = {k: msgspec.structs.replace(c, ts_final=0) for k, c in latest(reference).items()}
    for seed, batch in ((1, 1), (2, 37), (3, 4000)):
        mixed = shuffled_within(ticks, 2 * SEC, seed)  # grace is 2s: nothing is late
        got = run_collect(
            candle_cfg(tmp_path / f"s{seed}"), ticks_source(mixed, batch), workers=workers
        ).candles
        assert all(c.revision == 0 for c in got)
        assert {k: msgspec.structs.replace(c, ts_final=0) for k, c in latest(got).items()} == ref


def test_late_ticks_revise_within_horizon_and_dead_letter_beyond(tmp_path):
    ticks = xrp_ticks()[:3000]
    grace, horizon = 2 * SEC, 5 * MIN
    # late trades: a few seconds to 20 minutes behind the trade they follow
    lags = ((45 * SEC, 700), (90 * SEC, 1000), (4 * MIN, 1800), (6 * MIN, 2200), (20 * MIN, 2500))
    late = [
        (
            at,
            records.tick(
                venue="binance",
                symbol="XRP-ETH",
                price=0.0015 + k * 1e-5,
                size=7.0,
                side="buy",
                trade_id=f"late-{k}",
                ts_event=ticks[at].ts_event - lag,
                ts_recv=0,
                src="t/0",
                offset=0,
            ),
        )
        for k, (lag, at) in enumerate(lags)
    ]
    stream = list(ticks)
    for at, t in sorted(late, key=lambda x: x[0], reverse=True):
        stream.insert(at + 1, t)
    # the semantics, computed independently: which windows each late tick revises
    expected_revised: set[tuple[int, int]] = set()
    expected_changed: set[tuple[int, int]] = set()
    expected_rejected = 0
    for at, t in late:
        wm = max(x.ts_event for x in ticks[: at + 1]) - grace
        windows = [(iv, t.ts_event // (iv * SEC) * iv * SEC) for iv in (60, 300)]
        closed = [(iv, s) for iv, s in windows if s + iv * SEC <= wm]
        if any(wm - (s + iv * SEC) >= horizon for iv, s in closed):
            expected_rejected += 1
        else:
            expected_revised.update(closed)
            expected_changed.update(windows)  # open windows take the tick without a revision
    assert expected_rejected >= 1
    assert len(expected_revised) >= 3
    on_time = run_collect(candle_cfg(tmp_path / "clean", revision_horizon="5m"), ticks_source(ticks, 500))
    out = run_collect(candle_cfg(tmp_path, revision_horizon="5m"), ticks_source(stream, 500))
    revisions = [c for c in out.candles if c.revision > 0]
    assert {(c.interval, c.start) for c in revisions} == expected_revised
    assert all(c.revision == 1 for c in revisions)  # exactly one revision per late tick and window
    late_dl = [d for d in out.dead if d.code == DLCode.LATE_TICK]
    assert len(late_dl) == expected_rejected
    assert all("revision horizon" in d.message for d in late_dl)
    types = [e.type for e in out.events]
    assert types.count(EventType.LATE_TICK) == expected_rejected
    assert types.count(EventType.CANDLE_REVISED) == len(expected_revised)
    clean, dirty = latest(on_time.candles), latest(out.candles)
    changed = {
        k
        for k in dirty
        if k not in clean
        or msgspec.structs.replace(clean[k], ts_final=0)
        != msgspec.structs.replace(dirty[k], ts_final=0, revision=0)
    }
    assert {(k[2], k[3]) for k in changed} == expected_changed  # nothing else changed
    for k in changed:
        c, d = clean.get(k), dirty[k]
        if c is not None:
            assert d.trades == c.trades + 1
            assert d.volume == pytest.approx(c.volume + 7.0)
            assert d.high >= c.high
            assert d.low <= c.low


def test_quiet_symbol_closes_in_live_mode_after_idle_close(tmp_path):
    now = time.time_ns()
    start = now - now % SEC
    ticks = [
        records.tick(
            venue="v",
            symbol="QUIET-USD",
            price=10.0,
            size=1.0,
            side="buy",
            trade_id=str(i + 1),
            ts_event=start + i * 1000,
            ts_recv=now,
            src="live/0",
            offset=i,
            trade_no=i + 1,
            wmark=start + i * 1000,
        )
        for i in range(3)
    ]
    batch = records.tick_batch(src="live/0", ticks=ticks, dead=[], n_read=3, wmark=ticks[-1].ts_event)
    cfg = config(
        tmp_path, run={"mode": "live"}, candles={"intervals": ["1s"], "grace": "100ms", "idle_close": "300ms"}
    )
    t0 = time.time_ns()
    out = run_collect(
        cfg, TestingSource([batch, TestingSource.PAUSE(timedelta(seconds=3.5)), TestingSource.EOF()])
    )
    assert len(out.candles) == 1
    c = out.candles[0]
    assert c.trades == 3
    assert c.revision == 0
    # closed by the wall clock during the pause (not by end of input, 3.5 s later)
    assert c.ts_final - t0 < 3.0 * SEC


def test_replay_stall_loses_no_on_time_tick(tmp_path):
    ticks = xrp_ticks()[:2000]
    batches: list[object] = list(tick_batches(ticks, 250))
    stalled = [*batches[:4], TestingSource.PAUSE(timedelta(seconds=2.5)), *batches[4:]]
    cfg = candle_cfg(tmp_path, idle_close="200ms", grace="1s")  # replay mode: the wall clock is never used
    out = run_collect(cfg, TestingSource(stalled))
    assert not [d for d in out.dead if d.code == DLCode.LATE_TICK]
    assert all(c.revision == 0 for c in out.candles)
    assert sum(c.trades for c in out.candles if c.interval == 60) == len(ticks)


def test_fill_empty_windows_carry_the_previous_close(tmp_path):
    t0 = 1_704_067_200 * SEC
    ticks = [
        records.tick(
            venue="v",
            symbol="A-USD",
            price=10.0,
            size=1.0,
            side="buy",
            trade_id="1",
            ts_event=t0 + 5 * SEC,
            ts_recv=0,
            src="f/0",
            offset=0,
            trade_no=1,
        ),
        records.tick(
            venue="v",
            symbol="A-USD",
            price=11.0,
            size=1.0,
            side="buy",
            trade_id="2",
            ts_event=t0 + 4 * MIN + 5 * SEC,
            ts_recv=0,
            src="f/0",
            offset=1,
            trade_no=2,
        ),
    ]
    cfg = config(tmp_path, candles={"intervals": ["1m"], "fill_empty": True}, validation=NO_JUMP)
    out = run_collect(cfg, ticks_source(ticks, 10))
    by_start = {c.start: c for c in out.candles}
    assert sorted(by_start) == [t0 + k * MIN for k in range(5)]
    for k in (1, 2, 3):
        empty = by_start[t0 + k * MIN]
        assert (empty.open, empty.high, empty.low, empty.close, empty.volume, empty.trades) == (
            10.0,
            10.0,
            10.0,
            10.0,
            0.0,
            0,
        )
    assert by_start[t0 + 4 * MIN].open == 11.0


def test_closed_candle_state_is_bounded_over_a_long_run():
    engine = CandleEngine(CandleConfig(revision_horizon=CandleConfig().revision_horizon), live=False)
    out: list = []
    sizes = []
    t = 1_704_067_200 * SEC
    wmark = 0
    for i in range(200_000):  # ~55 hours of 1-second trades over 5 symbols
        t += SEC
        wmark = max(wmark, t)
        tick = records.tick(
            venue="v", symbol=f"S{i % 5}-USD", price=100.0, size=1.0, side="buy", trade_id=str(i), ts_event=t,
            ts_recv=0, src="p", offset=i, trade_no=i, wmark=wmark,
        )  # fmt: skip
        engine.observe_watermark("p", wmark, out)
        assert engine.add(tick, out)
        if i % 20_000 == 19_999:
            sizes.append(engine.state_size())
            out.clear()
    open_windows = {s[0] for s in sizes}
    closed_windows = {s[1] for s in sizes}
    assert max(open_windows) <= 5 * 3 * 2  # at most current + one in grace per series
    assert max(closed_windows) - min(closed_windows) <= 5 * 3  # flat, not growing
    assert max(closed_windows) <= 5 * (5 + 1 + 1) + 5 * 3
