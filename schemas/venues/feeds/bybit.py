"""Bybit v5 public WebSocket frames: ``publicTrade.<symbol>`` and
``orderbook.<depth>.<symbol>``.

``orderbook`` messages are ``snapshot`` or ``delta`` with ``data`` ``{"s", "b", "a",
"u", "seq"}`` (levels ``[price, size]`` as decimal strings; size 0 deletes) and ``ts``
(ms). ``u`` grows by one per message of a topic, so a delta is a
:class:`BookUpdate` with ``first_id = last_id = u``; a snapshot (also the ``u = 1``
snapshot Bybit sends after a restart of its service) replaces the book. Depth 1
(``orderbook.1.<symbol>``) is the top of the book: a :class:`Quote` (when both sides have
a level) with ``update_id = u``.
"""

from __future__ import annotations

import msgspec

from ticktape.schemas.errors import DecodeError
from ticktape.schemas.records import BookUpdate, Level, Quote
from ticktape.schemas.symbols import normalize
from ticktape.schemas.venues._errors import map_decode_error, unsupported
from ticktape.schemas.venues.bybit import TOPIC_PREFIXES, VENUE, PublicTrade
from ticktape.schemas.venues.feeds import FeedRecord
from ticktape.schemas.venues.feeds.control import decode_control

_MS = 1_000_000


class OrderbookData(msgspec.Struct, frozen=True):
    symbol: str = msgspec.field(name="s")
    bids: list[Level] = msgspec.field(name="b")
    asks: list[Level] = msgspec.field(name="a")
    update_id: int = msgspec.field(name="u")
    seq: int = 0


class Orderbook(msgspec.Struct, frozen=True):
    topic: str
    type: str
    ts: int
    data: OrderbookData


class _Head(msgspec.Struct):
    topic: str | None = None
    ticktape: str | None = None


_head = msgspec.json.Decoder(_Head)
_trades = msgspec.json.Decoder(PublicTrade, strict=False)
_book = msgspec.json.Decoder(Orderbook, strict=False)
_EXPECTED = "topic publicTrade.<symbol> or orderbook.<depth>.<symbol>"


def _orderbook(msg: Orderbook, src: str, offset: int, ts_recv: int, ts_kafka: int) -> list[FeedRecord]:
    d = msg.data
    symbol = normalize(VENUE, d.symbol)
    ts = msg.ts * _MS
    if msg.type not in ("snapshot", "delta"):
        raise unsupported("$.type", "snapshot or delta", msg.type)
    if msg.topic.startswith("orderbook.1."):
        if not (d.bids and d.asks):
            return []
        (bid, bid_size), (ask, ask_size) = d.bids[0], d.asks[0]
        return [
            Quote(
                VENUE, symbol, bid, bid_size, ask, ask_size, ts, ts_recv, src, offset, ts_kafka, d.update_id
            )
        ]
    snapshot = msg.type == "snapshot"
    first = -1 if snapshot else d.update_id
    return [BookUpdate(VENUE, symbol, d.bids, d.asks, ts, ts_recv, src, offset, ts_kafka, first, d.update_id,
                       snapshot=snapshot)]  # fmt: skip


def decode_frame(raw: bytes, src: str, offset: int, ts_recv: int, ts_kafka: int) -> list[FeedRecord]:
    """The records of one Bybit v5 frame (see the module docstring)."""
    try:
        head = _head.decode(raw)
        topic = head.topic
        if topic is not None:
            if topic.startswith(TOPIC_PREFIXES):
                return list(_trades.decode(raw).to_ticks(src, offset, ts_recv, ts_kafka))
            if topic.startswith("orderbook."):
                return _orderbook(_book.decode(raw), src, offset, ts_recv, ts_kafka)
        elif head.ticktape is not None:
            return [decode_control(raw)]
    except DecodeError:
        raise
    except msgspec.DecodeError as exc:
        raise map_decode_error(exc, raw) from exc
    raise unsupported("$.topic", _EXPECTED, topic if topic is not None else "no `topic`")
