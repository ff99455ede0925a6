"""Binance spot WebSocket frames: combined streams (``{"stream": ..., "data": ...}``) or
raw streams, of ``trade``, ``aggTrade``, ``bookTicker``, ``depth`` diffs
(``<symbol>@depth``, ``@depth@100ms``) and partial depth (``<symbol>@depth<N>[@100ms]``).

* ``bookTicker`` -> :class:`Quote` (``u`` is its ``update_id``; spot sends no event time,
  so ``ts_event`` is the receive time; futures' ``E`` is used when present);
* ``depthUpdate`` -> :class:`BookUpdate` with ``first_id = U``, ``last_id = u`` (and
  ``prev_id = pu`` on futures);
* partial depth and the REST ``/api/v3/depth`` snapshot (a ``snapshot`` control frame)
  -> :class:`BookUpdate` with ``snapshot=True`` and ``last_id = lastUpdateId``; partial
  depth carries no symbol, so it comes from the stream name.

Prices and sizes are decimal strings made floats while decoding (``strict=False``). Other
streams (``kline_1m``, ...) are ``UNSUPPORTED_MESSAGE``.
"""

from __future__ import annotations

import msgspec

from ticktape.schemas.errors import DecodeError
from ticktape.schemas.records import BookUpdate, Level, Quote
from ticktape.schemas.symbols import normalize
from ticktape.schemas.venues._errors import map_decode_error, unsupported
from ticktape.schemas.venues.binance import VENUE, AggTrade, Trade
from ticktape.schemas.venues.feeds import FeedRecord
from ticktape.schemas.venues.feeds.control import SNAPSHOT, decode_control

_MS = 1_000_000


class BookTicker(msgspec.Struct, frozen=True):
    """``<symbol>@bookTicker``: best bid/ask (spot has no ``e``/``E``)."""

    update_id: int = msgspec.field(name="u")
    symbol: str = msgspec.field(name="s")
    bid: float = msgspec.field(name="b")
    bid_qty: float = msgspec.field(name="B")
    ask: float = msgspec.field(name="a")
    ask_qty: float = msgspec.field(name="A")
    event_time: int = msgspec.field(name="E", default=0)


class DepthUpdate(msgspec.Struct, frozen=True):
    """``<symbol>@depth[@100ms]``: levels changed between update ids ``U`` and ``u``."""

    event_time: int = msgspec.field(name="E")
    symbol: str = msgspec.field(name="s")
    first_id: int = msgspec.field(name="U")
    last_id: int = msgspec.field(name="u")
    bids: list[Level] = msgspec.field(name="b")
    asks: list[Level] = msgspec.field(name="a")
    prev_id: int = msgspec.field(name="pu", default=-1)


class Depth(msgspec.Struct, frozen=True):
    """Partial depth (``<symbol>@depth5``) and the REST depth snapshot: the whole top of
    the book after update ``lastUpdateId``."""

    last_update_id: int = msgspec.field(name="lastUpdateId")
    bids: list[Level]
    asks: list[Level]


class _Head(msgspec.Struct):
    """The top level of any frame: combined (``stream``/``data``), raw (``e``) or control."""

    stream: str | None = None
    data: msgspec.Raw = msgspec.Raw(b"")
    e: str | None = None
    ticktape: str | None = None


_head = msgspec.json.Decoder(_Head)
_trade = msgspec.json.Decoder(Trade, strict=False)
_agg = msgspec.json.Decoder(AggTrade, strict=False)
_ticker = msgspec.json.Decoder(BookTicker, strict=False)
_depth_update = msgspec.json.Decoder(DepthUpdate, strict=False)
_depth = msgspec.json.Decoder(Depth, strict=False)
_EXPECTED = "stream trade, aggTrade, bookTicker, depth or depth<N>"


def _quote(t: BookTicker, src: str, offset: int, ts_recv: int, ts_kafka: int) -> Quote:
    ts = t.event_time * _MS if t.event_time > 0 else ts_recv
    return Quote(VENUE, normalize(VENUE, t.symbol), t.bid, t.bid_qty, t.ask, t.ask_qty, ts, ts_recv,
                 src, offset, ts_kafka, t.update_id)  # fmt: skip


def _update(d: DepthUpdate, src: str, offset: int, ts_recv: int, ts_kafka: int) -> BookUpdate:
    return BookUpdate(VENUE, normalize(VENUE, d.symbol), d.bids, d.asks, d.event_time * _MS, ts_recv, src,
                      offset, ts_kafka, d.first_id, d.last_id, d.prev_id)  # fmt: skip


def _snapshot(
    d: Depth, symbol: str, ts: int, src: str, offset: int, ts_recv: int, ts_kafka: int
) -> BookUpdate:
    return BookUpdate(VENUE, normalize(VENUE, symbol), d.bids, d.asks, ts, ts_recv, src, offset, ts_kafka,
                      -1, d.last_update_id, -1, True)  # fmt: skip


def _data(stream: str, data: bytes, src: str, offset: int, ts_recv: int, ts_kafka: int) -> list[FeedRecord]:
    symbol, _, kind = stream.partition("@")
    if kind == "trade":
        return list(_trade.decode(data).to_ticks(src, offset, ts_recv, ts_kafka))
    if kind == "aggTrade":
        return list(_agg.decode(data).to_ticks(src, offset, ts_recv, ts_kafka))
    if kind == "bookTicker":
        return [_quote(_ticker.decode(data), src, offset, ts_recv, ts_kafka)]
    if kind.startswith("depth"):
        name = kind.partition("@")[0]
        if name == "depth":
            return [_update(_depth_update.decode(data), src, offset, ts_recv, ts_kafka)]
        if name[5:].isdigit():
            return [_snapshot(_depth.decode(data), symbol, ts_recv, src, offset, ts_recv, ts_kafka)]
    raise unsupported("$.stream", _EXPECTED, stream)


def _event(
    kind: str | None, raw: bytes, src: str, offset: int, ts_recv: int, ts_kafka: int
) -> list[FeedRecord]:
    """A raw (not combined) stream event, by its ``e``; ``bookTicker`` has none on spot."""
    if kind == "trade":
        return list(_trade.decode(raw).to_ticks(src, offset, ts_recv, ts_kafka))
    if kind == "aggTrade":
        return list(_agg.decode(raw).to_ticks(src, offset, ts_recv, ts_kafka))
    if kind == "depthUpdate":
        return [_update(_depth_update.decode(raw), src, offset, ts_recv, ts_kafka)]
    if kind in (None, "bookTicker"):
        return [_quote(_ticker.decode(raw), src, offset, ts_recv, ts_kafka)]
    raise unsupported("$.e", "event trade, aggTrade, depthUpdate or bookTicker", kind)


def _control(raw: bytes, src: str, offset: int, ts_recv: int, ts_kafka: int) -> list[FeedRecord]:
    ctrl = decode_control(raw)
    if ctrl.ticktape != SNAPSHOT:
        return [ctrl]
    depth = _depth.decode(ctrl.data)
    return [_snapshot(depth, ctrl.symbol, ctrl.ts or ts_recv, src, offset, ts_recv, ts_kafka)]


def decode_frame(raw: bytes, src: str, offset: int, ts_recv: int, ts_kafka: int) -> list[FeedRecord]:
    """The records of one Binance frame (see the module docstring)."""
    try:
        head = _head.decode(raw)
        if head.stream is not None and head.data:
            return _data(head.stream, head.data, src, offset, ts_recv, ts_kafka)
        if head.ticktape is not None:
            return _control(raw, src, offset, ts_recv, ts_kafka)
        return _event(head.e, raw, src, offset, ts_recv, ts_kafka)
    except DecodeError:
        raise
    except msgspec.DecodeError as exc:
        raise map_decode_error(exc, raw) from exc


__all__ = ["decode_frame"]
