"""Venue protocols (URLs, subscriptions, limits, pings, frame classes), reconnect backoff,
the feed configuration and the simulator's fault plan."""

from __future__ import annotations

import random
from typing import Any

import msgspec
import pytest

from ticktape.connectors.venues.backoff import Backoff
from ticktape.connectors.venues.config import VenueFeedConfig, WebSocketSourceConfig
from ticktape.connectors.venues.protocol import Kind
from ticktape.connectors.venues.protocols import protocol_for
from ticktape.connectors.venues.source import plan_connections
from ticktape.connectors.venuesim.faults import Fault, parse_fault
from ticktape.schemas.durations import dec_hook
from ticktape.schemas.errors import ConfigError


def feed(**fields: Any) -> VenueFeedConfig:
    return msgspec.convert(fields, VenueFeedConfig, dec_hook=dec_hook)


def test_binance_streams_go_in_the_url_and_snapshots_come_from_rest() -> None:
    p = protocol_for(feed(venue="binance", symbols=["BTCUSDT"], channels=["trades", "quotes", "book"]))
    [streams] = p.connections()
    assert p.connect_url(streams) == (
        "wss://stream.binance.com:9443/stream?streams=btcusdt@trade/btcusdt@bookTicker/btcusdt@depth@100ms"
    )
    assert p.snapshot_url("BTCUSDT") == "https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=1000"
    assert p.rest_snapshots
    assert p.subscribe(streams) == []
    assert p.classify(b'{"stream":"x","data":{}}').kind is Kind.DATA
    assert p.classify(b'{"result":null,"id":1}').kind is Kind.ACK
    error = p.classify(b'{"code":-1003,"msg":"Too many requests"}')
    assert (error.kind, error.detail) == (Kind.ERROR, "code -1003: Too many requests")


def test_streams_are_cut_into_connections_within_the_venue_limit() -> None:
    symbols = [f"S{i}USDT" for i in range(700)]
    p = protocol_for(feed(venue="binance", symbols=symbols, channels=["trades", "book"]))
    sizes = [len(c) for c in p.connections()]
    assert sizes == [1024, 376]  # Binance: at most 1024 streams per connection
    cfg = msgspec.convert(
        {"feeds": [{"venue": "binance", "symbols": symbols[:10], "streams_per_connection": 4},
                   {"venue": "kraken", "symbols": ["BTC/USD"]}]},
        WebSocketSourceConfig, dec_hook=dec_hook,
    )  # fmt: skip
    assert list(plan_connections(cfg)) == ["ws:binance/0", "ws:binance/1", "ws:binance/2", "ws:binance/3",
                                           "ws:binance/4", "ws:binance/5", "ws:binance/6", "ws:binance/7", "ws:kraken/0"]  # fmt: skip


def test_kraken_subscribes_per_channel_pings_and_resubscribes_books() -> None:
    p = protocol_for(feed(venue="kraken", symbols=["BTC/USD", "ETH/USD"], book_depth=25))
    [streams] = p.connections()
    subs = [msgspec.json.decode(m) for m in p.subscribe(streams)]
    assert [s["params"]["channel"] for s in subs] == ["book", "ticker", "trade"]
    assert subs[0]["params"] == {"channel": "book", "symbol": ["BTC/USD", "ETH/USD"], "depth": 25}
    assert [msgspec.json.decode(m)["method"] for m in p.resubscribe_book("BTC/USD")] == [
        "unsubscribe",
        "subscribe",
    ]
    assert p.app_ping() == '{"method":"ping"}'
    assert p.classify(b'{"channel":"heartbeat"}').kind is Kind.HEARTBEAT
    assert p.classify(b'{"channel":"book","type":"update","data":[]}').kind is Kind.DATA
    refused = p.classify(b'{"method":"subscribe","success":false,"error":"Currency pair not supported"}')
    assert (refused.kind, refused.detail) == (Kind.ERROR, "subscribe: Currency pair not supported")


def test_coinbase_frames_carry_the_connection_sequence() -> None:
    p = protocol_for(feed(venue="coinbase", symbols=["BTC-USD"]))
    [streams] = p.connections()
    channels = [msgspec.json.decode(m).get("channel") for m in p.subscribe(streams)]
    assert channels == ["level2", "market_trades", "ticker", "heartbeats"]
    c = p.classify(b'{"channel":"l2_data","client_id":"","timestamp":"t","sequence_num":41,"events":[]}')
    assert (c.kind, c.seq) == (Kind.DATA, 41)
    assert (
        p.classify(b'{"channel":"heartbeats","client_id":"","timestamp":"t","sequence_num":42}').kind
        is Kind.HEARTBEAT
    )
    assert p.classify(b'{"type":"error","message":"failure to subscribe"}').kind is Kind.ERROR


def test_bybit_batches_ten_topics_per_request() -> None:
    p = protocol_for(
        feed(venue="bybit", symbols=[f"S{i}USDT" for i in range(6)], channels=["trades", "book"])
    )
    [streams] = p.connections()
    requests = [msgspec.json.decode(m) for m in p.subscribe(streams)]
    assert [len(r["args"]) for r in requests] == [10, 2]
    assert requests[0]["args"][:2] == ["publicTrade.S0USDT", "orderbook.50.S0USDT"]
    assert (
        p.classify(b'{"success":false,"ret_msg":"error:handler not found","op":"subscribe"}').kind
        is Kind.ERROR
    )
    assert p.classify(b'{"success":true,"ret_msg":"pong","op":"ping"}').kind is Kind.ACK


def test_full_jitter_backoff_grows_to_its_cap_and_resets() -> None:
    b = Backoff(0.5, 8.0, random.Random(1))
    ceilings = [b.ceiling(n) for n in range(7)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    delays = [b.next_delay() for _ in range(7)]
    assert all(0.0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays)) == 7  # jittered
    b.reset()
    assert b.ceiling() == 0.5


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"venue": "binance", "symbols": []}, "symbols"),
        ({"venue": "kraken", "symbols": ["BTC/USD"], "channels": ["agg_trades"]}, "agg_trades"),
        ({"venue": "binance", "symbols": ["BTCUSDT"], "channels": ["candles"]}, "channels"),
        ({"venue": "binance", "symbols": ["BTC USDT"]}, "spaces"),
        ({"venue": "bybit", "symbols": ["BTCUSDT"], "partial_depth": 5}, "partial_depth"),
        ({"venue": "nasdaq", "symbols": ["AAPL"]}, "venue"),
        ({"venue": "binance", "symbols": ["BTCUSDT"], "backoff_initial": "0s"}, "backoff_initial"),
        (
            {"venue": "binance", "symbols": ["BTCUSDT"], "backoff_initial": "2s", "backoff_max": "1s"},
            "backoff_max",
        ),
        ({"venue": "binance", "symbols": ["BTCUSDT"], "queue_frames": 0}, "queue_frames"),
    ],
)
def test_bad_feed_settings_are_refused_with_the_key(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message):
        feed(**fields)


def test_fault_text() -> None:
    assert parse_fault("close:1011@200#2") == Fault("close", 200, 2, 1011.0)
    assert parse_fault("stall:5s@10") == Fault("stall", 10, 1, 5.0)
    assert parse_fault("duplicate:30#0") == Fault("duplicate", 1, 0, 30.0)
    assert parse_fault("skip@5").hits(1)
    with pytest.raises(ConfigError, match="KIND"):
        parse_fault("explode@3")
