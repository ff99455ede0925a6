"""Binance spot: combined streams named in the URL, REST depth snapshots.

``<url>/stream?streams=btcusdt@trade/btcusdt@bookTicker/btcusdt@depth@100ms``; at most
1024 streams per connection; the server pings every 20 s (the library answers) and
closes every connection after 24 h (configure ``lifetime``, e.g. ``23h50m``, for a
planned reconnect with overlap). Book sync: the REST snapshot
``<rest_url>/api/v3/depth?symbol=BTCUSDT&limit=1000`` then the diffs (see
:mod:`ticktape.schemas.books.keeper`). Replies ``{"result": ..., "id": ...}`` are acks;
``{"code": ..., "msg": ...}`` is an error.
"""

from __future__ import annotations

import msgspec

from ticktape.connectors.venues.protocol import ACK, DATA, Classified, Kind, Stream, VenueProtocol

_STREAM = {"trades": "trade", "agg_trades": "aggTrade", "quotes": "bookTicker"}


class _Reply(msgspec.Struct):
    code: int | None = None
    msg: str = ""
    id: int | str | None = None


_reply = msgspec.json.Decoder(_Reply)


class BinanceProtocol(VenueProtocol):
    venue = "binance"
    default_url = "wss://stream.binance.com:9443"
    default_rest_url = "https://api.binance.com"
    max_streams = 1024
    rest_snapshots = True

    def stream_name(self, stream: Stream) -> str:
        sym = stream.symbol.lower()
        if stream.channel == "book":
            depth = self.cfg.partial_depth
            return f"{sym}@depth{depth}@100ms" if depth else f"{sym}@depth@100ms"
        return f"{sym}@{_STREAM[stream.channel]}"

    def connect_url(self, streams: list[Stream]) -> str:
        return f"{self.url}/stream?streams={'/'.join(self.stream_name(s) for s in streams)}"

    def snapshot_url(self, symbol: str) -> str:
        limit = self.cfg.book_depth or 1000
        return f"{self.rest_url}/api/v3/depth?symbol={symbol.upper()}&limit={limit}"

    def book_symbols(self, streams: list[Stream]) -> list[str]:
        # partial depth is a snapshot every message: nothing to resync from REST
        return [] if self.cfg.partial_depth else super().book_symbols(streams)

    def classify(self, raw: bytes) -> Classified:
        if raw[:10] == b'{"stream":':
            return DATA
        try:
            reply = _reply.decode(raw)
        except msgspec.DecodeError:
            return DATA  # the decoder makes it a dead letter
        if reply.code is not None:
            return Classified(Kind.ERROR, f"code {reply.code}: {reply.msg}")
        if reply.id is not None:
            return ACK
        return DATA
