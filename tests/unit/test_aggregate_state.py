"""ticktape.sinks.eventlog.state: the fold of an aggregate's events, type by type."""

from __future__ import annotations

import random
from functools import reduce

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support import records
from tests.support.events import T0, S, aggregate_events, candle, dead, price, simple
from ticktape.schemas.records import DLCode, Event, EventType
from ticktape.sinks.eventlog.state import (
    AggregateState,
    Gap,
    StateBuilder,
    apply,
    decode_state,
    encode_state,
    fold,
    state_json,
)

AGG = "BTC-USDT@binance"


def test_empty_state() -> None:
    s = fold([])
    assert s == AggregateState()
    assert s.price is None
    assert s.events == s.price_updates == s.gaps == s.other == 0
    assert s.candles == {}
    assert not s.stale


def test_price_updates_set_last_price_and_sum_volume() -> None:
    s = fold([price(AGG, 1, T0, 100.0, 0.5, 7), price(AGG, 2, T0 + S, 101.5, 1.25, 8)])
    assert s.aggregate == AGG
    assert (s.price, s.size, s.side, s.trade_id) == (101.5, 1.25, "sell", "8")
    assert (s.price_ts_event, s.price_seq) == (T0 + S, 8)
    assert s.price_updates == 2
    assert s.volume == 1.75
    assert (s.events, s.last_seq, s.last_ts_event) == (2, 2, T0 + S)


def test_an_older_tick_later_in_seq_is_still_the_last_price() -> None:
    s = fold([price(AGG, 1, T0 + 5 * S, 100.0, 1.0, 1), price(AGG, 2, T0, 99.0, 1.0, 2)])
    assert s.price == 99.0
    assert s.last_ts_event == T0


def test_candles_last_per_interval_and_revisions() -> None:
    m = 60 * S
    events = [
        candle(AGG, 1, 60, T0, 0, 10.0),
        candle(AGG, 2, 60, T0 + m, 0, 11.0),
        candle(AGG, 3, 300, T0, 0, 50.0),
        candle(AGG, 4, 60, T0, 1, 12.0),  # revision of an older window: not the last candle
        candle(AGG, 5, 60, T0 + m, 1, 13.0),  # revision of the last window: replaces it
        candle(AGG, 6, 60, T0 + m, 1, 14.0),  # same revision again: ignored
        candle(AGG, 7, 60, T0 + m, 0, 15.0),  # lower revision: ignored
    ]
    s = fold(events)
    assert set(s.candles) == {60, 300}
    assert (s.candles[60].start, s.candles[60].revision, s.candles[60].close) == (T0 + m, 1, 13.0)
    assert s.candles[300].close == 50.0
    assert (s.candles_closed, s.candle_revisions) == (4, 3)
    newer = fold([candle(AGG, 8, 60, T0 + 2 * m, 0, 16.0)], s)
    assert (newer.candles[60].start, newer.candles[60].revision) == (T0 + 2 * m, 0)


def test_gaps_symbol_and_source() -> None:
    g1 = {"venue": "binance", "symbol": "BTC-USDT", "first_missing": 5, "last_missing": 7, "count": 3}
    g2 = {"venue": "binance", "symbol": "BTC-USDT", "first_missing": 20, "last_missing": 20, "count": 1}
    s = fold(
        [simple(AGG, 1, T0, EventType.SEQUENCE_GAP, g1), simple(AGG, 2, T0 + S, EventType.SEQUENCE_GAP, g2)]
    )
    assert (s.gaps, s.missing) == (2, 4)
    assert s.last_gap == Gap(first_missing=20, last_missing=20, count=1, ts_event=T0 + S, kind="trade_id")
    src = "source:trades/0"
    off = {"src": "trades/0", "first_missing": 10, "last_missing": 19, "count": 10, "kind": "offset"}
    s = fold([simple(src, 1, T0, EventType.SEQUENCE_GAP, off), dead(src, 2, T0, DLCode.DECODE_ERROR)])
    assert s.aggregate == src
    assert s.last_gap is not None
    assert s.last_gap.kind == "offset"
    assert s.missing == 10
    assert s.dead_letters == {DLCode.DECODE_ERROR: 1}
    assert s.price is None


def test_stale_set_by_symbol_stale_cleared_by_next_price_only() -> None:
    stale = simple(AGG, 2, T0 + 60 * S, EventType.SYMBOL_STALE, {"last_ts_event": T0})
    s = fold([price(AGG, 1, T0, 1.0, 1.0, 1), stale])
    assert s.stale
    assert s.stale_since == T0 + 60 * S
    s = fold([simple(AGG, 3, T0, EventType.ANOMALY, {"zscore": 5.0}), dead(AGG, 4, T0, DLCode.PRICE_JUMP)], s)
    assert s.stale  # other events do not clear it
    s = apply(s, price(AGG, 5, T0 + 61 * S, 1.0, 1.0, 2))
    assert not s.stale
    assert s.stale_since == T0 + 60 * S  # when it last went stale


def test_anomalies_dead_letters_by_code_late_ticks() -> None:
    late = msgspec.structs.replace(dead(AGG, 5, T0, DLCode.LATE_TICK), type=EventType.LATE_TICK)
    events = [
        simple(AGG, 1, T0, EventType.ANOMALY, {"price": 1.0, "zscore": 7.5, "trade_id": "1"}),
        dead(AGG, 2, T0, DLCode.PRICE_JUMP),
        dead(AGG, 3, T0, DLCode.PRICE_JUMP),
        dead(AGG, 4, T0, DLCode.BAD_PRICE),
        late,
    ]
    s = fold(events)
    assert s.anomalies == 1
    assert s.dead_letters == {DLCode.PRICE_JUMP: 2, DLCode.BAD_PRICE: 1}
    assert s.late_ticks == 1


def malformed(ident: str, typ: str, seq: int, ts: int, payload: bytes) -> Event:
    return records.event(
        event_id=ident,
        type=typ,
        aggregate=AGG,
        seq=seq,
        ts_event=ts,
        ts_logged=0,
        payload=payload,
        causation="",
    )


def test_unknown_types_and_malformed_payloads_never_raise() -> None:
    events = [
        simple(AGG, 1, T0, "Mystery", {"a": 1}),
        simple(AGG, 2, T0, EventType.SNAPSHOT, {"b": 2}),
        malformed("x", EventType.PRICE_UPDATED, 3, T0, b"{not json"),
        malformed("y", EventType.CANDLE_CLOSED, 4, T0, b'{"an": "object"}'),
        malformed("z", EventType.DEAD_LETTER, 5, T0, b"[1, 2]"),
        malformed("w", EventType.SEQUENCE_GAP, 6, T0 + 1, b""),
    ]
    s = fold(events)
    assert (s.other, s.malformed) == (2, 4)
    assert (s.events, s.last_seq, s.last_ts_event) == (6, 6, T0 + 1)
    assert s.price is None
    assert s.candles == {}


def test_events_of_another_aggregate_are_refused() -> None:
    s = fold([price(AGG, 1, T0, 1.0, 1.0, 1)])
    with pytest.raises(ValueError, match="ETH-USD@kraken"):
        apply(s, price("ETH-USD@kraken", 1, T0, 1.0, 1.0, 1))


def test_apply_never_mutates_its_input() -> None:
    s = fold([dead(AGG, 1, T0, DLCode.BAD_PRICE), candle(AGG, 2, 60, T0, 0, 1.0)])
    before = msgspec.msgpack.encode(s)
    apply(s, dead(AGG, 3, T0, DLCode.BAD_PRICE))
    apply(s, candle(AGG, 4, 60, T0 + 60 * S, 0, 2.0))
    assert msgspec.msgpack.encode(s) == before
    assert s.dead_letters == {DLCode.BAD_PRICE: 1}


def test_builder_round_trip_and_msgpack_encoding() -> None:
    s = fold(aggregate_events(AGG, 300, random.Random(1)))
    assert StateBuilder(s).freeze() == s
    assert decode_state(encode_state(s)) == s
    doc = state_json(s)
    assert doc["aggregate"] == AGG
    assert all(k.isdigit() and v["interval"] == int(k) for k, v in doc["candles"].items())
    msgspec.json.encode(doc)


@given(st.integers(0, 10_000), st.integers(0, 120), st.data())
def test_fold_equals_repeated_apply_and_splits_anywhere(seed: int, n: int, data: st.DataObject) -> None:
    events = aggregate_events(AGG, n, random.Random(seed))
    whole = fold(events)
    assert whole == reduce(apply, events, AggregateState())
    cut = data.draw(st.integers(0, n))
    assert fold(events[cut:], fold(events[:cut])) == whole
    assert whole.events == n
