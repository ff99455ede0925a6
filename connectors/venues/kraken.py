"""Kraken WebSocket API v2: ``wss://ws.kraken.com/v2``.

Subscriptions ``{"method": "subscribe", "params": {"channel": "book", "symbol":
["BTC/USD"], "depth": 10}}`` (channels ``trade``, ``ticker``, ``book``); replies carry
``success``; ``{"channel": "heartbeat"}`` arrives every second; ``{"method": "ping"}``
keeps the connection alive. A book resync is an unsubscribe then a subscribe (the venue
sends a fresh snapshot). Book checksums: :mod:`ticktape.schemas.books.checksum`.
"""

from __future__ import annotations

import msgspec

from ticktape.connectors.venues.protocol import (
    ACK,
    DATA,
    HEARTBEAT,
    Classified,
    Kind,
    Stream,
    VenueProtocol,
    encode,
)

_CHANNEL = {"trades": "trade", "quotes": "ticker", "book": "book"}


class _Reply(msgspec.Struct):
    method: str = ""
    success: bool = True
    error: str = ""


_reply = msgspec.json.Decoder(_Reply)


class KrakenProtocol(VenueProtocol):
    venue = "kraken"
    default_url = "wss://ws.kraken.com/v2"
    max_streams = 300
    app_ping_every = 30.0

    def _params(self, channel: str, symbols: list[str]) -> dict[str, object]:
        params: dict[str, object] = {"channel": channel, "symbol": symbols}
        if channel == "book":
            params["depth"] = self.cfg.book_depth or 100
        return params

    def subscribe(self, streams: list[Stream]) -> list[str]:
        by_channel: dict[str, list[str]] = {}
        for s in streams:
            by_channel.setdefault(_CHANNEL[s.channel], []).append(s.symbol)
        return [
            encode({"method": "subscribe", "params": self._params(ch, syms), "req_id": i + 1})
            for i, (ch, syms) in enumerate(sorted(by_channel.items()))
        ]

    def resubscribe_book(self, symbol: str) -> list[str]:
        return [
            encode({"method": "unsubscribe", "params": self._params("book", [symbol])}),
            encode({"method": "subscribe", "params": self._params("book", [symbol])}),
        ]

    def app_ping(self) -> str | None:
        return encode({"method": "ping"})

    def classify(self, raw: bytes) -> Classified:
        head = raw[:24]
        if head.startswith((b'{"channel":"book"', b'{"channel":"trade"', b'{"channel":"ticker"')):
            return DATA
        if head.startswith((b'{"channel":"heartbeat"', b'{"channel":"status"')):
            return HEARTBEAT
        try:
            reply = _reply.decode(raw)
        except msgspec.DecodeError:
            return DATA
        if not reply.method:
            return DATA
        if not reply.success:
            return Classified(Kind.ERROR, f"{reply.method}: {reply.error or 'refused'}")
        return ACK
