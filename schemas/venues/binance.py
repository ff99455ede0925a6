"""Binance trade streams: ``<symbol>@trade`` and ``<symbol>@aggTrade``.

Wire keys (single letters): ``e`` event type, ``E`` event time (ms), ``s`` symbol,
``t`` trade id / ``a`` aggregate trade id, ``p`` price and ``q`` quantity (decimal
strings, turned into floats by msgspec while decoding: the decoders run with
``strict=False``), ``T`` trade time (ms), ``m`` "buyer is the maker". The aggressor is the taker,
so ``m == true`` means a **sell** hit the bid and ``m == false`` a **buy** lifted the
offer. Other keys (``M``, ``f``, ``l``, ``st``, ...) are ignored.

``decode_any`` accepts both kinds in one decoding pass (a union tagged on ``e``); any
other event (``bookTicker``, ``depthUpdate``, subscription replies) is
``UNSUPPORTED_MESSAGE``.
"""

from __future__ import annotations

import msgspec

from ticktape.schemas.records import BUY, SELL, Tick
from ticktape.schemas.symbols import normalize
from ticktape.schemas.venues import trade_no_int
from ticktape.schemas.venues._errors import kind_error

VENUE = "binance"
EVENTS = ("trade", "aggTrade")


class Trade(msgspec.Struct, frozen=True, tag_field="e", tag="trade"):
    """One ``trade`` stream event (the ``e`` tag is checked when present)."""

    symbol: str = msgspec.field(name="s")
    trade_id: int = msgspec.field(name="t")
    price: float = msgspec.field(name="p")
    qty: float = msgspec.field(name="q")
    trade_time: int = msgspec.field(name="T")
    buyer_is_maker: bool = msgspec.field(name="m")
    event_time: int = msgspec.field(name="E", default=0)

    def to_ticks(self, src: str, offset: int, ts_recv: int, ts_kafka: int) -> list[Tick]:
        """The normalized tick of this trade."""
        tid = self.trade_id
        return [
            Tick(
                VENUE,
                normalize(VENUE, self.symbol),
                self.price,
                self.qty,
                SELL if self.buyer_is_maker else BUY,
                str(tid),
                self.trade_time * 1_000_000,
                ts_recv,
                src,
                offset,
                ts_kafka,
                trade_no_int(tid),
            )
        ]


class AggTrade(msgspec.Struct, frozen=True, tag_field="e", tag="aggTrade"):
    """One ``aggTrade`` stream event: trades ``f``..``l`` filled by one taker order."""

    symbol: str = msgspec.field(name="s")
    agg_id: int = msgspec.field(name="a")
    price: float = msgspec.field(name="p")
    qty: float = msgspec.field(name="q")
    trade_time: int = msgspec.field(name="T")
    buyer_is_maker: bool = msgspec.field(name="m")
    first_trade_id: int = msgspec.field(name="f", default=-1)
    last_trade_id: int = msgspec.field(name="l", default=-1)
    event_time: int = msgspec.field(name="E", default=0)

    def to_ticks(self, src: str, offset: int, ts_recv: int, ts_kafka: int) -> list[Tick]:
        """The normalized tick of this aggregate trade (its id is the ``a`` id)."""
        aid = self.agg_id
        return [
            Tick(
                VENUE,
                normalize(VENUE, self.symbol),
                self.price,
                self.qty,
                SELL if self.buyer_is_maker else BUY,
                str(aid),
                self.trade_time * 1_000_000,
                ts_recv,
                src,
                offset,
                ts_kafka,
                trade_no_int(aid),
            )
        ]


class _Envelope(msgspec.Struct):
    e: str | None = None


_trade_decoder = msgspec.json.Decoder(Trade, strict=False)
_agg_decoder = msgspec.json.Decoder(AggTrade, strict=False)
_any_decoder: msgspec.json.Decoder[Trade | AggTrade] = msgspec.json.Decoder(Trade | AggTrade, strict=False)
_envelope_decoder = msgspec.json.Decoder(_Envelope)


def _fail(
    exc: msgspec.DecodeError | RecursionError, raw: bytes, events: tuple[str, ...], need_e: bool
) -> Exception:
    """UNSUPPORTED for another event type (or for no ``e`` when ``need_e``), else the
    mapped msgspec error."""
    return kind_error(
        exc,
        raw,
        envelope=_envelope_decoder,
        key="e",
        supported=events.__contains__,
        expected=f"event type {' or '.join(events)}",
        missing_ok=not need_e,
    )


def decode_trade(raw: bytes, src: str, offset: int, ts_recv: int, ts_kafka: int) -> list[Tick]:
    """Decode a ``trade`` event."""
    try:
        msg = _trade_decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise _fail(exc, raw, EVENTS[:1], False) from exc
    return msg.to_ticks(src, offset, ts_recv, ts_kafka)


def decode_agg_trade(raw: bytes, src: str, offset: int, ts_recv: int, ts_kafka: int) -> list[Tick]:
    """Decode an ``aggTrade`` event."""
    try:
        msg = _agg_decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise _fail(exc, raw, EVENTS[1:], False) from exc
    return msg.to_ticks(src, offset, ts_recv, ts_kafka)


def decode_any(raw: bytes, src: str, offset: int, ts_recv: int, ts_kafka: int) -> list[Tick]:
    """Decode a ``trade`` or ``aggTrade`` event, dispatching on ``e``."""
    try:
        msg = _any_decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise _fail(exc, raw, EVENTS, True) from exc
    return msg.to_ticks(src, offset, ts_recv, ts_kafka)
