"""The simulated Coinbase Advanced Trade feed: one ``subscribe`` per channel, level2
snapshots on subscribe, ``heartbeats``, and ``sequence_num`` counting every message of a
connection (a frame the ``skip`` fault drops leaves a hole in it, as a lost message would).
"""

from __future__ import annotations

import time

import msgspec

from ticktape.connectors.venuesim.market import Change, SyntheticMarket, Trade
from ticktape.connectors.venuesim.tape import BookOp, Item, Tape, fmt
from ticktape.connectors.venuesim.venue import SimConn, SimVenue, _bytes
from ticktape.schemas.books.book import L2Book
from ticktape.schemas.timeparse import ns_to_iso

_enc = msgspec.json.Encoder()
_KEY = {"market_trades": "trades", "ticker": "quotes", "level2": "book"}


def _head(channel: str, ts_ns: int) -> bytes:
    return (b'{"channel":"' + channel.encode() + b'","client_id":"","timestamp":"' + ns_to_iso(ts_ns).encode()
            + b'","sequence_num":')  # fmt: skip


def _l2_updates(side: str, levels: list[tuple[str, str]], when: str) -> list[bytes]:
    return [b'{"side":"' + side.encode() + b'","event_time":"' + when.encode() + b'","price_level":"' + p.encode()
            + b'","new_quantity":"' + q.encode() + b'"}' for p, q in levels]  # fmt: skip


def l2_frame(
    kind: str, product: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]], ts_ns: int
) -> tuple[bytes, bytes]:
    when = ns_to_iso(ts_ns)
    updates = b",".join(_l2_updates("bid", bids, when) + _l2_updates("offer", asks, when))
    tail = (b',"events":[{"type":"' + kind.encode() + b'","product_id":"' + product.encode() + b'","updates":['
            + updates + b"]}]}")  # fmt: skip
    return _head("l2_data", ts_ns), tail


class CoinbaseSim(SimVenue):
    venue = "coinbase"

    def on_message(self, conn: SimConn, text: bytes) -> list[bytes]:
        try:
            request = msgspec.json.decode(text)
        except msgspec.DecodeError:
            return [b'{"type":"error","message":"malformed JSON"}']
        if not isinstance(request, dict) or request.get("type") not in ("subscribe", "unsubscribe"):
            return [b'{"type":"error","message":"unknown message type"}']
        channel = request.get("channel")
        now = time.time_ns()
        if channel == "heartbeats":
            conn.depth["__heartbeats__"] = 1
            return []
        if channel not in _KEY:
            return [_enc.encode({"type": "error", "message": f"unknown channel {channel}"})]
        snapshots: list[tuple[bytes, bytes]] = []
        for product in request.get("product_ids") or []:
            key = (_KEY[channel], product)
            if request["type"] == "unsubscribe":
                conn.subs.discard(key)
                continue
            conn.subs.add(key)
            if key[0] == "book":
                book = self.books.get(product)
                if book is not None:
                    snapshots.append(self.snapshot(product, book, now))
        subs: dict[str, list[str]] = {}
        for ch, product in sorted(conn.subs):
            name = {v: k for k, v in _KEY.items()}[ch]
            subs.setdefault(name, []).append(product)
        head = _head("subscriptions", now)
        reply = (
            head
            + str(conn.next_seq()).encode()
            + b',"events":[{"subscriptions":'
            + _enc.encode(subs)
            + b"}]}"
        )
        return [reply, *(_bytes(conn, frame) for frame in snapshots)]

    def resends(self, item: Item) -> bool:
        # level2 updates carry no ids: a resent one could not be told from a new one
        return item.key[0] != "book"

    def snapshot(self, product: str, book: L2Book, ts_ns: int) -> tuple[bytes, bytes]:
        bids, asks = book.bids.top_texts(len(book.bids)), book.asks.top_texts(len(book.asks))
        return l2_frame("snapshot", product, bids, asks, ts_ns)

    def heartbeat(self, conn: SimConn) -> bytes | None:
        if "__heartbeats__" not in conn.depth:
            return None
        now = time.time_ns()
        return (_head("heartbeats", now) + str(conn.next_seq()).encode() + b',"events":[{"current_time":"'
                + ns_to_iso(now).encode() + b'","heartbeat_counter":' + str(conn.seq).encode() + b"}]}")  # fmt: skip


def synthetic_tape(market: SyntheticMarket, events: int) -> Tape:
    """``events`` market events as Coinbase frames (``market_trades``, ``l2_data`` updates,
    a ``ticker`` whenever the top changes)."""
    pd, sd = market.pd, market.sd
    books: dict[str, tuple[list[tuple[float, float]], list[tuple[float, float]], int]] = {}
    local: dict[str, L2Book] = {}
    tops: dict[str, tuple[float, float, float, float] | None] = {}
    for symbol in market.symbols:
        bids, asks = market.initial(symbol)
        books[symbol] = (bids, asks, -1)
        local[symbol] = L2Book(10_000)
        local[symbol].load(bids, asks, -1)
        tops[symbol] = None
    items: list[Item] = []
    for ev in market.events(events):
        ts = ev.ts_ms * 1_000_000
        if isinstance(ev, Trade):
            trade = {"trade_id": str(ev.trade_id), "product_id": ev.symbol, "price": fmt(ev.price, pd),
                     "size": fmt(ev.size, sd), "side": "BUY" if ev.buy else "SELL", "time": ns_to_iso(ts)}  # fmt: skip
            tail = b',"events":[{"type":"update","trades":[' + _enc.encode(trade) + b"]}]}"
            items.append(Item(("trades", ev.symbol), (_head("market_trades", ts), tail)))
            continue
        assert isinstance(ev, Change)
        bid_texts = [(fmt(p, pd), fmt(q, sd)) for p, q in ev.bids]
        ask_texts = [(fmt(p, pd), fmt(q, sd)) for p, q in ev.asks]
        items.append(Item(("book", ev.symbol), l2_frame("update", ev.symbol, bid_texts, ask_texts, ts),
                          BookOp(ev.symbol, ev.bids, ev.asks, -1)))  # fmt: skip
        book = local[ev.symbol]
        book.apply(ev.bids, ev.asks, -1)
        bid, ask = book.best_bid(), book.best_ask()
        if bid is None or ask is None:
            continue
        top = (*bid, *ask)
        if top != tops[ev.symbol]:
            tops[ev.symbol] = top
            ticker = {"type": "ticker", "product_id": ev.symbol, "price": fmt(bid[0], pd),
                      "best_bid": fmt(bid[0], pd), "best_bid_quantity": fmt(bid[1], sd),
                      "best_ask": fmt(ask[0], pd), "best_ask_quantity": fmt(ask[1], sd)}  # fmt: skip
            tail = b',"events":[{"type":"update","tickers":[' + _enc.encode(ticker) + b"]}]}"
            items.append(Item(("quotes", ev.symbol), (_head("ticker", ts), tail)))
    return Tape("coinbase", items, books, price_decimals=pd, size_decimals=sd)
