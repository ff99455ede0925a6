"""ticktape.schemas.venues: wire-format decoders on recorded venue frames, and their errors."""

from __future__ import annotations

import functools
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support import records
from ticktape.schemas.errors import DecodeError
from ticktape.schemas.records import DLCode, Tick
from ticktape.schemas.venues import Decoder, binance, bybit, coinbase, generic, kraken, trade_no_of

DATA = Path(__file__).resolve().parent.parent / "data" / "venues"
SRC, OFFSET, TS_RECV, TS_KAFKA = (
    "trades/0",
    42,
    1_700_000_000_000_000_000,
    1_699_999_999_000_000_000,
)


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def decode(decoder: Decoder, raw: bytes) -> list[Tick]:
    return decoder(raw, SRC, OFFSET, TS_RECV, TS_KAFKA)


def failure(decoder: Decoder, raw: bytes) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        decode(decoder, raw)
    return info.value


#: A tick as the decoders under test return it for a frame read at (SRC, OFFSET).
tick = functools.partial(records.tick, ts_recv=TS_RECV, src=SRC, offset=OFFSET, ts_kafka=TS_KAFKA)


BINANCE_TICK = tick(
    venue="binance", symbol="BTC-USDT", price=0.001, size=100.0, side="sell",
    trade_id="5933014", trade_no=5933014, ts_event=123_456_785_000_000,
)  # fmt: skip


@pytest.mark.parametrize("decoder", [binance.decode_trade, binance.decode_any])
def test_binance_trade(decoder: Decoder) -> None:
    assert decode(decoder, sample("binance_trade_stream.json")) == [BINANCE_TICK]


@pytest.mark.parametrize("decoder", [binance.decode_agg_trade, binance.decode_any])
def test_binance_agg_trade(decoder: Decoder) -> None:
    # The sample's aggregate id "a" happens to equal the trade sample's "t".
    assert decode(decoder, sample("binance_agg_trade_stream.json")) == [BINANCE_TICK]


def test_binance_buyer_taker_is_a_buy() -> None:
    raw = sample("binance_trade_stream.json").replace(b'"m": true', b'"m": false')
    assert decode(binance.decode_any, raw)[0].side == "buy"


def test_binance_book_ticker_is_unsupported() -> None:
    err = failure(binance.decode_any, sample("binance_book_ticker_stream.json"))
    assert err.code == DLCode.UNSUPPORTED
    assert err.field == "$.e"
    assert "bookTicker" in str(err)


@pytest.mark.parametrize(
    ("decoder", "raw"),
    [
        (binance.decode_trade, sample("binance_agg_trade_stream.json")),
        (binance.decode_agg_trade, sample("binance_trade_stream.json")),
        (binance.decode_any, b'{"result": null, "id": 1}'),
    ],
)
def test_binance_other_events_are_unsupported(decoder: Decoder, raw: bytes) -> None:
    assert failure(decoder, raw).code == DLCode.UNSUPPORTED


def test_coinbase_market_trades() -> None:
    common = {"venue": "coinbase", "symbol": "BTC-USD"}
    assert decode(coinbase.decode_market_trades, sample("coinbase_ws_market_trades.json")) == [
        tick(**common, price=68900.5, size=0.0015, side="buy", trade_id="995098700",
             trade_no=995098700, ts_event=1_775_572_202_789_012_000),
        tick(**common, price=68900.0, size=0.05, side="sell", trade_id="995098701",
             trade_no=995098701, ts_event=1_775_572_202_800_000_000),
    ]  # fmt: skip


def test_coinbase_ticker_channel_is_unsupported() -> None:
    err = failure(coinbase.decode_market_trades, sample("coinbase_ws_ticker.json"))
    assert err.code == DLCode.UNSUPPORTED
    assert (err.field, err.got) == ("$.channel", "ticker")


def test_coinbase_bad_time_names_the_trade() -> None:
    raw = sample("coinbase_ws_market_trades.json").replace(b"02.800000Z", b"02.800000")
    err = failure(coinbase.decode_market_trades, raw)
    assert err.code == DLCode.DECODE_ERROR
    assert err.field == "$.events[0].trades[1].time"


def test_kraken_trade() -> None:
    common = {"venue": "kraken", "symbol": "BTC-USD"}
    assert decode(kraken.decode_trade, sample("kraken_ws_trade_update.json")) == [
        tick(**common, price=105944.2, size=0.00027625, side="buy", trade_id="10218208",
             trade_no=10218208, ts_event=1_696_613_755_440_295_000),
        tick(**common, price=105910.5, size=0.0001246, side="sell", trade_id="10218209",
             trade_no=10218209, ts_event=1_696_613_756_123_456_000),
    ]  # fmt: skip


def test_kraken_v1_symbol_is_aliased() -> None:
    raw = sample("kraken_ws_trade_update.json").replace(b"BTC/USD", b"XBT/USD")
    assert {t.symbol for t in decode(kraken.decode_trade, raw)} == {"BTC-USD"}


@pytest.mark.parametrize(
    ("raw", "got"),
    [
        (b'{"channel": "heartbeat"}', "heartbeat"),
        (b'{"channel": "status", "data": [{"system": "online"}]}', "status"),
        (b'{"method": "subscribe", "success": true}', "no `channel`"),
    ],
)
def test_kraken_other_channels_are_unsupported(raw: bytes, got: str) -> None:
    err = failure(kraken.decode_trade, raw)
    assert (err.code, err.field, err.got) == (DLCode.UNSUPPORTED, "$.channel", got)


def test_bybit_public_trade() -> None:
    assert decode(bybit.decode_public_trade, sample("bybit_ws_public_trade.json")) == [
        tick(venue="bybit", symbol="BTC-USDT", price=27451.0, size=0.01, side="buy",
             trade_id="9dc75fca-4bdd-4773-9f78-6f5d7ab2a110", trade_no=-1,
             ts_event=1_709_891_679_000_000_000),
    ]  # fmt: skip


def test_bybit_v5_topic_numeric_id_and_several_trades() -> None:
    one = b'{"T": 1, "s": "ETHUSDC", "S": "%s", "v": "2", "p": "3000.5", "i": "%s"}'
    raw = (
        b'{"topic": "publicTrade.ETHUSDC", "type": "snapshot", "ts": 2, "data": ['
        + (one % (b"Sell", b"2290000000061666327"))
        + b","
        + (one % (b"Hold", b"7"))
        + b"]}"
    )
    first, second = decode(bybit.decode_public_trade, raw)
    assert (first.symbol, first.side, first.trade_no, first.ts_event) == (
        "ETH-USDC", "sell", 2290000000061666327, 1_000_000
    )  # fmt: skip
    assert second.side == "hold"  # passed through lowercased; the validator rejects it


def test_bybit_other_topic_is_unsupported() -> None:
    raw = b'{"topic": "orderbook.50.BTCUSDT", "type": "snapshot", "data": {"b": [], "a": []}}'
    err = failure(bybit.decode_public_trade, raw)
    assert (err.code, err.got) == (DLCode.UNSUPPORTED, "orderbook.50.BTCUSDT")


def test_generic_tick_with_decimal_strings() -> None:
    raw = (
        b'{"venue": "Binance", "symbol": "ETHUSDT", "price": "3500.25", "size": "0.5",'
        b' "side": "SELL", "trade_id": 77, "ts_event": 1700000000123456789}'
    )
    assert decode(generic.decode_tick, raw) == [
        tick(venue="binance", symbol="ETH-USDT", price=3500.25, size=0.5, side="sell",
             trade_id="77", trade_no=77, ts_event=1_700_000_000_123_456_789)
    ]  # fmt: skip


def test_generic_tick_defaults_and_text_id() -> None:
    raw = b'{"venue": "x", "symbol": "a/b", "price": 1, "size": 2, "ts_event": 3}'
    (t,) = decode(generic.decode_tick, raw)
    assert (t.symbol, t.side, t.trade_id, t.trade_no) == ("A-B", "unknown", "", -1)
    raw = raw[:-1] + b', "trade_id": "abc-1", "side": "Sideways"}'
    (t,) = decode(generic.decode_tick, raw)
    assert (t.trade_id, t.trade_no, t.side) == ("abc-1", -1, "sideways")


@pytest.mark.parametrize(("id_type", "ident"), [("cusip", "037833100"), ("isin", "us0378331005")])
def test_generic_tick_instrument_id(id_type: str, ident: str) -> None:
    raw = msgspec.json.encode(
        {"venue": "nasdaq", "symbol": ident, "id_type": id_type, "price": "189.84",
         "size": 100, "ts_event": 1}
    )  # fmt: skip
    (t,) = decode(generic.decode_tick, raw)
    assert (t.symbol, t.instrument_id) == (ident.upper(), ident)


# -- errors shared by every decoder --------------------------------------------------------

ALL = [
    binance.decode_trade, binance.decode_agg_trade, binance.decode_any,
    coinbase.decode_market_trades, kraken.decode_trade, bybit.decode_public_trade,
    generic.decode_tick,
]  # fmt: skip


@pytest.mark.parametrize("decoder", ALL)
@pytest.mark.parametrize("raw", [b"", b"not json", b'{"e": "trade"', b"\xff\xfe", b"{} x"])
def test_invalid_json(decoder: Decoder, raw: bytes) -> None:
    err = failure(decoder, raw)
    assert (err.code, err.field, err.expected) == (DLCode.DECODE_ERROR, "$", "a JSON object")
    assert err.got == repr(raw)


def test_invalid_json_repr_is_short() -> None:
    err = failure(generic.decode_tick, b"x" * 500)
    assert "(500 bytes)" in str(err)
    assert len(str(err)) < 200


@pytest.mark.parametrize(
    ("decoder", "raw", "field"),
    [
        (binance.decode_any, sample("binance_trade_stream.json").replace(b'"p"', b'"x"'), "$.p"),
        (binance.decode_trade, b'{"s": "BTCUSDT", "t": 1, "q": "1", "T": 1, "m": true}', "$.p"),
        (
            coinbase.decode_market_trades,
            sample("coinbase_ws_market_trades.json").replace(b'"size": "0.05', b'"sz": "0.05'),
            "$.events[0].trades[1].size",
        ),
        (
            kraken.decode_trade,
            sample("kraken_ws_trade_update.json").replace(b'"qty": 0.0002', b'"q": 0.0002'),
            "$.data[0].qty",
        ),
        (
            bybit.decode_public_trade,
            sample("bybit_ws_public_trade.json").replace(b'"p"', b'"P"'),
            "$.data[0].p",
        ),
        (
            generic.decode_tick,
            b'{"venue": "x", "symbol": "A", "price": 1, "size": 1}',
            "$.ts_event",
        ),
    ],
)
def test_missing_field(decoder: Decoder, raw: bytes, field: str) -> None:
    err = failure(decoder, raw)
    assert err.code == DLCode.MISSING_FIELD
    assert err.field == field
    assert f"`{field}`" in str(err)


@pytest.mark.parametrize(
    ("decoder", "raw", "field", "expected", "got"),
    [
        (binance.decode_any, sample("binance_trade_stream.json").replace(b"5933014", b'"x"'),
         "$.t", "`int`", "`str`"),
        (binance.decode_any, sample("binance_trade_stream.json").replace(b'"0.001"', b'"abc"'),
         "$.p", "`float`", "`str`"),
        (kraken.decode_trade, sample("kraken_ws_trade_update.json").replace(b'"buy"', b"1"),
         "$.data[0].side", "`str`", "`int`"),
        (generic.decode_tick, b'{"venue": "x", "symbol": "A", "price": [1], "size": 1,'
         b' "ts_event": 1}', "$.price", "`float`", "`array`"),
        (generic.decode_tick, b'{"venue": "x", "symbol": "A", "price": 1, "size": 1, "ts_event": 1,'
         b' "id_type": "sedol"}', "$.id_type", "one of the allowed values", "'sedol'"),
        (generic.decode_tick, b"[1, 2]", "$", "`object`", "`array`"),
    ],
)  # fmt: skip
def test_wrong_type(decoder: Decoder, raw: bytes, field: str, expected: str, got: str) -> None:
    err = failure(decoder, raw)
    assert (err.code, err.field, err.expected, err.got) == (
        DLCode.DECODE_ERROR,
        field,
        expected,
        got,
    )


@given(st.floats(min_value=1e-12, max_value=1e12, allow_nan=False) | st.decimals(
    min_value=0, max_value=10**9, places=8, allow_nan=False, allow_infinity=False
).map(str))  # fmt: skip
def test_lax_decimal_strings_parse_like_float(value: float | str) -> None:
    text = repr(value) if isinstance(value, float) else value
    raw = b'{"e":"trade","s":"BTCUSDT","t":1,"p":"%s","q":"1","T":1,"m":false}' % text.encode()
    assert decode(binance.decode_any, raw)[0].price == float(text)


def test_trade_no_of() -> None:
    assert trade_no_of("995098700") == 995098700
    assert trade_no_of("") == -1
    assert trade_no_of("-5") == -1
    assert trade_no_of("9dc75fca") == -1
    assert trade_no_of("٣") == -1
