"""Coinbase Advanced Trade WebSocket, ``market_trades`` channel.

One message carries ``events[].trades[]``; each trade has ``trade_id`` (numeric text),
``product_id`` (already ``BTC-USD``), ``price``/``size`` (decimal strings, made floats
by msgspec: ``strict=False``), ``side`` (``BUY``/``SELL``) and ``time`` (RFC 3339 with
microseconds). Messages of other channels (``ticker``, ``heartbeats``,
``subscriptions``, ...) are ``UNSUPPORTED_MESSAGE``.
"""

from __future__ import annotations

import msgspec

from ticktape.schemas.errors import DecodeError
from ticktape.schemas.records import Tick
from ticktape.schemas.symbols import normalize
from ticktape.schemas.timeparse import rfc3339_to_ns
from ticktape.schemas.venues import side_of, trade_no_of
from ticktape.schemas.venues._errors import bad_value, kind_error, unsupported

VENUE = "coinbase"
CHANNEL = "market_trades"


class MarketTrade(msgspec.Struct, frozen=True):
    """One trade of a ``market_trades`` event."""

    trade_id: str
    product_id: str
    price: float
    size: float
    side: str
    time: str


class TradesEvent(msgspec.Struct, frozen=True):
    """An ``update`` or ``snapshot`` event with its trades."""

    type: str = ""
    trades: list[MarketTrade] = []


class MarketTrades(msgspec.Struct, frozen=True):
    """A ``market_trades`` channel message."""

    channel: str
    events: list[TradesEvent] = []
    timestamp: str = ""
    sequence_num: int = 0

    def to_ticks(self, src: str, offset: int, ts_recv: int, ts_kafka: int) -> list[Tick]:
        """One tick per trade, in message order."""
        ticks: list[Tick] = []
        for e, event in enumerate(self.events):
            for t, trade in enumerate(event.trades):
                try:
                    ts_event = rfc3339_to_ns(trade.time)
                except ValueError:
                    raise _bad_time(e, t, trade.time) from None
                tid = trade.trade_id
                ticks.append(
                    Tick(
                        VENUE,
                        normalize(VENUE, trade.product_id),
                        trade.price,
                        trade.size,
                        side_of(trade.side),
                        tid,
                        ts_event,
                        ts_recv,
                        src,
                        offset,
                        ts_kafka,
                        trade_no_of(tid),
                    )
                )
        return ticks


def _bad_time(e: int, t: int, text: str) -> DecodeError:
    return bad_value(f"$.events[{e}].trades[{t}].time", "an RFC 3339 timestamp", text)


class _Envelope(msgspec.Struct):
    channel: str | None = None


_decoder = msgspec.json.Decoder(MarketTrades, strict=False)
_envelope_decoder = msgspec.json.Decoder(_Envelope)


def _unsupported(channel: str) -> DecodeError:
    return unsupported("$.channel", f"channel {CHANNEL}", channel)


def _is_channel(channel: str) -> bool:
    return channel == CHANNEL


def decode_market_trades(raw: bytes, src: str, offset: int, ts_recv: int, ts_kafka: int) -> list[Tick]:
    """Decode a ``market_trades`` message into its trades (other channels: UNSUPPORTED)."""
    try:
        msg = _decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise kind_error(
            exc,
            raw,
            envelope=_envelope_decoder,
            key="channel",
            supported=_is_channel,
            expected=f"channel {CHANNEL}",
        ) from exc
    if msg.channel != CHANNEL:
        raise _unsupported(msg.channel)
    return msg.to_ticks(src, offset, ts_recv, ts_kafka)
