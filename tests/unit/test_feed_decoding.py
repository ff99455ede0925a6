"""Venue feed frames -> records: each venue's quote and book messages, ticktape's control
frames, and the batch decoder's validation, dead letters, events and accounting."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.data import VENUES
from ticktape.schemas.errors import DecodeError
from ticktape.schemas.feed import FEED_FORMATS, FeedBatchDecoder, make_batch_decoder
from ticktape.schemas.records import BookUpdate, DLCode, EventType, Quote, Tick
from ticktape.schemas.validation import ValidationRules
from ticktape.schemas.venues.feeds.control import Control, encode_control

MS = 1_000_000
RECV = 1_700_000_000_000_000_000


def decode(fmt: str, raw: bytes) -> list[object]:
    return FEED_FORMATS[fmt](raw, "ws:x/0", 7, RECV, 0)


def test_binance_book_ticker_is_a_quote_at_its_receive_time() -> None:
    raw = b'{"stream":"bnbusdt@bookTicker","data":{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}}'
    [q] = decode("binance-ws", raw)
    assert q == Quote(
        "binance", "BNB-USDT", 25.3519, 31.21, 25.3652, 40.66, RECV, RECV, "ws:x/0", 7, 0, 400900217
    )


def test_binance_futures_book_ticker_uses_its_event_time() -> None:
    [q] = decode("binance-ws", (VENUES / "binance_book_ticker_stream.json").read_bytes())
    assert isinstance(q, Quote)
    assert q.ts_event == 1568014460893 * MS


def test_binance_depth_diff_and_partial_depth() -> None:
    raw = b'{"stream":"nknusdt@depth@100ms","data":{"e":"depthUpdate","E":1633998512568,"s":"NKNUSDT","U":499869753,"u":499869754,"b":[["0.35170000","4265.00000000"]],"a":[["0.35290000","10968.00000000"]]}}'
    [d] = decode("binance-ws", raw)
    assert isinstance(d, BookUpdate)
    assert (d.symbol, d.first_id, d.last_id, d.snapshot, d.bids, d.asks) == (
        "NKN-USDT", 499869753, 499869754, False, [(0.3517, 4265.0)], [(0.3529, 10968.0)],
    )  # fmt: skip
    partial = b'{"stream":"btcusdt@depth5@100ms","data":{"lastUpdateId":160,"bids":[["0.0024","10"]],"asks":[["0.0026","100"]]}}'
    [p] = decode("binance-ws", partial)
    assert isinstance(p, BookUpdate)
    assert (p.symbol, p.snapshot, p.last_id, p.ts_event) == ("BTC-USDT", True, 160, RECV)


def test_binance_raw_streams_and_trades_decode_too() -> None:
    [t] = decode("binance-ws", (VENUES / "binance_trade_stream.json").read_bytes())
    assert isinstance(t, Tick)
    assert t.trade_id == "5933014"
    [a] = decode(
        "binance-ws",
        b'{"stream":"btcusdt@aggTrade","data":'
        + (VENUES / "binance_agg_trade_stream.json").read_bytes()
        + b"}",
    )
    assert isinstance(a, Tick)
    assert a.trade_id == "5933014"


def test_a_rest_snapshot_control_frame_is_a_book_snapshot() -> None:
    body = msgspec.Raw(b'{"lastUpdateId":42,"bids":[["1.5","2"]],"asks":[["1.6","3"]]}')
    raw = encode_control(Control("snapshot", "binance", "ws:binance/0", 1, symbol="BTCUSDT", ts=5, data=body))
    [s] = decode("binance-ws", raw)
    assert isinstance(s, BookUpdate)
    assert (s.symbol, s.snapshot, s.last_id, s.ts_event, s.bids) == ("BTC-USDT", True, 42, 5, [(1.5, 2.0)])


@pytest.mark.parametrize(
    ("fmt", "raw", "code"),
    [
        ("binance-ws", b'{"stream":"btcusdt@kline_1m","data":{"e":"kline"}}', DLCode.UNSUPPORTED),
        (
            "binance-ws",
            b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1}}',
            DLCode.MISSING_FIELD,
        ),
        ("binance-ws", b'{"stream":"btcusdt@trade","data":{"e":"tra', DLCode.DECODE_ERROR),
        ("coinbase-ws", b'{"channel":"heartbeats","events":[]}', DLCode.UNSUPPORTED),
        ("kraken-ws", b'{"channel":"book","type":"delta","data":[]}', DLCode.UNSUPPORTED),
        ("bybit-ws", b'{"topic":"tickers.BTCUSDT","data":{}}', DLCode.UNSUPPORTED),
        ("bybit-ws", b"not json", DLCode.DECODE_ERROR),
    ],
)
def test_unusable_frames_raise_decode_errors(fmt: str, raw: bytes, code: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode(fmt, raw)
    assert info.value.code == code


def test_coinbase_ticker_and_level2() -> None:
    [q] = decode("coinbase-ws", (VENUES / "coinbase_ws_ticker.json").read_bytes())
    assert isinstance(q, Quote)
    assert (q.symbol, q.bid, q.bid_size, q.ask, q.ask_size) == ("BTC-USD", 68900.0, 1.5, 68901.0, 0.5)
    l2 = (b'{"channel":"l2_data","client_id":"","timestamp":"2023-02-09T20:32:50.714964855Z","sequence_num":0,'
          b'"events":[{"type":"snapshot","product_id":"BTC-USD","updates":[{"side":"bid","event_time":"1970-01-01T00:00:00Z",'
          b'"price_level":"21921.73","new_quantity":"0.06317902"},{"side":"offer","event_time":"1970-01-01T00:00:00Z",'
          b'"price_level":"21921.74","new_quantity":"1.5"}]}]}')  # fmt: skip
    [b] = decode("coinbase-ws", l2)
    assert isinstance(b, BookUpdate)
    assert (b.snapshot, b.bids, b.asks) == (True, [(21921.73, 0.06317902)], [(21921.74, 1.5)])


def test_kraken_book_levels_keep_their_exact_text_for_the_checksum() -> None:
    raw = (b'{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":45283.50,"qty":0.10000000}],'
           b'"asks":[],"checksum":3310070434,"timestamp":"2023-10-06T17:35:55.440295Z"}]}')  # fmt: skip
    [b] = decode("kraken-ws", raw)
    assert isinstance(b, BookUpdate)
    assert b.texts == ([("45283.50", "0.10000000")], [])
    assert (b.bids, b.checksum, b.symbol) == ([(45283.5, 0.1)], 3310070434, "BTC-USD")


def test_bybit_orderbook_delta_and_top_of_book() -> None:
    delta = b'{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1672304484978,"data":{"s":"BTCUSDT","b":[["16493.50","0.006"]],"a":[],"u":18521288,"seq":7961638724},"cts":1672304484976}'
    [d] = decode("bybit-ws", delta)
    assert isinstance(d, BookUpdate)
    assert (d.first_id, d.last_id, d.snapshot, d.ts_event) == (18521288, 18521288, False, 1672304484978 * MS)
    top = b'{"topic":"orderbook.1.BTCUSDT","type":"snapshot","ts":1,"data":{"s":"BTCUSDT","b":[["1.0","2"]],"a":[["1.1","3"]],"u":5,"seq":1}}'
    [q] = decode("bybit-ws", top)
    assert isinstance(q, Quote)
    assert (q.bid, q.ask, q.update_id) == (1.0, 1.1, 5)


def _decoder(fmt: str = "binance-ws") -> FeedBatchDecoder:
    decoder = make_batch_decoder(fmt, "ws:binance/0", ValidationRules(), check_clock=False)
    assert isinstance(decoder, FeedBatchDecoder)
    return decoder


def test_bad_quotes_and_books_are_dead_letters_and_the_accounting_balances() -> None:
    crossed = (
        b'{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"2.0","B":"1","a":"1.9","A":"1"}}'
    )
    negative = (
        b'{"stream":"btcusdt@bookTicker","data":{"u":2,"s":"BTCUSDT","b":"1.0","B":"-1","a":"1.9","A":"1"}}'
    )
    backwards = b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":9,"u":5,"b":[],"a":[]}}'
    diff = b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":10,"u":11,"b":[],"a":[]}}'
    batch = _decoder().decode(
        [(i, raw, RECV, 0) for i, raw in enumerate((crossed, negative, backwards, diff, diff, b"{"))]
    )
    assert [d.code for d in batch.dead] == [
        DLCode.CROSSED_BOOK,
        DLCode.BAD_SIZE,
        DLCode.BAD_SEQUENCE,
        DLCode.DECODE_ERROR,
    ]
    assert [(d.src, d.offset, d.symbol) for d in batch.dead[:3]] == [
        ("ws:binance/0", 0, "BTC-USDT"),
        ("ws:binance/0", 1, "BTC-USDT"),
        ("ws:binance/0", 2, "BTC-USDT"),
    ]
    assert batch.dead[3].raw == b"{"
    assert batch.n_read == 6
    assert batch.decided is not None
    assert (batch.decided.accepted, batch.decided.duplicate) == (1, 1)
    assert batch.n_read == len(batch.dead) + batch.decided.accepted + batch.decided.duplicate
    assert [e.type for e in batch.events] == [EventType.DEAD_LETTER] * 4


def test_control_frames_are_events_of_the_source_not_records() -> None:
    frames = [
        encode_control(Control("connected", "binance", "ws:binance/0", 2, url="ws://127.0.0.1:1", ts=10)),
        encode_control(
            Control(
                "disconnected",
                "binance",
                "ws:binance/0",
                2,
                reason="closed by the venue: code 1011",
                frames=5,
                ts=11,
            )
        ),
        encode_control(
            Control("venue_error", "binance", "ws:binance/0", 2, reason="code 2: Invalid request", ts=12)
        ),
        encode_control(Control("gap", "coinbase", "ws:coinbase/0", 1, first=41, last=44, ts=13)),
        encode_control(
            Control("oversized", "binance", "ws:binance/0", 2, frames=2_000_000, reason='{"junk":"xx', ts=14)
        ),
    ]
    batch = _decoder().decode([(i, f, RECV, 0) for i, f in enumerate(frames)])
    types = [e.type for e in batch.events]
    assert types == [EventType.FEED_CONNECTED, EventType.FEED_DISCONNECTED, EventType.VENUE_ERROR,
                     EventType.SEQUENCE_GAP, EventType.DEAD_LETTER]  # fmt: skip
    assert {e.aggregate for e in batch.events} == {"source:ws:binance/0"}
    gap = msgspec.json.decode(batch.events[3].payload)
    assert (gap["kind"], gap["first_missing"], gap["count"]) == ("sequence_num", 41, 4)
    assert [d.code for d in batch.dead] == [DLCode.OVERSIZED]
    assert batch.dead[0].raw == b'{"junk":"xx'
    assert batch.n_read == 1  # the oversized frame; control frames are not records
    # the same frames give the same event ids (replays)
    again = _decoder().decode([(i, f, RECV, 0) for i, f in enumerate(frames)])
    assert [e.event_id for e in again.events] == [e.event_id for e in batch.events]


def test_an_unplanned_reconnect_puts_books_out_of_sync() -> None:
    decoder = _decoder()
    snapshot = encode_control(Control("snapshot", "binance", "c", 1, symbol="BTCUSDT", ts=1,
                                      data=msgspec.Raw(b'{"lastUpdateId":1,"bids":[["1","1"]],"asks":[["2","1"]]}')))  # fmt: skip
    decoder.decode([(0, snapshot, RECV, 0)])
    planned = encode_control(Control("connected", "binance", "c", 2, reason="planned", ts=2))
    assert not decoder.decode([(1, planned, RECV, 0)]).facts
    reconnect = encode_control(Control("connected", "binance", "c", 3, ts=3))
    batch = decoder.decode([(2, reconnect, RECV, 0)])
    assert [(f.type, f.detail["reason"]) for f in batch.facts] == [(EventType.BOOK_GAP, "reconnect")]
    assert decoder.keeper.take_resyncs() == [("binance", "BTC-USDT", "reconnect")]


SAMPLES = {
    "binance-ws": [
        b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":10,"u":11,"b":[["1.5","2"]],"a":[["1.6","1"]]}}',
        b'{"stream":"btcusdt@bookTicker","data":{"u":12,"s":"BTCUSDT","b":"1.5","B":"1","a":"1.6","A":"1"}}',
        b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":5,"p":"1.5","q":"1","T":1,"m":true}}',
    ],
    "kraken-ws": [
        b'{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD","bids":[{"price":1.5,"qty":2.0}],"asks":[{"price":1.6,"qty":1.0}],"checksum":1}]}',
        b'{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":1.5,"bid_qty":1.0,"ask":1.6,"ask_qty":2.0}]}',
    ],
    "coinbase-ws": [
        b'{"channel":"l2_data","timestamp":"2023-02-09T20:32:50.7Z","sequence_num":1,"events":[{"type":"update","product_id":"BTC-USD","updates":[{"side":"bid","price_level":"1.5","new_quantity":"2"}]}]}',
    ],
    "bybit-ws": [
        b'{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,"data":{"s":"BTCUSDT","b":[["1.5","2"]],"a":[],"u":7,"seq":1}}',
    ],
}


@given(data=st.data())
def test_hostile_frames_never_break_the_decoder_or_the_accounting(data: st.DataObject) -> None:
    """Any bytes, or a real frame with bytes flipped, cut or repeated: each frame is a
    record or a dead letter, the batch always balances, nothing raises."""
    fmt = data.draw(st.sampled_from(sorted(SAMPLES)))
    frames: list[bytes] = []
    for _ in range(data.draw(st.integers(1, 6))):
        base = data.draw(st.sampled_from(SAMPLES[fmt]))
        how = data.draw(st.sampled_from(["as is", "random", "flip", "cut", "splice"]))
        if how == "random":
            frame = data.draw(st.binary(max_size=300))
        elif how == "flip":
            i = data.draw(st.integers(0, len(base) - 1))
            frame = base[:i] + bytes([data.draw(st.integers(0, 255))]) + base[i + 1 :]
        elif how == "cut":
            frame = base[: data.draw(st.integers(0, len(base)))]
        elif how == "splice":
            frame = base.replace(
                b"1.5", data.draw(st.sampled_from([b"-1", b"1e400", b"NaN", b'"x"', b"null", b"[]"]))
            )
        else:
            frame = base
        frames.append(frame)
    decoder = make_batch_decoder(fmt, "ws:x/0", ValidationRules(), check_clock=False)
    assert isinstance(decoder, FeedBatchDecoder)
    batch = decoder.decode([(i, f, RECV, 0) for i, f in enumerate(frames)])
    decided = batch.decided.accepted + batch.decided.duplicate if batch.decided else 0
    assert batch.n_read == len(batch.ticks) + len(batch.quotes) + len(batch.dead) + decided
    assert all(d.raw is not None and d.src == "ws:x/0" for d in batch.dead)
