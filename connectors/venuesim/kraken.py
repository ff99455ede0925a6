"""The simulated Kraken (WS API v2): ``subscribe``/``unsubscribe``/``ping`` methods, book
snapshots on subscribe with their CRC32 checksum, a heartbeat every second.

Numbers are written with the tape's fixed decimals (``100.50``), so a client that keeps
each level's text computes the same checksum as the venue.
"""

from __future__ import annotations

import msgspec

from ticktape.connectors.venuesim.market import Change, SyntheticMarket, Trade
from ticktape.connectors.venuesim.tape import BookOp, Item, Tape, fmt
from ticktape.connectors.venuesim.venue import SimConn, SimVenue
from ticktape.schemas.books.book import L2Book
from ticktape.schemas.books.checksum import kraken_checksum
from ticktape.schemas.timeparse import ns_to_iso

_enc = msgspec.json.Encoder()
_KEY = {"trade": "trades", "ticker": "quotes", "book": "book"}


def venue_symbol(symbol: str) -> str:
    return symbol.replace("-", "/")


def _levels_json(texts: list[tuple[str, str]]) -> bytes:
    return (
        b"[" + b",".join(b'{"price":' + p.encode() + b',"qty":' + q.encode() + b"}" for p, q in texts) + b"]"
    )


def book_frame(kind: str, symbol: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]], checksum: int,
               ts_ms: int | None) -> bytes:  # fmt: skip
    stamp = b',"timestamp":"' + ns_to_iso(ts_ms * 1_000_000).encode() + b'"' if ts_ms is not None else b""
    return (b'{"channel":"book","type":"' + kind.encode() + b'","data":[{"symbol":"' + symbol.encode()
            + b'","bids":' + _levels_json(bids) + b',"asks":' + _levels_json(asks) + b',"checksum":'
            + str(checksum).encode() + stamp + b"}]}")  # fmt: skip


class KrakenSim(SimVenue):
    venue = "kraken"

    def on_message(self, conn: SimConn, text: bytes) -> list[bytes]:
        try:
            request = msgspec.json.decode(text)
        except msgspec.DecodeError:
            return [b'{"error":"Malformed request","method":"","success":false}']
        if not isinstance(request, dict):
            return [b'{"error":"Malformed request","method":"","success":false}']
        method = request.get("method")
        req_id = request.get("req_id")
        if method == "ping":
            return [_enc.encode({"method": "pong", "req_id": req_id})]
        if method not in ("subscribe", "unsubscribe"):
            return [
                _enc.encode({"error": f"Unsupported method {method}", "method": method, "success": False})
            ]
        params = request.get("params") or {}
        channel = params.get("channel")
        if channel not in _KEY:
            return [
                _enc.encode(
                    {"error": "Channel not found", "method": method, "success": False, "req_id": req_id}
                )
            ]
        out: list[bytes] = []
        for symbol in params.get("symbol") or []:
            key = (_KEY[channel], symbol)
            if method == "unsubscribe":
                conn.subs.discard(key)
                out.append(_enc.encode({"method": method, "result": {"channel": channel, "symbol": symbol},
                                        "success": True, "req_id": req_id}))  # fmt: skip
                continue
            if symbol not in self.books and key[0] == "book":
                out.append(_enc.encode({"error": f"Currency pair not supported {symbol}", "method": method,
                                        "success": False, "req_id": req_id}))  # fmt: skip
                continue
            conn.subs.add(key)
            depth = int(params.get("depth") or 10)
            out.append(_enc.encode({"method": method, "result": {"channel": channel, "symbol": symbol, "depth": depth},
                                    "success": True, "req_id": req_id}))  # fmt: skip
            if key[0] == "book":
                conn.depth[symbol] = depth
                out.append(self.snapshot(symbol, depth))
        return out

    def snapshot(self, symbol: str, depth: int) -> bytes:
        book = self.books[symbol]
        return book_frame("snapshot", symbol, book.bids.top_texts(depth), book.asks.top_texts(depth),
                          kraken_checksum(book), None)  # fmt: skip

    def heartbeat(self, conn: SimConn) -> bytes | None:
        return b'{"channel":"heartbeat"}' if conn.subs else None


def synthetic_tape(market: SyntheticMarket, events: int) -> Tape:
    """``events`` market events as Kraken v2 frames (book updates carry the checksum of
    the book after them; a ticker whenever the top changes)."""
    pd, sd = market.pd, market.sd
    books: dict[str, tuple[list[tuple[float, float]], list[tuple[float, float]], int]] = {}
    local: dict[str, L2Book] = {}
    tops: dict[str, tuple[float, float, float, float] | None] = {}
    for symbol in market.symbols:
        bids, asks = market.initial(symbol)
        vs = venue_symbol(symbol)
        books[vs] = (bids, asks, -1)
        book = local[symbol] = L2Book(10_000, keep_text=True)
        book.load(
            bids,
            asks,
            -1,
            ([(fmt(p, pd), fmt(q, sd)) for p, q in bids], [(fmt(p, pd), fmt(q, sd)) for p, q in asks]),
        )
        tops[symbol] = None
    items: list[Item] = []
    for ev in market.events(events):
        vs = venue_symbol(ev.symbol)
        if isinstance(ev, Trade):
            trade = {"symbol": vs, "side": "buy" if ev.buy else "sell", "price": "PRICE", "qty": "QTY",
                     "ord_type": "market", "trade_id": ev.trade_id, "timestamp": ns_to_iso(ev.ts_ms * 1_000_000)}  # fmt: skip
            frame = _enc.encode({"channel": "trade", "type": "update", "data": [trade]})
            frame = frame.replace(b'"PRICE"', fmt(ev.price, pd).encode()).replace(
                b'"QTY"', fmt(ev.size, sd).encode()
            )
            items.append(Item(("trades", vs), frame))
            continue
        assert isinstance(ev, Change)
        book = local[ev.symbol]
        bid_texts = [(fmt(p, pd), fmt(q, sd)) for p, q in ev.bids]
        ask_texts = [(fmt(p, pd), fmt(q, sd)) for p, q in ev.asks]
        book.apply(ev.bids, ev.asks, -1, (bid_texts, ask_texts))
        frame = book_frame("update", vs, bid_texts, ask_texts, kraken_checksum(book), ev.ts_ms)
        items.append(Item(("book", vs), frame, BookOp(vs, ev.bids, ev.asks, -1)))
        bid, ask = book.best_bid(), book.best_ask()
        if bid is None or ask is None:
            continue
        top = (*bid, *ask)
        if top != tops[ev.symbol]:
            tops[ev.symbol] = top
            ticker = (b'{"channel":"ticker","type":"update","data":[{"symbol":"' + vs.encode() + b'","bid":'
                      + fmt(bid[0], pd).encode() + b',"bid_qty":' + fmt(bid[1], sd).encode() + b',"ask":'
                      + fmt(ask[0], pd).encode() + b',"ask_qty":' + fmt(ask[1], sd).encode() + b',"timestamp":"'
                      + ns_to_iso(ev.ts_ms * 1_000_000).encode() + b'"}]}')  # fmt: skip
            items.append(Item(("quotes", vs), ticker))
    return Tape("kraken", items, books, price_decimals=pd, size_decimals=sd)
