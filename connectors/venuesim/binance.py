"""The simulated Binance: combined streams from the URL, REST depth snapshots.

``/stream?streams=btcusdt@trade/btcusdt@depth@100ms`` (or ``/ws/<stream>``) chooses the
streams; ``GET /api/v3/depth?symbol=BTCUSDT&limit=100`` answers the reference book with
its ``lastUpdateId``. Partial depth streams (``@depth5@100ms``) get the top of the
reference book after every book change. Tapes: :func:`recorded_tape` (a real recorded
session and the REST snapshots taken with it) and :func:`synthetic_tape`.
"""

from __future__ import annotations

import gzip
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import msgspec

from ticktape.connectors.venuesim.market import Change, SyntheticMarket, Trade
from ticktape.connectors.venuesim.tape import BookOp, Item, Tape, fmt
from ticktape.connectors.venuesim.venue import SimConn, SimVenue, _bytes

_enc = msgspec.json.Encoder()
_KIND = {"trade": "trades", "aggTrade": "agg_trades", "bookTicker": "quotes"}
FIRST_UPDATE_ID = 1_000_000


def stream_key(stream: str) -> tuple[tuple[str, str], int] | None:
    """``btcusdt@depth5@100ms`` -> ``(("book", "BTCUSDT"), 5)``; None for streams we do not serve."""
    symbol, _, kind = stream.partition("@")
    symbol = symbol.upper()
    if kind in _KIND:
        return (_KIND[kind], symbol), 0
    name = kind.partition("@")[0]
    if name == "depth":
        return ("book", symbol), 0
    if name.startswith("depth") and name[5:] in ("5", "10", "20"):
        return ("book", symbol), int(name[5:])
    return None


class BinanceSim(SimVenue):
    venue = "binance"

    def accept(self, conn: SimConn) -> bool:
        parts = urlsplit(conn.path)
        if parts.path.rstrip("/") == "/stream":
            streams = parse_qs(parts.query).get("streams", [""])[0].split("/")
        elif parts.path.startswith("/ws/"):
            streams = parts.path[4:].split("/")
        else:
            return False
        for stream in filter(None, streams):
            found = stream_key(stream)
            if found is None:
                return False
            key, depth = found
            conn.subs.add(key)
            if depth:
                conn.partial[key[1]] = stream
        return True

    def on_message(self, conn: SimConn, text: bytes) -> list[bytes]:
        try:
            request = msgspec.json.decode(text)
        except msgspec.DecodeError:
            return [b'{"code":2,"msg":"Invalid JSON"}']
        if not isinstance(request, dict) or request.get("method") not in ("SUBSCRIBE", "UNSUBSCRIBE"):
            return [b'{"code":2,"msg":"Invalid request"}']
        for stream in request.get("params") or []:
            found = stream_key(str(stream))
            if found is None:
                return [_enc.encode({"code": 2, "msg": f"Invalid stream {stream}"})]
            if request["method"] == "SUBSCRIBE":
                conn.subs.add(found[0])
            else:
                conn.subs.discard(found[0])
        return [_enc.encode({"result": None, "id": request.get("id")})]

    def render(self, conn: SimConn, item: Item) -> list[bytes]:
        symbol = item.key[1]
        if item.key[0] == "book" and symbol in conn.partial:
            stream = conn.partial[symbol]
            depth = int(stream.partition("@depth")[2].partition("@")[0])
            data = self.depth_body(symbol, depth)
            return [b'{"stream":"' + stream.encode() + b'","data":' + data + b"}"]
        return [_bytes(conn, item.frame)]

    def depth_body(self, symbol: str, limit: int) -> bytes:
        book = self.books.get(symbol)
        if book is None:
            return b'{"lastUpdateId":0,"bids":[],"asks":[]}'
        bids = book.bids.top_texts(limit)
        asks = book.asks.top_texts(limit)
        return _enc.encode({"lastUpdateId": book.last_id, "bids": bids, "asks": asks})

    def http(self, path: str, query: dict[str, str]) -> tuple[int, bytes]:
        if path != "/api/v3/depth":
            return 404, b'{"code":-1,"msg":"not found"}'
        symbol = query.get("symbol", "")
        if symbol not in self.books:
            return 400, b'{"code":-1121,"msg":"Invalid symbol."}'
        try:
            limit = max(1, min(int(query.get("limit", "100")), 5000))
        except ValueError:
            return 400, b'{"code":-1100,"msg":"Illegal characters found in parameter \'limit\'."}'
        return 200, self.depth_body(symbol, limit)


#: The recorded session shipped with ticktape (2021-10-12, 4 symbols, about 25 s).
RECORDED = (
    Path(__file__).parent / "data" / "binance.ws.1.0.txt.gz",
    Path(__file__).parent / "data" / "binance.http.0.0.txt.gz",
)
_TIMES = re.compile(rb'"([ET])":(\d{13})')


def shift_times(frame: bytes, shift_ms: int) -> bytes:
    """``frame`` with its event and trade times (``E``, ``T``) moved by ``shift_ms``."""
    return _TIMES.sub(lambda m: b'"' + m.group(1) + b'":' + str(int(m.group(2)) + shift_ms).encode(), frame)


def recorded_tape(ws_path: str | Path, http_path: str | Path, *, now: bool = False) -> Tape:
    """A recorded Binance session (one frame a line: ``ts: payload``) and the REST depth
    snapshots taken with it (``URL -> ts: body``): the snapshots are the initial books.
    ``now``: event times are moved so that the session starts now (the job's clock rules
    then accept it as live data)."""
    books: dict[str, tuple[list[tuple[float, float]], list[tuple[float, float]], int]] = {}
    with gzip.open(http_path, "rb") as f:
        for line in f:
            url, _, rest = line.strip().partition(b" -> ")
            if not rest:
                continue
            body = rest.partition(b": ")[2]
            symbol = parse_qs(urlsplit(url.decode()).query)["symbol"][0]
            doc = msgspec.json.decode(body)
            books[symbol] = (_levels(doc["bids"]), _levels(doc["asks"]), int(doc["lastUpdateId"]))
    items: list[Item] = []
    shift_ms: int | None = None
    with gzip.open(ws_path, "rb") as f:
        for raw_line in f:
            line = raw_line.strip()
            if not line or b" <-> " in line or b" <- " in line:
                continue
            stamp, _, payload = line.partition(b": ")
            if now:
                if shift_ms is None:
                    shift_ms = int(time.time() * 1000) - int(float(stamp) * 1000)
                payload = shift_times(payload, shift_ms)
            doc = msgspec.json.decode(payload)
            found = stream_key(doc["stream"])
            if found is None:
                continue  # kline and other streams the clients do not read
            key, _ = found
            op = None
            if key[0] == "book":
                data = doc["data"]
                op = BookOp(key[1], _levels(data["b"]), _levels(data["a"]), int(data["u"]))
            items.append(Item(key, payload, op))
    return Tape("binance", items, books, price_decimals=8, size_decimals=8)


def _levels(rows: list[list[str]]) -> list[tuple[float, float]]:
    return [(float(p), float(q)) for p, q in rows]


def venue_symbol(symbol: str) -> str:
    return symbol.replace("-", "")


def synthetic_tape(market: SyntheticMarket, events: int) -> Tape:
    """``events`` market events as Binance frames: trades (``trade`` and ``aggTrade``), depth
    diffs (``U``/``u`` per symbol) and a ``bookTicker`` whenever the top changes."""
    pd, sd = market.pd, market.sd
    books = {}
    tops: dict[str, tuple[float, float, float, float]] = {}
    last_id: dict[str, int] = {}
    for symbol in market.symbols:
        bids, asks = market.initial(symbol)
        books[venue_symbol(symbol)] = (bids, asks, FIRST_UPDATE_ID)
        last_id[symbol] = FIRST_UPDATE_ID
        tops[symbol] = (*bids[0], *asks[0])
    sides = {s: (dict(market.initial(s)[0]), dict(market.initial(s)[1])) for s in market.symbols}
    items: list[Item] = []
    for ev in market.events(events):
        vs = venue_symbol(ev.symbol)
        low = vs.lower().encode()
        if isinstance(ev, Trade):
            maker = b"false" if ev.buy else b"true"
            p, q = fmt(ev.price, pd).encode(), fmt(ev.size, sd).encode()
            ts = str(ev.ts_ms).encode()
            tid = str(ev.trade_id).encode()
            items.append(Item(("trades", vs), b'{"stream":"' + low + b'@trade","data":{"e":"trade","E":' + ts
                              + b',"s":"' + vs.encode() + b'","t":' + tid + b',"p":"' + p + b'","q":"' + q
                              + b'","T":' + ts + b',"m":' + maker + b',"M":true}}'))  # fmt: skip
            items.append(Item(("agg_trades", vs), b'{"stream":"' + low + b'@aggTrade","data":{"e":"aggTrade","E":'
                              + ts + b',"s":"' + vs.encode() + b'","a":' + tid + b',"p":"' + p + b'","q":"' + q
                              + b'","f":' + tid + b',"l":' + tid + b',"T":' + ts + b',"m":' + maker + b',"M":true}}'))  # fmt: skip
            continue
        assert isinstance(ev, Change)
        first = last_id[ev.symbol] + 1
        last = last_id[ev.symbol] = last_id[ev.symbol] + len(ev.bids) + len(ev.asks)
        data = {"e": "depthUpdate", "E": ev.ts_ms, "s": vs, "U": first, "u": last,
                "b": [[fmt(p, pd), fmt(q, sd)] for p, q in ev.bids],
                "a": [[fmt(p, pd), fmt(q, sd)] for p, q in ev.asks]}  # fmt: skip
        frame = b'{"stream":"' + low + b'@depth@100ms","data":' + _enc.encode(data) + b"}"
        items.append(Item(("book", vs), frame, BookOp(vs, ev.bids, ev.asks, last)))
        bid_levels, ask_levels = sides[ev.symbol]
        for side, changes in ((bid_levels, ev.bids), (ask_levels, ev.asks)):
            for price, size in changes:
                if size == 0:
                    side.pop(price, None)
                else:
                    side[price] = size
        if bid_levels and ask_levels:
            bp = max(bid_levels)
            ap = min(ask_levels)
            top = (bp, bid_levels[bp], ap, ask_levels[ap])
            if top != tops[ev.symbol]:
                tops[ev.symbol] = top
                ticker = {"u": last, "s": vs, "b": fmt(bp, pd), "B": fmt(top[1], sd), "a": fmt(ap, pd),
                          "A": fmt(top[3], sd)}  # fmt: skip
                items.append(Item(("quotes", vs), b'{"stream":"' + low + b'@bookTicker","data":'
                                  + _enc.encode(ticker) + b"}"))  # fmt: skip
    return Tape("binance", items, books, price_decimals=pd, size_decimals=sd)
