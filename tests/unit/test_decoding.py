"""ticktape.schemas.decoding: raw messages of one source partition -> TickBatch (ticks with the
partition watermark, dead letters with deterministic ids, DeadLettered events, n_read)."""

from __future__ import annotations

import itertools
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support import records
from ticktape.schemas.decoding import FORMATS, BatchDecoder, dead_letter_event, decoder_for
from ticktape.schemas.errors import InputError
from ticktape.schemas.ids import event_id
from ticktape.schemas.records import DeadLetter, DLCode, EventType, TickBatch, source_aggregate
from ticktape.schemas.validation import TickValidator, ValidationRules

VENUES = Path(__file__).resolve().parent.parent / "data" / "venues"
S = 1_000_000_000
T0 = 1_700_000_000 * S
SRC = "ticks/3"


def generic(
    ts: int,
    *,
    price: object = 100.0,
    trade: object = 1,
    side: str = "buy",
    symbol: str = "btc/usd",
    **extra: object,
) -> bytes:
    return records.trade_message(
        venue="Test", symbol=symbol, price=price, size=2.5, side=side, trade_id=trade, ts_event=ts, **extra
    )


def decoder(fmt: str = "generic", *, check_clock: bool = False, **state: int) -> BatchDecoder:
    return BatchDecoder(
        SRC, decoder_for(fmt), TickValidator(ValidationRules(), check_clock=check_clock), **state
    )


def msgs(
    *raws: bytes, start: int = 0, ts_kafka: int = 0, ts_recv: int = T0 + 10 * S
) -> list[tuple[int, bytes, int, int]]:
    """``(offset, raw, ts_recv, ts_kafka)`` with consecutive offsets."""
    return [(start + i, raw, ts_recv, ts_kafka) for i, raw in enumerate(raws)]


#: The receive clock of a replay of the recorded frames (after all of them: history is
#: never in the future of the clock, see the watermark guard).
REPLAY_NOW = 1_900_000_000 * S


def test_decoder_for_known_and_unknown_formats() -> None:
    for name, fn in FORMATS.items():
        assert decoder_for(name) is fn
    with pytest.raises(InputError) as info:
        decoder_for("ftx")
    text = str(info.value)
    assert "'ftx'" in text
    assert "binance, binance-agg, binance-trade, bybit, coinbase, generic, kraken" in text


def test_good_ticks_carry_the_running_max_watermark() -> None:
    d = decoder()
    stamps = [T0 + 5, T0 + 3, T0 + 9, T0 + 1, T0 + 9, T0 + 12]
    batch = d.decode(msgs(*(generic(ts, trade=i) for i, ts in enumerate(stamps))))
    assert isinstance(batch, TickBatch)
    assert batch.src == SRC
    assert [t.ts_event for t in batch.ticks] == stamps
    assert [t.wmark for t in batch.ticks] == [T0 + 5, T0 + 5, T0 + 9, T0 + 9, T0 + 9, T0 + 12]
    assert batch.wmark == T0 + 12 == d.wmark
    assert batch.n_read == 6
    assert batch.dead == []
    assert batch.events == []
    t = batch.ticks[0]
    assert (t.venue, t.symbol, t.price, t.size, t.side, t.trade_id, t.trade_no) == (
        "test",
        "BTC-USD",
        100.0,
        2.5,
        "buy",
        "0",
        0,
    )
    assert (t.src, t.offset, t.ts_recv, t.ts_kafka) == (SRC, 0, T0 + 10 * S, 0)
    assert d.state() == (T0 + 12, 0)


def test_watermark_continues_across_batches_and_from_resume_state() -> None:
    d = decoder(wmark=T0 + 100)
    batch = d.decode(msgs(generic(T0 + 50), generic(T0 + 150)))
    assert [t.wmark for t in batch.ticks] == [T0 + 100, T0 + 150]
    batch = d.decode(msgs(generic(T0 + 120), start=2))
    assert [t.wmark for t in batch.ticks] == [T0 + 150]
    assert batch.wmark == T0 + 150


def test_empty_batch_keeps_the_watermark() -> None:
    d = decoder(wmark=T0, dl_seq=4)
    batch = d.decode([])
    assert (batch.ticks, batch.dead, batch.events, batch.n_read, batch.wmark) == ([], [], [], 0, T0)
    assert d.state() == (T0, 4)


def test_undecodable_message_becomes_a_dead_letter_and_an_event() -> None:
    d = decoder()
    raw = b"\x00not json"
    batch = d.decode([(7, raw, T0, T0 - S)])
    assert batch.ticks == []
    assert batch.n_read == 1, "an undecodable message counts as one record read"
    (dl,) = batch.dead
    assert dl == records.dead_letter(
        dl_id=event_id(T0 - S, "DL", SRC, 7, 0),
        code=DLCode.DECODE_ERROR,
        message=dl.message,
        raw=raw,
        src=SRC,
        offset=7,
        ts_recv=T0,
        venue="",
        symbol="",
        ts_kafka=T0 - S,
    )
    assert dl.message.startswith("field `$`: expected a JSON object, got ")
    (ev,) = batch.events
    assert ev == dead_letter_event(dl, source_aggregate(SRC), 1, T0 - S)
    assert (ev.event_id, ev.type, ev.aggregate, ev.seq, ev.ts_event, ev.ts_logged) == (
        dl.dl_id, EventType.DEAD_LETTER, f"source:{SRC}", 1, T0 - S, 0,
    )  # fmt: skip
    assert ev.causation == f"{SRC}@7"
    assert msgspec.json.decode(ev.payload, type=DeadLetter) == dl
    assert ev.event_id.startswith(f"{T0 - S:016x}"), "ids sort by broker time"


def test_missing_field_is_named() -> None:
    raw = b'{"venue": "x", "symbol": "A-B", "price": 1, "size": 1}'
    (dl,) = decoder().decode(msgs(raw)).dead
    assert dl.code == DLCode.MISSING_FIELD
    assert dl.message == "field `$.ts_event`: expected a value, got field absent"


def test_rejected_trade_is_a_dead_letter_with_its_symbol() -> None:
    d = decoder()
    batch = d.decode(msgs(generic(T0, trade=1), generic(T0 + S, price=-3, trade=2), generic(T0 + 2, trade=3)))
    assert [t.trade_id for t in batch.ticks] == ["1", "3"]
    assert batch.n_read == 3
    (dl,) = batch.dead
    assert (dl.code, dl.venue, dl.symbol, dl.offset) == (DLCode.BAD_PRICE, "test", "BTC-USD", 1)
    assert dl.message == "field `price`: expected a number from 1e-12 to 1e+15, got -3.0"
    assert dl.dl_id == event_id(0, "DL", SRC, 1, 0)
    # A rejected trade does not move the watermark (its time is not trusted).
    assert [t.wmark for t in batch.ticks] == [T0, T0 + 2]
    assert batch.wmark == T0 + 2


def test_future_trade_rejected_against_broker_time_without_moving_the_watermark() -> None:
    d = decoder(check_clock=True)
    kafka = T0 + 10 * S
    batch = d.decode(msgs(generic(kafka), generic(kafka + 3600 * S, trade=2), ts_kafka=kafka))
    assert [t.wmark for t in batch.ticks] == [kafka]
    assert batch.wmark == kafka
    (dl,) = batch.dead
    assert dl.code == DLCode.TS_FUTURE
    assert "3600.000s ahead" in dl.message


def test_dead_letter_events_have_a_per_partition_sequence() -> None:
    d = decoder(dl_seq=10)
    b1 = d.decode(msgs(b"x", generic(T0), b"y"))
    b2 = d.decode(msgs(b"z", start=3))
    assert [e.seq for e in b1.events] == [11, 12]
    assert [e.seq for e in b2.events] == [13]
    assert d.state() == (T0, 13)
    assert [e.event_id for e in b1.events + b2.events] == [dl.dl_id for dl in b1.dead + b2.dead]


def test_dead_letter_ids_are_deterministic() -> None:
    raws = msgs(b"{", generic(T0, price=0), b"[]", ts_kafka=T0)
    first = decoder().decode(raws)
    again = decoder().decode(raws)
    assert [dl.dl_id for dl in first.dead] == [dl.dl_id for dl in again.dead]
    assert first.dead == again.dead
    assert first.events == again.events
    assert len({dl.dl_id for dl in first.dead}) == 3
    # Another partition or offset is another id.
    other = BatchDecoder(
        "ticks/4", decoder_for("generic"), TickValidator(ValidationRules(), check_clock=False)
    )
    assert {dl.dl_id for dl in other.decode(raws).dead}.isdisjoint(dl.dl_id for dl in first.dead)
    shifted = decoder().decode([(o + 100, r, t, k) for o, r, t, k in raws])
    assert {dl.dl_id for dl in shifted.dead}.isdisjoint(dl.dl_id for dl in first.dead)


def test_memoryview_input_is_stored_as_bytes() -> None:
    raw = bytearray(b"garbage")
    (dl,) = decoder().decode([(0, memoryview(raw), T0, 0)]).dead  # type: ignore[list-item]
    assert type(dl.raw) is bytes
    assert dl.raw == b"garbage"


# -- real venue frames ----------------------------------------------------------------


def sample(name: str) -> bytes:
    return (VENUES / name).read_bytes()


def test_coinbase_frame_with_two_trades() -> None:
    d = decoder("coinbase")
    batch = d.decode(msgs(sample("coinbase_ws_market_trades.json"), ts_kafka=T0, ts_recv=REPLAY_NOW))
    assert batch.n_read == 2
    assert [(t.trade_id, t.side, t.price) for t in batch.ticks] == [
        ("995098700", "buy", 68900.5),
        ("995098701", "sell", 68900.0),
    ]
    assert [t.wmark for t in batch.ticks] == [1_775_572_202_789_012_000, 1_775_572_202_800_000_000]
    assert all(t.offset == 0 and t.ts_kafka == T0 for t in batch.ticks)


def test_one_bad_trade_of_a_multi_trade_frame() -> None:
    raw = sample("kraken_ws_trade_update.json").replace(b"105910.50", b"-105910.50")
    d = decoder("kraken")
    batch = d.decode([(42, raw, T0, T0)])
    assert batch.n_read == 2
    assert [t.trade_id for t in batch.ticks] == ["10218208"]
    (dl,) = batch.dead
    assert dl.code == DLCode.BAD_PRICE
    assert dl.message == "field `price`: expected a number from 1e-12 to 1e+15, got -105910.5 (trade 2 of 2)"
    assert dl.dl_id == event_id(T0, "DL", SRC, 42, 1)
    assert (dl.venue, dl.symbol, dl.raw) == ("kraken", "BTC-USD", raw)
    assert batch.n_read == len(batch.ticks) + len(batch.dead)


@pytest.mark.parametrize(
    ("fmt", "name", "trades"),
    [
        ("binance", "binance_trade_stream.json", ["5933014"]),
        ("binance", "binance_agg_trade_stream.json", ["5933014"]),
        ("binance-trade", "binance_trade_stream.json", ["5933014"]),
        ("binance-agg", "binance_agg_trade_stream.json", ["5933014"]),
        ("bybit", "bybit_ws_public_trade.json", ["9dc75fca-4bdd-4773-9f78-6f5d7ab2a110"]),
        ("kraken", "kraken_ws_trade_update.json", ["10218208", "10218209"]),
        ("coinbase", "coinbase_ws_market_trades.json", ["995098700", "995098701"]),
    ],
)
def test_real_venue_frames(fmt: str, name: str, trades: list[str]) -> None:
    batch = decoder(fmt).decode(msgs(sample(name), ts_recv=REPLAY_NOW))
    assert [t.trade_id for t in batch.ticks] == trades
    assert batch.n_read == len(trades)
    assert batch.dead == []
    assert batch.wmark == max(t.ts_event for t in batch.ticks)


@pytest.mark.parametrize(
    ("fmt", "name", "field"),
    [
        ("binance", "binance_book_ticker_stream.json", "$.e"),
        ("coinbase", "coinbase_ws_ticker.json", "$.channel"),
        ("binance-trade", "binance_agg_trade_stream.json", "$.e"),
    ],
)
def test_real_frames_of_unsupported_kinds(fmt: str, name: str, field: str) -> None:
    batch = decoder(fmt).decode(msgs(sample(name), start=9))
    assert batch.ticks == []
    assert batch.n_read == 1
    (dl,) = batch.dead
    assert dl.code == DLCode.UNSUPPORTED
    assert dl.message.startswith(f"field `{field}`")
    assert dl.raw == sample(name)
    assert dl.offset == 9
    assert [e.seq for e in batch.events] == [1]


def test_real_frames_on_the_clock_rule() -> None:
    """The Binance sample's times are from 1973: with the live clock rule they are far in
    the past; the batch still accounts for them."""
    batch = decoder("binance", check_clock=True).decode(msgs(sample("binance_trade_stream.json")))
    assert batch.ticks == []
    (dl,) = batch.dead
    assert dl.code == DLCode.TS_PAST
    assert (dl.venue, dl.symbol) == ("binance", "BTC-USDT")
    assert batch.n_read == 1
    assert batch.wmark == 0


# -- properties ---------------------------------------------------------------------

KINDS = ("good", "good", "good", "garbage", "bad_price", "bad_side", "missing", "future")


def make_raw(kind: str, ts: int, n: int) -> bytes:
    if kind == "garbage":
        return b"{" * (n % 3 + 1)
    if kind == "bad_price":
        return generic(ts, price=0, trade=n)
    if kind == "bad_side":
        return generic(ts, side="bid", trade=n)
    if kind == "missing":
        return b'{"venue": "x", "symbol": "A-B", "price": 1, "size": 1}'
    if kind == "future":
        return generic(ts + 3600 * S, trade=n)
    return generic(ts, trade=n)


@st.composite
def partitions(draw: st.DrawFn) -> list[tuple[int, bytes, int, int]]:
    n = draw(st.integers(0, 40))
    out = []
    for i in range(n):
        kind = draw(st.sampled_from(KINDS))
        ts = T0 + draw(st.integers(-5 * S, 5 * S))
        out.append((i, make_raw(kind, ts, i), T0, T0 + draw(st.integers(0, 3)) * S))
    return out


@given(partitions(), st.lists(st.integers(0, 40), max_size=6))
def test_property_batching_and_resume_do_not_change_the_output(
    messages: list[tuple[int, bytes, int, int]], cut_points: list[int]
) -> None:
    whole = decoder(check_clock=True).decode(messages)
    assert whole.n_read == len(whole.ticks) + len(whole.dead) == len(messages)
    assert [e.seq for e in whole.events] == list(range(1, len(whole.dead) + 1))
    assert all(a.wmark <= b.wmark for a, b in zip(whole.ticks, whole.ticks[1:], strict=False))
    assert all(t.wmark >= t.ts_event for t in whole.ticks)

    cuts = sorted({min(c, len(messages)) for c in cut_points} | {0, len(messages)})
    ticks, dead, events, n_read = [], [], [], 0
    state = (0, 0)
    for a, b in itertools.pairwise(cuts):
        d = decoder(check_clock=True, wmark=state[0], dl_seq=state[1])  # a restart per batch
        batch = d.decode(messages[a:b])
        ticks += batch.ticks
        dead += batch.dead
        events += batch.events
        n_read += batch.n_read
        state = d.state()
        assert batch.wmark == state[0]
    assert ticks == whole.ticks
    assert dead == whole.dead
    assert events == whole.events
    assert n_read == whole.n_read
    assert state == (whole.wmark, len(whole.dead))
