"""The simulated Bybit v5 public feed: ``op`` subscribe/unsubscribe/ping, order-book
snapshots on subscribe (``u`` continues from the last delta), ``orderbook.1`` as quotes.
"""

from __future__ import annotations

import time

import msgspec

from ticktape.connectors.venuesim.market import Change, SyntheticMarket, Trade
from ticktape.connectors.venuesim.tape import BookOp, Item, Tape, fmt
from ticktape.connectors.venuesim.venue import SimConn, SimVenue
from ticktape.schemas.books.book import L2Book

_enc = msgspec.json.Encoder()
FIRST_U = 100


def venue_symbol(symbol: str) -> str:
    return symbol.replace("-", "")


def topic_key(topic: str) -> tuple[tuple[str, str], int] | None:
    parts = topic.split(".")
    if len(parts) == 2 and parts[0] == "publicTrade":
        return ("trades", parts[1]), 0
    if len(parts) == 3 and parts[0] == "orderbook" and parts[1].isdigit():
        depth = int(parts[1])
        return (("quotes" if depth == 1 else "book"), parts[2]), depth
    return None


def book_frame(topic: str, kind: str, symbol: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]],
               u: int, ts_ms: int) -> bytes:  # fmt: skip
    data = {"s": symbol, "b": [list(x) for x in bids], "a": [list(x) for x in asks], "u": u, "seq": u * 10}
    return _enc.encode({"topic": topic, "type": kind, "ts": ts_ms, "data": data, "cts": ts_ms})


class BybitSim(SimVenue):
    venue = "bybit"

    def on_message(self, conn: SimConn, text: bytes) -> list[bytes]:
        try:
            request = msgspec.json.decode(text)
        except msgspec.DecodeError:
            return [b'{"success":false,"ret_msg":"malformed request","op":""}']
        if not isinstance(request, dict):
            return [b'{"success":false,"ret_msg":"malformed request","op":""}']
        op = request.get("op")
        req_id = request.get("req_id", "")
        if op == "ping":
            return [
                _enc.encode(
                    {
                        "success": True,
                        "ret_msg": "pong",
                        "conn_id": f"sim-{conn.n}",
                        "req_id": req_id,
                        "op": "ping",
                    }
                )
            ]
        if op not in ("subscribe", "unsubscribe"):
            return [_enc.encode({"success": False, "ret_msg": f"unknown op {op}", "op": op or ""})]
        out: list[bytes] = []
        snapshots: list[bytes] = []
        for topic in request.get("args") or []:
            found = topic_key(str(topic))
            if found is None:
                return [_enc.encode({"success": False, "ret_msg": f"error:handler not found,topic:{topic}", "conn_id": f"sim-{conn.n}", "req_id": req_id, "op": op})]  # fmt: skip
            key, depth = found
            if op == "unsubscribe":
                conn.subs.discard(key)
                continue
            conn.subs.add(key)
            if key[0] == "book" and key[1] in self.books:
                conn.depth[key[1]] = depth
                book = self.books[key[1]]
                snapshots.append(book_frame(str(topic), "snapshot", key[1], book.bids.top_texts(depth),
                                            book.asks.top_texts(depth), book.last_id, int(time.time() * 1000)))  # fmt: skip
        out.append(
            _enc.encode(
                {"success": True, "ret_msg": "", "conn_id": f"sim-{conn.n}", "req_id": req_id, "op": op}
            )
        )
        return out + snapshots

    def render(self, conn: SimConn, item: Item) -> list[bytes]:
        frame = item.frame
        assert isinstance(frame, bytes)
        if item.key[0] == "book":
            depth = conn.depth.get(item.key[1], 50)
            if depth != 50:
                frame = frame.replace(b'"orderbook.50.', b'"orderbook.' + str(depth).encode() + b".", 1)
        return [frame]


def synthetic_tape(market: SyntheticMarket, events: int) -> Tape:
    """``events`` market events as Bybit frames: ``publicTrade``, ``orderbook.50`` deltas
    (``u`` +1 per message) and ``orderbook.1`` snapshots whenever the top changes."""
    pd, sd = market.pd, market.sd
    books: dict[str, tuple[list[tuple[float, float]], list[tuple[float, float]], int]] = {}
    local: dict[str, L2Book] = {}
    tops: dict[str, tuple[float, float, float, float] | None] = {}
    u: dict[str, int] = {}
    top_u: dict[str, int] = {}
    for symbol in market.symbols:
        bids, asks = market.initial(symbol)
        vs = venue_symbol(symbol)
        books[vs] = (bids, asks, FIRST_U)
        local[symbol] = L2Book(10_000)
        local[symbol].load(bids, asks, FIRST_U)
        tops[symbol] = None
        u[symbol] = FIRST_U
        top_u[symbol] = 0
    items: list[Item] = []
    for ev in market.events(events):
        vs = venue_symbol(ev.symbol)
        if isinstance(ev, Trade):
            trade = {"T": ev.ts_ms, "s": vs, "S": "Buy" if ev.buy else "Sell", "v": fmt(ev.size, sd),
                     "p": fmt(ev.price, pd), "L": "ZeroPlusTick", "i": str(ev.trade_id), "BT": False}  # fmt: skip
            items.append(
                Item(
                    ("trades", vs),
                    _enc.encode(
                        {"topic": f"publicTrade.{vs}", "type": "snapshot", "ts": ev.ts_ms, "data": [trade]}
                    ),
                )
            )
            continue
        assert isinstance(ev, Change)
        u[ev.symbol] += 1
        bid_texts = [(fmt(p, pd), fmt(q, sd)) for p, q in ev.bids]
        ask_texts = [(fmt(p, pd), fmt(q, sd)) for p, q in ev.asks]
        frame = book_frame(f"orderbook.50.{vs}", "delta", vs, bid_texts, ask_texts, u[ev.symbol], ev.ts_ms)
        items.append(Item(("book", vs), frame, BookOp(vs, ev.bids, ev.asks, u[ev.symbol])))
        book = local[ev.symbol]
        book.apply(ev.bids, ev.asks, u[ev.symbol])
        bid, ask = book.best_bid(), book.best_ask()
        if bid is None or ask is None:
            continue
        top = (*bid, *ask)
        if top != tops[ev.symbol]:
            tops[ev.symbol] = top
            top_u[ev.symbol] += 1
            frame = book_frame(f"orderbook.1.{vs}", "snapshot", vs, [(fmt(bid[0], pd), fmt(bid[1], sd))],
                               [(fmt(ask[0], pd), fmt(ask[1], sd))], top_u[ev.symbol], ev.ts_ms)  # fmt: skip
            items.append(Item(("quotes", vs), frame))
    return Tape("bybit", items, books, price_decimals=pd, size_decimals=sd)
