"""Coinbase Advanced Trade market data: ``wss://advanced-trade-ws.coinbase.com``.

One subscription per channel: ``{"type": "subscribe", "channel": "level2",
"product_ids": [...]}`` (``market_trades``, ``ticker``, ``level2``), plus ``heartbeats``
so that quiet connections stay open. Every message carries ``sequence_num``, counting the
connection's messages across channels: the connection checks it (a hole is a ``gap``
control frame, then fresh level2 snapshots by unsubscribe/subscribe). Errors are
``{"type": "error", "message": ...}``.
"""

from __future__ import annotations

import msgspec

from ticktape.connectors.venues.protocol import (
    ACK,
    Classified,
    Kind,
    Stream,
    VenueProtocol,
    encode,
    sequence_num,
)

_CHANNEL = {"trades": "market_trades", "quotes": "ticker", "book": "level2"}


class _Reply(msgspec.Struct):
    type: str = ""
    message: str = ""
    channel: str = ""


_reply = msgspec.json.Decoder(_Reply)


class CoinbaseProtocol(VenueProtocol):
    venue = "coinbase"
    default_url = "wss://advanced-trade-ws.coinbase.com"
    max_streams = 300

    def subscribe(self, streams: list[Stream]) -> list[str]:
        by_channel: dict[str, list[str]] = {}
        for s in streams:
            by_channel.setdefault(_CHANNEL[s.channel], []).append(s.symbol)
        msgs = [
            encode({"type": "subscribe", "product_ids": syms, "channel": ch})
            for ch, syms in sorted(by_channel.items())
        ]
        return [*msgs, encode({"type": "subscribe", "channel": "heartbeats"})]

    def resubscribe_book(self, symbol: str) -> list[str]:
        return [
            encode({"type": "unsubscribe", "product_ids": [symbol], "channel": "level2"}),
            encode({"type": "subscribe", "product_ids": [symbol], "channel": "level2"}),
        ]

    def classify(self, raw: bytes) -> Classified:
        seq = sequence_num(raw)
        head = raw[:40]
        if head.startswith((b'{"channel":"l2_data"', b'{"channel":"market_trades"', b'{"channel":"ticker"')):
            return Classified(Kind.DATA, "", seq)
        if head.startswith((b'{"channel":"heartbeats"', b'{"channel":"subscriptions"')):
            return Classified(Kind.HEARTBEAT, "", seq)
        try:
            reply = _reply.decode(raw)
        except msgspec.DecodeError:
            return Classified(Kind.DATA, "", seq)
        if reply.type == "error":
            return Classified(Kind.ERROR, reply.message or "error", seq)
        if reply.channel in ("heartbeats", "subscriptions"):
            return Classified(Kind.HEARTBEAT, "", seq)
        if reply.type:
            return ACK
        return Classified(Kind.DATA, "", seq)
