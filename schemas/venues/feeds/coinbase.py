"""Coinbase Advanced Trade WebSocket frames: ``market_trades``, ``ticker`` and
``level2`` (whose messages arrive on channel ``l2_data``).

* ``ticker`` -> one :class:`Quote` per ticker (``best_bid``/``best_bid_quantity``,
  ``best_ask``/``best_ask_quantity``; event time: the message ``timestamp``);
* ``l2_data`` -> one :class:`BookUpdate` per event: ``snapshot`` (the whole book) or
  ``update`` (``side`` ``bid``/``offer``, ``price_level``, ``new_quantity``; 0 deletes).
  Level2 has no per-product sequence: the message ``sequence_num`` counts every message
  of the connection, so the feed handler checks it and a hole becomes a ``gap`` control
  frame plus fresh snapshots.

Other channels (``heartbeats``, ``subscriptions``) are handled by the feed handler; here
they are ``UNSUPPORTED_MESSAGE``.
"""

from __future__ import annotations

import msgspec

from ticktape.schemas.errors import DecodeError
from ticktape.schemas.records import BookUpdate, Level, Quote
from ticktape.schemas.symbols import normalize
from ticktape.schemas.timeparse import rfc3339_to_ns
from ticktape.schemas.venues._errors import bad_value, map_decode_error, unsupported
from ticktape.schemas.venues.coinbase import VENUE, MarketTrades
from ticktape.schemas.venues.feeds import FeedRecord
from ticktape.schemas.venues.feeds.control import decode_control


class Ticker(msgspec.Struct, frozen=True):
    product_id: str
    best_bid: float
    best_bid_quantity: float
    best_ask: float
    best_ask_quantity: float
    price: float = 0.0


class TickerEvent(msgspec.Struct, frozen=True):
    type: str = ""
    tickers: list[Ticker] = []


class TickerMessage(msgspec.Struct, frozen=True):
    channel: str
    timestamp: str
    sequence_num: int = 0
    events: list[TickerEvent] = []


class L2Level(msgspec.Struct, frozen=True):
    side: str
    price_level: float
    new_quantity: float
    event_time: str = ""


class L2Event(msgspec.Struct, frozen=True):
    type: str
    product_id: str
    updates: list[L2Level] = []


class L2Message(msgspec.Struct, frozen=True):
    channel: str
    timestamp: str
    sequence_num: int = 0
    events: list[L2Event] = []


class _Head(msgspec.Struct):
    channel: str | None = None
    ticktape: str | None = None


_head = msgspec.json.Decoder(_Head)
_trades = msgspec.json.Decoder(MarketTrades, strict=False)
_ticker = msgspec.json.Decoder(TickerMessage, strict=False)
_l2 = msgspec.json.Decoder(L2Message, strict=False)
_EXPECTED = "channel market_trades, ticker or l2_data"


def _time(text: str) -> int:
    try:
        return rfc3339_to_ns(text)
    except ValueError:
        raise bad_value("$.timestamp", "an RFC 3339 timestamp", text) from None


def _quotes(msg: TickerMessage, src: str, offset: int, ts_recv: int, ts_kafka: int) -> list[FeedRecord]:
    ts = _time(msg.timestamp)
    return [
        Quote(VENUE, normalize(VENUE, t.product_id), t.best_bid, t.best_bid_quantity, t.best_ask,
              t.best_ask_quantity, ts, ts_recv, src, offset, ts_kafka)
        for event in msg.events for t in event.tickers
    ]  # fmt: skip


def _books(msg: L2Message, src: str, offset: int, ts_recv: int, ts_kafka: int) -> list[FeedRecord]:
    ts = _time(msg.timestamp)
    out: list[FeedRecord] = []
    for e, event in enumerate(msg.events):
        bids: list[Level] = []
        asks: list[Level] = []
        for i, level in enumerate(event.updates):
            if level.side == "bid":
                bids.append((level.price_level, level.new_quantity))
            elif level.side in ("offer", "ask"):
                asks.append((level.price_level, level.new_quantity))
            else:
                raise bad_value(f"$.events[{e}].updates[{i}].side", "bid or offer", level.side)
        if event.type not in ("snapshot", "update"):
            raise unsupported(f"$.events[{e}].type", "snapshot or update", event.type)
        out.append(BookUpdate(VENUE, normalize(VENUE, event.product_id), bids, asks, ts, ts_recv, src, offset,
                              ts_kafka, snapshot=event.type == "snapshot"))  # fmt: skip
    return out


def decode_frame(raw: bytes, src: str, offset: int, ts_recv: int, ts_kafka: int) -> list[FeedRecord]:
    """The records of one Coinbase Advanced Trade frame (see the module docstring)."""
    try:
        head = _head.decode(raw)
        channel = head.channel
        if channel == "market_trades":
            return list(_trades.decode(raw).to_ticks(src, offset, ts_recv, ts_kafka))
        if channel == "ticker":
            return _quotes(_ticker.decode(raw), src, offset, ts_recv, ts_kafka)
        if channel == "l2_data":
            return _books(_l2.decode(raw), src, offset, ts_recv, ts_kafka)
        if head.ticktape is not None:
            return [decode_control(raw)]
    except DecodeError:
        raise
    except msgspec.DecodeError as exc:
        raise map_decode_error(exc, raw) from exc
    raise unsupported("$.channel", _EXPECTED, channel if channel is not None else "no `channel`")
