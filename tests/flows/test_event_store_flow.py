"""The event store on a real run: the live flow writes the embedded event log
(ticktape.flows.wiring.make_outputs), the snapshotter runs, and EventStore.state_at at many
instants matches a state computed directly from the run's price updates, candles and
events (collected by TestingSinks beside the event log)."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import msgspec
import pytest
from bytewax.testing import TestingSink, TestingSource, run_main

from tests.support import records
from tests.support.flows import config
from ticktape.flows import wiring
from ticktape.flows.live.dataflow import build_flow
from ticktape.schemas.decoding import BatchDecoder
from ticktape.schemas.records import (
    Candle,
    DeadLetter,
    Event,
    EventType,
    PriceUpdate,
    TickBatch,
    aggregate_of,
)
from ticktape.schemas.validation import TickValidator, ValidationRules
from ticktape.schemas.venues import generic
from ticktape.sinks.cache import embedded as cache_mod
from ticktape.sinks.eventlog.snapshots import snapshot_all
from ticktape.sinks.eventlog.state import AggregateState
from ticktape.sinks.eventlog.store import EventStore

T0 = 1_704_067_200_000_000_000  # 2024-01-01
S = 1_000_000_000
SYMBOLS = ("S0-USD", "S1-USD", "S2-USD")


def tick(symbol: str, trade_id: int, price: float, ts: int, size: float = 1.0) -> bytes:
    return records.trade_message(
        venue="synthetic", symbol=symbol, price=price, size=size, side="buy", trade_id=trade_id, ts_event=ts
    )


def messages() -> list[bytes]:
    """15 minutes of 3 symbols with a gap, a silence (stale), late ticks (revisions and
    a LateTick), a price jump, an outlier (anomaly) and an undecodable message."""
    rng = random.Random(9)
    out: list[tuple[int, bytes]] = []  # (arrival time, message)
    held: list[tuple[int, bytes]] = []
    for k, sym in enumerate(SYMBOLS):
        px, ts, trade_id = 100.0 * (k + 1), T0, 0
        while ts < T0 + 900 * S:
            ts += rng.randint(S // 4, S)
            trade_id += 1
            px *= 1 + rng.uniform(-0.001, 0.001)
            if sym == "S2-USD" and T0 + 300 * S < ts < T0 + 400 * S:
                continue  # silent: goes stale
            if sym == "S1-USD" and trade_id in (100, 101, 102):
                continue  # a gap
            size = rng.choice((0.5, 1.0, 2.5))
            price = px * (1.08 if sym == "S1-USD" and trade_id == 400 else 1.0)  # an outlier
            price *= 3 if sym == "S0-USD" and trade_id == 600 else 1  # a price jump: rejected
            msg = tick(sym, trade_id, price, ts, size)
            if sym == "S0-USD" and T0 + 440 * S < ts < T0 + 445 * S:
                held.append((ts + 60 * S, msg))  # a minute late: candle revisions
            elif sym == "S0-USD" and T0 + 100 * S < ts < T0 + 101 * S:
                held.append((ts + 700 * S, msg))  # beyond the revision horizon: LateTick
            else:
                out.append((ts, msg))
    out += held
    out.append((T0 + 5 * S, b'{"venue": "synthetic", "symbol": "S0-USD", "pri'))
    out.sort(key=lambda item: item[0])
    return [m for _, m in out]


def batches(msgs: list[bytes]) -> list[TickBatch]:
    decoder = BatchDecoder("flow/0", generic.decode_tick, TickValidator(ValidationRules(), check_clock=False))
    return [
        decoder.decode((i + k, raw, 0, 0) for k, raw in enumerate(msgs[i : i + 300]))
        for i in range(0, len(msgs), 300)
    ]


def expected(
    agg: str, at: int, updates: list[PriceUpdate], candles: list[Candle], events: list[Event]
) -> dict[str, object]:
    """The state at ``at`` straight from the run's outputs (no fold code involved)."""
    ups = sorted(
        (u for u in updates if aggregate_of(u.venue, u.symbol) == agg and u.ts_event <= at),
        key=lambda u: u.seq,
    )
    evs = sorted((e for e in events if e.aggregate == agg and e.ts_event <= at), key=lambda e: e.seq)
    best: dict[int, Candle] = {}
    for c in candles:
        if aggregate_of(c.venue, c.symbol) == agg and c.end <= at:
            cur = best.get(c.interval)
            if cur is None or (c.start, c.revision) > (cur.start, cur.revision):
                best[c.interval] = c
    gaps = [msgspec.json.decode(e.payload) for e in evs if e.type == EventType.SEQUENCE_GAP]
    flags = [e.type for e in evs if e.type in (EventType.SYMBOL_STALE, EventType.PRICE_UPDATED)]
    last = ups[-1] if ups else None
    return {
        "events": len(evs),
        "last_seq": evs[-1].seq if evs else 0,
        "price_updates": len(ups),
        "last": (last.price, last.size, last.trade_id, last.ts_event, last.seq) if last else None,
        "volume": pytest.approx(sum(u.size for u in ups)),
        "candles": best,
        "gaps": (len(gaps), sum(g["count"] for g in gaps)),
        "stale": bool(flags) and flags[-1] == EventType.SYMBOL_STALE,
        "anomalies": sum(e.type == EventType.ANOMALY for e in evs),
        "dead_letters": dict(
            Counter(msgspec.json.decode(e.payload)["code"] for e in evs if e.type == EventType.DEAD_LETTER)
        ),
        "late_ticks": sum(e.type == EventType.LATE_TICK for e in evs),
    }


def observed(s: AggregateState) -> dict[str, object]:
    return {
        "events": s.events,
        "last_seq": s.last_seq,
        "price_updates": s.price_updates,
        "last": (s.price, s.size, s.trade_id, s.price_ts_event, s.price_seq) if s.price is not None else None,
        "volume": s.volume,
        "candles": s.candles,
        "gaps": (s.gaps, s.missing),
        "stale": s.stale,
        "anomalies": s.anomalies,
        "dead_letters": s.dead_letters,
        "late_ticks": s.late_ticks,
    }


def test_state_at_matches_the_run_outputs(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        candles={"intervals": ["1m", "5m"], "revision_horizon": "5m"},
        dedupe={"stale_after": "30s"},
        eventlog={"partitions": 2},
    )
    outputs = wiring.make_outputs(cfg)
    raw_events: list[tuple[str, list[Event]]] = []
    raw_prices: list[tuple[str, list[PriceUpdate]]] = []
    raw_candles: list[tuple[str, list[Candle]]] = []
    raw_dead: list[tuple[str, list[DeadLetter]]] = []
    outputs.events.append(TestingSink(raw_events))
    outputs.prices.append(TestingSink(raw_prices))
    outputs.candles.append(TestingSink(raw_candles))
    outputs.dead_letters.append(TestingSink(raw_dead))
    try:
        run_main(build_flow(cfg, source=TestingSource(batches(messages())), outputs=outputs))
    finally:
        cache_mod.release(wiring.cache_path(cfg))
    events = [e for _, b in raw_events for e in b]
    updates = [u for _, b in raw_prices for u in b]
    candles = [c for _, b in raw_candles for c in b]
    types = Counter(e.type for e in events)
    for typ in (EventType.SEQUENCE_GAP, EventType.SYMBOL_STALE, EventType.CANDLE_REVISED, EventType.LATE_TICK,
                EventType.DEAD_LETTER, EventType.ANOMALY):  # fmt: skip
        assert types[typ] > 0, (typ, types)
    results = snapshot_all(wiring.events_dir(cfg), every=25)
    assert sum(r.snapshots for r in results.values()) > 100
    aggs = sorted({e.aggregate for e in events})
    assert "source:flow/0" in aggs
    rng = random.Random(1)
    times = sorted({e.ts_event for e in events})
    instants = [T0 - 1, T0 + 320 * S, T0 + 445 * S, T0 + 505 * S, times[-1], *rng.sample(times, 25)]
    instants += [c.end for c in rng.sample(candles, 10)]
    with EventStore(wiring.events_dir(cfg)) as store:
        stats = store.stats()
        assert stats["events"] == len(events)
        assert stats["snapshots"] == sum(r.snapshots for r in results.values())
        assert all(p["tainted"] == 0 for p in stats["partitions"])  # snapshots are used, not bypassed
        for agg in aggs:
            stored = [e.event_id for e in store.replay(agg)]
            assert stored == [e.event_id for e in sorted(events, key=lambda e: e.seq) if e.aggregate == agg]
            for at in instants:
                assert observed(store.state_at(agg, at)) == expected(agg, at, updates, candles, events), (
                    agg,
                    at,
                )
        s2 = store.state_at(aggregate_of("synthetic", "S2-USD"), T0 + 390 * S)
        assert s2.stale  # silent since 300 s
        assert not store.state_at(aggregate_of("synthetic", "S2-USD"), T0 + 500 * S).stale
