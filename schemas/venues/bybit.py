"""Bybit WebSocket v5 public trades (topic ``publicTrade.<symbol>``; the older
``trade.<category>.<symbol>`` topic has the same payload).

``data[]`` holds trades with ``T`` trade time (ms), ``s`` symbol (``BTCUSDT``), ``S``
side (``Buy``/``Sell``, the taker side), ``v`` size and ``p`` price (decimal strings,
made floats by msgspec: ``strict=False``), ``i`` trade id (a UUID on derivatives,
numeric text on spot) and ``BT`` block-trade flag. Other topics (``orderbook.*``,
``tickers.*``) and operation replies (no ``topic``) are ``UNSUPPORTED_MESSAGE``.
"""

from __future__ import annotations

import msgspec

from ticktape.schemas.errors import DecodeError
from ticktape.schemas.records import Tick
from ticktape.schemas.symbols import normalize
from ticktape.schemas.venues import side_of, trade_no_of
from ticktape.schemas.venues._errors import kind_error, unsupported

VENUE = "bybit"
TOPIC_PREFIXES = ("publicTrade", "trade.")


class BybitTrade(msgspec.Struct, frozen=True):
    """One entry of ``data[]``."""

    trade_time: int = msgspec.field(name="T")
    symbol: str = msgspec.field(name="s")
    side: str = msgspec.field(name="S")
    size: float = msgspec.field(name="v")
    price: float = msgspec.field(name="p")
    trade_id: str = msgspec.field(name="i")
    block_trade: bool = msgspec.field(name="BT", default=False)


class PublicTrade(msgspec.Struct, frozen=True):
    """A ``publicTrade`` topic message (``type`` is ``snapshot``)."""

    topic: str
    type: str = ""
    ts: int = 0
    data: list[BybitTrade] = []

    def to_ticks(self, src: str, offset: int, ts_recv: int, ts_kafka: int) -> list[Tick]:
        """One tick per entry of ``data``, in message order."""
        return [
            Tick(
                VENUE,
                normalize(VENUE, trade.symbol),
                trade.price,
                trade.size,
                side_of(trade.side),
                trade.trade_id,
                trade.trade_time * 1_000_000,
                ts_recv,
                src,
                offset,
                ts_kafka,
                trade_no_of(trade.trade_id),
            )
            for trade in self.data
        ]


class _Envelope(msgspec.Struct):
    topic: str | None = None


_decoder = msgspec.json.Decoder(PublicTrade, strict=False)
_envelope_decoder = msgspec.json.Decoder(_Envelope)
_EXPECTED = "topic publicTrade.<symbol> or trade.<category>.<symbol>"


def _is_trade_topic(topic: str) -> bool:
    return topic.startswith(TOPIC_PREFIXES)


def _unsupported(topic: str) -> DecodeError:
    return unsupported("$.topic", _EXPECTED, topic)


def decode_public_trade(raw: bytes, src: str, offset: int, ts_recv: int, ts_kafka: int) -> list[Tick]:
    """Decode a public-trade message into its trades (other topics: UNSUPPORTED)."""
    try:
        msg = _decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise kind_error(
            exc,
            raw,
            envelope=_envelope_decoder,
            key="topic",
            supported=_is_trade_topic,
            expected=_EXPECTED,
        ) from exc
    if not msg.topic.startswith(TOPIC_PREFIXES):
        raise _unsupported(msg.topic)
    return msg.to_ticks(src, offset, ts_recv, ts_kafka)
