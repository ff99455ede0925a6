"""Bybit v5 public streams: ``wss://stream.bybit.com/v5/public/spot`` (or ``linear``).

``{"op": "subscribe", "args": ["publicTrade.BTCUSDT", "orderbook.50.BTCUSDT"]}`` with at
most 10 topics per request; ``{"op": "ping"}`` every 20 s; replies carry ``success`` and
``ret_msg``. The ``quotes`` channel is ``orderbook.1.<symbol>``. A book resync is an
unsubscribe then a subscribe (a fresh snapshot).
"""

from __future__ import annotations

import msgspec

from ticktape.connectors.venues.protocol import ACK, DATA, Classified, Kind, Stream, VenueProtocol, encode

ARGS_PER_REQUEST = 10


class _Reply(msgspec.Struct):
    success: bool | None = None
    ret_msg: str = ""
    op: str = ""


_reply = msgspec.json.Decoder(_Reply)


class BybitProtocol(VenueProtocol):
    venue = "bybit"
    default_url = "wss://stream.bybit.com/v5/public/spot"
    max_streams = 500
    app_ping_every = 20.0

    def topic(self, stream: Stream) -> str:
        if stream.channel == "trades":
            return f"publicTrade.{stream.symbol}"
        if stream.channel == "quotes":
            return f"orderbook.1.{stream.symbol}"
        return f"orderbook.{self.cfg.book_depth or 50}.{stream.symbol}"

    def subscribe(self, streams: list[Stream]) -> list[str]:
        topics = [self.topic(s) for s in streams]
        return [
            encode(
                {
                    "op": "subscribe",
                    "args": topics[i : i + ARGS_PER_REQUEST],
                    "req_id": str(i // ARGS_PER_REQUEST),
                }
            )
            for i in range(0, len(topics), ARGS_PER_REQUEST)
        ]

    def resubscribe_book(self, symbol: str) -> list[str]:
        topic = self.topic(Stream("book", symbol))
        return [encode({"op": "unsubscribe", "args": [topic]}), encode({"op": "subscribe", "args": [topic]})]

    def app_ping(self) -> str | None:
        return encode({"op": "ping"})

    def classify(self, raw: bytes) -> Classified:
        if raw[:9] == b'{"topic":':
            return DATA
        try:
            reply = _reply.decode(raw)
        except msgspec.DecodeError:
            return DATA
        if reply.success is None and not reply.op:
            return DATA
        if reply.success is False:
            return Classified(Kind.ERROR, f"{reply.op or 'request'}: {reply.ret_msg or 'refused'}")
        return ACK
