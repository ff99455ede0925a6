"""Kraken WebSocket API v2, ``trade`` channel (``snapshot`` and ``update`` messages).

``data[]`` holds trades with ``symbol`` (``BTC/USD``; v1-style ``XBT/USD`` is aliased),
``side`` (``buy``/``sell``), ``price``/``qty`` (JSON numbers), ``ord_type``,
``trade_id`` (integer) and ``timestamp`` (RFC 3339, microseconds). Other channels
(``heartbeat``, ``status``, ``book``, ...) and method replies (no ``channel``) are
``UNSUPPORTED_MESSAGE``.

The REST ``Trades`` reply (history files) is described here too (:class:`RestTradeRow`);
:mod:`ticktape.schemas.history` reads it.
"""

from __future__ import annotations

import msgspec

from ticktape.schemas.errors import DecodeError
from ticktape.schemas.records import Tick
from ticktape.schemas.symbols import normalize
from ticktape.schemas.timeparse import rfc3339_to_ns, s_to_ns
from ticktape.schemas.venues import side_of, trade_no_int
from ticktape.schemas.venues._errors import bad_value, kind_error, unsupported

VENUE = "kraken"
CHANNEL = "trade"


class KrakenTrade(msgspec.Struct, frozen=True):
    """One entry of ``data[]``."""

    symbol: str
    side: str
    price: float
    qty: float
    trade_id: int
    timestamp: str
    ord_type: str = ""


class TradeMessage(msgspec.Struct, frozen=True):
    """A ``trade`` channel message."""

    channel: str
    type: str = ""
    data: list[KrakenTrade] = []

    def to_ticks(self, src: str, offset: int, ts_recv: int, ts_kafka: int) -> list[Tick]:
        """One tick per entry of ``data``, in message order."""
        ticks: list[Tick] = []
        for i, trade in enumerate(self.data):
            try:
                ts_event = rfc3339_to_ns(trade.timestamp)
            except ValueError:
                raise bad_value(f"$.data[{i}].timestamp", "an RFC 3339 timestamp", trade.timestamp) from None
            tid = trade.trade_id
            ticks.append(
                Tick(
                    VENUE,
                    normalize(VENUE, trade.symbol),
                    trade.price,
                    trade.qty,
                    side_of(trade.side),
                    str(tid),
                    ts_event,
                    ts_recv,
                    src,
                    offset,
                    ts_kafka,
                    trade_no_int(tid),
                )
            )
        return ticks


_REST_SIDES = {"b": "buy", "s": "sell"}


class RestTradeRow(msgspec.Struct, frozen=True, array_like=True):
    """A row of the REST ``Trades`` reply: ``[price, volume, time_s, "b"|"s", "l"|"m",
    misc, trade_id]`` (time kept as raw text; venue and symbol come from the reply)."""

    price: float
    volume: float
    time: msgspec.Raw
    side: str
    ord_type: str
    misc: str
    trade_id: int | None = None

    def to_ticks(
        self, src: str, offset: int, ts_recv: int, ts_kafka: int, *, venue: str, symbol: str
    ) -> list[Tick]:
        """The tick of this row; ``time`` is converted exactly from its decimal text."""
        text = bytes(self.time).decode().strip('"')
        try:
            ts_event = s_to_ns(text)
        except ValueError:
            raise bad_value("$[2]", "a time in seconds", text) from None
        tid = self.trade_id
        side = _REST_SIDES.get(self.side) or side_of(self.side)
        return [
            Tick(venue, symbol, self.price, self.volume, side, "" if tid is None else str(tid),
                 ts_event, ts_recv, src, offset, ts_kafka, -1 if tid is None else trade_no_int(tid))
        ]  # fmt: skip


class RestTradesReply(msgspec.Struct):
    """The REST ``Trades`` reply; ``result`` maps the pair name to its rows (and
    ``last`` to the paging cursor)."""

    error: list[str] = []
    result: dict[str, msgspec.Raw] = {}


class _Envelope(msgspec.Struct):
    channel: str | None = None


_decoder = msgspec.json.Decoder(TradeMessage, strict=False)
_envelope_decoder = msgspec.json.Decoder(_Envelope)


def _unsupported(channel: str) -> DecodeError:
    return unsupported("$.channel", f"channel {CHANNEL}", channel)


def _is_channel(channel: str) -> bool:
    return channel == CHANNEL


def decode_trade(raw: bytes, src: str, offset: int, ts_recv: int, ts_kafka: int) -> list[Tick]:
    """Decode a ``trade`` channel message into its trades (other channels: UNSUPPORTED)."""
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
