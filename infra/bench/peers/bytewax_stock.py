"""Scenario ``bytewax-stock``: ticktape's job against the same job written idiomatically
with Bytewax's stock operators, on the same synthetic messages in the same run.

The peer (:func:`build_peer_flow`, Bytewax 0.21.1, one worker, ``run_main`` like the
``flow`` scenario):

* ``op.input`` from a ``TestingSource`` over the raw messages, in batches of
  ``run.batch_size`` (what ticktape's in-memory source hands its flow);
* ``op.map`` decode: msgspec into a small ``Trade`` struct (the fastest stock choice; no
  validation, no dead letters: a malformed message would stop the peer);
* ``op.key_on`` by symbol, then dedupe with a stock ``op.stateful_map`` holding the
  symbol's highest trade id (a trade id at or below it is dropped as a duplicate, so an
  out-of-order trade is lost: ticktape keeps a reorder window and reports gaps), and
  ``op.filter_map_value`` dropping what it marked;
* three ``fold_window`` (``bytewax.operators.windowing``) with an ``EventClock`` on the
  trade's event time (``wait_for_system_duration`` = ticktape's 2 s grace) and a
  ``TumblingWindower`` of 1 m, 5 m and 1 h aligned to the epoch, folding
  open/high/low/close/volume/notional/trades in event-time order (``ordered=True``);
* ``op.merge`` of the three candle streams into one sink that keeps the candles in a
  list (a ``TestingSink``: cheaper than any of ticktape's four durable outputs).

ticktape's side is the whole job of the ``flow`` scenario (:func:`ticktape.infra.bench.flow.run_flow_once`:
validation, dedupe with gaps, exact candles with revisions, event log, cache, candle
Parquet, dead letters). The messages carry ``event_rate`` trades per second of event time
(1,000 by default, so the windows really close during the run: ~2 trades per symbol per
second at 500 symbols).

Measurement (a warm-up of each, then ``repeats`` rounds of ticktape and the peer in
turns): ``value`` = ticktape ticks/s, ``baseline`` = the peer's, so the ratio is
ticktape/peer (the goal: ahead, > 1). ``extra["agreement"]`` compares the candles of the
last repetition of each (:mod:`ticktape.infra.bench.peers.compare`: every window equal,
none missing or extra), ``extra["late"]`` counts what the peer's windows found late
(0 on this feed).
"""

from __future__ import annotations

import functools
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
import msgspec
from bytewax.dataflow import Dataflow
from bytewax.operators import KeyedStream
from bytewax.operators.windowing import EventClock, TumblingWindower, fold_window
from bytewax.testing import TestingSink, TestingSource, run_main

from ticktape.flows.config import RunConfig
from ticktape.flows.steps.candles import CandleConfig
from ticktape.infra.bench.common import Measurement, alternate, median, synthetic_messages
from ticktape.infra.bench.flow import run_flow_once
from ticktape.infra.bench.peers.compare import PeerCandle, agree, from_ticktape
from ticktape.schemas.records import Candle
from ticktape.sinks.candles.store import CandleStore

NS = 1_000_000_000
#: The intervals of the job (s): ticktape's default ``candles.intervals``.
INTERVALS_S = tuple(int(iv) // NS for iv in CandleConfig().intervals)
#: ticktape's default ``candles.grace``.
GRACE = timedelta(microseconds=CandleConfig().grace // 1000)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Trades per second of event time in the scenario's messages.
EVENT_RATE = 1_000.0


class Trade(msgspec.Struct, frozen=True):
    """The fields of a generic JSON tick the job uses (others are ignored)."""

    symbol: str
    price: float
    size: float
    ts_event: int
    trade_id: int = -1


_decode = msgspec.json.Decoder(Trade).decode


def trade_time(t: Trade) -> datetime:
    """The event clock's timestamp (aware UTC, microseconds)."""
    return EPOCH + timedelta(microseconds=t.ts_event // 1000)


def dedupe(last_id: int | None, t: Trade) -> tuple[int | None, Trade | None]:
    """``stateful_map`` mapper: the symbol's highest trade id so far; ``None`` downstream
    for a trade at or below it."""
    if last_id is not None and t.trade_id <= last_id:
        return last_id, None
    return t.trade_id, t


def _kept(t: Trade | None) -> Trade | None:
    return t


class Ohlcv:
    """``fold_window`` accumulator of one window."""

    __slots__ = ("close", "high", "low", "notional", "open", "trades", "volume")

    def __init__(self) -> None:
        self.open = self.high = self.low = self.close = 0.0
        self.volume = self.notional = 0.0
        self.trades = 0


def fold(acc: Ohlcv, t: Trade) -> Ohlcv:
    """Add one trade (``fold_window`` passes them in event-time order)."""
    price = t.price
    if acc.trades == 0:
        acc.open = acc.high = acc.low = price
    elif price > acc.high:
        acc.high = price
    elif price < acc.low:
        acc.low = price
    acc.close = price
    acc.volume += t.size
    acc.notional += price * t.size
    acc.trades += 1
    return acc


def merge(a: Ohlcv, b: Ohlcv) -> Ohlcv:
    """``fold_window`` merger (tumbling windows never merge; kept correct anyway)."""
    if b.trades == 0:
        return a
    if a.trades == 0:
        return b
    a.high, a.low, a.close = max(a.high, b.high), min(a.low, b.low), b.close
    a.volume, a.notional, a.trades = a.volume + b.volume, a.notional + b.notional, a.trades + b.trades
    return a


def to_candle(interval: int, item: tuple[str, tuple[int, Ohlcv]]) -> PeerCandle:
    """A closed window (``(symbol, (window id, accumulator))``) as a candle; the window
    id counts ``interval``-long windows since the epoch."""
    symbol, (window_id, acc) = item
    vwap = acc.notional / acc.volume if acc.volume > 0 else acc.close
    return PeerCandle(
        symbol, interval, window_id * interval * NS, acc.open, acc.high, acc.low, acc.close, acc.volume, vwap,
        acc.trades,
    )  # fmt: skip


def build_peer_flow(
    messages: list[bytes], out: list[PeerCandle], late: list[int], batch_size: int
) -> Dataflow:
    """The peer dataflow (see the module docstring); candles go to ``out``, one entry per
    late trade to ``late``."""
    flow = Dataflow("bench-bytewax-stock")
    raw = op.input("messages", flow, TestingSource(messages, batch_size))
    trades = op.map("decode", raw, _decode)
    keyed = op.key_on("by-symbol", trades, lambda t: t.symbol)
    marked = op.stateful_map("dedupe", keyed, dedupe)
    fresh: KeyedStream[Trade] = op.filter_map_value("drop-duplicates", marked, _kept)
    clock: EventClock[Trade] = EventClock(trade_time, wait_for_system_duration=GRACE)
    candles = []
    for interval in INTERVALS_S:
        windower = TumblingWindower(length=timedelta(seconds=interval), align_to=EPOCH)
        windows = fold_window(f"ohlcv-{interval}s", fresh, clock, windower, Ohlcv, fold, merge)
        candles.append(op.map(f"candle-{interval}s", windows.down, functools.partial(to_candle, interval)))
        op.inspect(f"late-{interval}s", windows.late, lambda _step, _item: late.append(1))
    op.output("sink", op.merge("candles", *candles), TestingSink(out))
    return flow


def run_peer(messages: list[bytes], batch_size: int) -> tuple[float, list[PeerCandle], int]:
    """Ticks/s of one run of the peer, its candles and how many trades it found late."""
    out: list[PeerCandle] = []
    late: list[int] = []
    flow = build_peer_flow(messages, out, late, batch_size)
    t0 = time.perf_counter()
    run_main(flow)  # type: ignore[no-untyped-call]
    return len(messages) / (time.perf_counter() - t0), out, len(late)


def run_ticktape(messages: dict[str, list[bytes]]) -> tuple[float, list[Candle]]:
    """Ticks/s of ticktape's whole job (the ``flow`` scenario's run) and its candles."""
    n = sum(len(m) for m in messages.values())
    with tempfile.TemporaryDirectory(prefix="ticktape-bench-peers-") as tmp:
        elapsed, stats = run_flow_once(messages, Path(tmp))
        if stats.totals().read != n:
            raise RuntimeError(f"ticktape read {stats.totals().read} of {n} messages")
        return n / elapsed, CandleStore(Path(tmp) / "candles").read()


def bytewax_stock_scenario(
    ticks: int = 200_000, symbols: int = 500, repeats: int = 3, event_rate: float = EVENT_RATE
) -> Measurement:
    """Median ticks/s of ticktape's job and of the stock-operator peer, same messages."""
    messages = synthetic_messages(ticks, symbols, rate=event_rate)
    raw = [m for msgs in messages.values() for m in msgs]
    batch_size = RunConfig().batch_size
    last: dict[str, Any] = {}

    def ours() -> float:
        rate, last["ticktape"] = run_ticktape(messages)
        return rate

    def theirs() -> float:
        rate, last["peer"], last["late"] = run_peer(raw, batch_size)
        return rate

    ticktape, peer = alternate(ours, theirs, repeats)  # in turns: the host's load drifts
    mine = from_ticktape(last["ticktape"])
    agreement = agree(mine, last["peer"])
    return Measurement(
        scenario="bytewax-stock",
        unit="ticks/s",
        value=median(ticktape),
        baseline_name="Bytewax stock operators (fold_window)",
        baseline=median(peer),
        samples=ticktape,
        baseline_samples=peer,
        extra={
            "ticks": len(raw),
            "symbols": symbols,
            "event_rate": event_rate,
            "intervals_s": list(INTERVALS_S),
            "candles": {"ticktape": len(mine), "peer": len(last["peer"])},
            "late": last["late"],
            "agreement": msgspec.to_builtins(agreement) | {"ok": agreement.ok},
        },
    )
