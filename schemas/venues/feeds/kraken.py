"""Kraken WebSocket API v2 frames: ``trade``, ``ticker`` and ``book``.

* ``ticker`` -> :class:`Quote` per entry (``bid``/``bid_qty``/``ask``/``ask_qty``; event
  time: ``timestamp`` when sent, else the receive time);
* ``book`` -> :class:`BookUpdate` per entry: ``snapshot`` or ``update`` with levels
  ``{"price", "qty"}`` (qty 0 deletes) and the venue's ``checksum`` (CRC32 of the top
  10 levels, see :mod:`ticktape.schemas.books.checksum`). Numbers are read as decimals so
  each level keeps its exact text for the checksum.

Other channels (``heartbeat``, ``status``) and method replies are handled by the feed
handler; here they are ``UNSUPPORTED_MESSAGE``.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from ticktape.schemas.errors import DecodeError
from ticktape.schemas.records import BookUpdate, Level, Quote
from ticktape.schemas.symbols import normalize
from ticktape.schemas.timeparse import rfc3339_to_ns
from ticktape.schemas.venues._errors import bad_value, map_decode_error, unsupported
from ticktape.schemas.venues.feeds import FeedRecord
from ticktape.schemas.venues.feeds.control import decode_control
from ticktape.schemas.venues.kraken import VENUE, TradeMessage


class TickerEntry(msgspec.Struct, frozen=True):
    symbol: str
    bid: float
    bid_qty: float
    ask: float
    ask_qty: float
    timestamp: str = ""


class TickerMessage(msgspec.Struct, frozen=True):
    channel: str
    type: str = ""
    data: list[TickerEntry] = []


class BookLevel(msgspec.Struct, frozen=True):
    price: Decimal
    qty: Decimal


class BookEntry(msgspec.Struct, frozen=True):
    symbol: str
    bids: list[BookLevel] = []
    asks: list[BookLevel] = []
    checksum: int = -1
    timestamp: str = ""


class BookMessage(msgspec.Struct, frozen=True):
    channel: str
    type: str
    data: list[BookEntry] = []


class _Head(msgspec.Struct):
    channel: str | None = None
    ticktape: str | None = None


_head = msgspec.json.Decoder(_Head)
_trades = msgspec.json.Decoder(TradeMessage, strict=False)
_ticker = msgspec.json.Decoder(TickerMessage, strict=False)
_book = msgspec.json.Decoder(BookMessage, strict=False)
_EXPECTED = "channel trade, ticker or book"


def _time(text: str, field: str, default: int) -> int:
    if not text:
        return default
    try:
        return rfc3339_to_ns(text)
    except ValueError:
        raise bad_value(field, "an RFC 3339 timestamp", text) from None


def _levels(levels: list[BookLevel]) -> tuple[list[Level], list[tuple[str, str]]]:
    out: list[Level] = []
    texts: list[tuple[str, str]] = []
    for lv in levels:
        out.append((float(lv.price), float(lv.qty)))
        texts.append((format(lv.price, "f"), format(lv.qty, "f")))
    return out, texts


def _books(msg: BookMessage, src: str, offset: int, ts_recv: int, ts_kafka: int) -> list[FeedRecord]:
    if msg.type not in ("snapshot", "update"):
        raise unsupported("$.type", "snapshot or update", msg.type)
    out: list[FeedRecord] = []
    for i, entry in enumerate(msg.data):
        bids, bid_texts = _levels(entry.bids)
        asks, ask_texts = _levels(entry.asks)
        ts = _time(entry.timestamp, f"$.data[{i}].timestamp", ts_recv)
        out.append(BookUpdate(
            VENUE, normalize(VENUE, entry.symbol), bids, asks, ts, ts_recv, src, offset, ts_kafka,
            snapshot=msg.type == "snapshot", checksum=entry.checksum, texts=(bid_texts, ask_texts),
        ))  # fmt: skip
    return out


def _quotes(msg: TickerMessage, src: str, offset: int, ts_recv: int, ts_kafka: int) -> list[FeedRecord]:
    return [
        Quote(VENUE, normalize(VENUE, t.symbol), t.bid, t.bid_qty, t.ask, t.ask_qty,
              _time(t.timestamp, f"$.data[{i}].timestamp", ts_recv), ts_recv, src, offset, ts_kafka)
        for i, t in enumerate(msg.data)
    ]  # fmt: skip


def decode_frame(raw: bytes, src: str, offset: int, ts_recv: int, ts_kafka: int) -> list[FeedRecord]:
    """The records of one Kraken v2 frame (see the module docstring)."""
    try:
        head = _head.decode(raw)
        channel = head.channel
        if channel == "trade":
            return list(_trades.decode(raw).to_ticks(src, offset, ts_recv, ts_kafka))
        if channel == "ticker":
            return _quotes(_ticker.decode(raw), src, offset, ts_recv, ts_kafka)
        if channel == "book":
            return _books(_book.decode(raw), src, offset, ts_recv, ts_kafka)
        if head.ticktape is not None:
            return [decode_control(raw)]
    except DecodeError:
        raise
    except msgspec.DecodeError as exc:
        raise map_decode_error(exc, raw) from exc
    raise unsupported("$.channel", _EXPECTED, channel if channel is not None else "no `channel`")
