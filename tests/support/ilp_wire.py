"""QuestDB's side of the wire, for unit tests without a server (the integration tests run
a real QuestDB): a TCP listener that records raw ILP bytes, a small HTTP server speaking
ILP over HTTP (``/write``, ``/settings``) and SQL ``/exec``, and a strict ILP parser.

The parser accepts what QuestDB's ILP clients write (text protocol version 1 and
version 2 with binary doubles) and nothing looser: an unescaped newline inside a name,
tag or string is an error, so "one line per row" and the escaping are both checked.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

NL, BS, QUOTE = 0x0A, 0x5C, 0x22


class IlpParseError(ValueError):
    pass


@dataclass
class IlpLine:
    table: str
    tags: dict[str, str]
    fields: dict[str, tuple[str, Any]]  # name -> (type, value): i f s b t(us) n(ns)
    ts: int | None  # designated timestamp in ns (None: the server's clock)

    def ns(self, name: str) -> int:
        """A timestamp field in ns (µs fields scaled)."""
        typ, value = self.fields[name]
        assert typ in "tn", (name, typ)
        return int(value) * (1000 if typ == "t" else 1)


class _Parser:
    def __init__(self, data: bytes) -> None:
        self.d, self.pos = data, 0

    def fail(self, what: str) -> IlpParseError:
        return IlpParseError(f"{what} at byte {self.pos}: {self.d[max(self.pos - 40, 0) : self.pos + 40]!r}")

    def peek(self) -> int:
        if self.pos >= len(self.d):
            raise self.fail("unexpected end of data")
        return self.d[self.pos]

    def expect(self, char: int) -> None:
        if self.peek() != char:
            raise self.fail(f"expected {chr(char)!r}")
        self.pos += 1

    def text(self, stops: bytes) -> str:
        out = bytearray()
        while (c := self.peek()) not in stops:
            if c == NL:
                raise self.fail("unescaped newline")
            if c == BS:
                self.pos += 1
                c = self.peek()
            out.append(c)
            self.pos += 1
        return out.decode("utf-8")

    def value(self) -> tuple[str, Any]:
        if self.peek() == QUOTE:
            self.pos += 1
            string = self.text(b'"')
            self.expect(QUOTE)
            return "s", string
        if self.peek() == ord("="):  # protocol version 2: "name==" + type byte + value
            kind = self.d[self.pos + 1]
            if kind != 16:
                raise self.fail(f"binary value of unknown type {kind}")
            (number,) = struct.unpack_from("<d", self.d, self.pos + 2)
            self.pos += 10
            return "f", number
        start = self.pos
        while self.peek() not in b", \n":
            self.pos += 1
        token = self.d[start : self.pos].decode("ascii")
        if token in ("t", "T", "true", "True", "f", "F", "false", "False"):
            return "b", token[0] in "tT"
        if token[-1] in "itn" and token[:-1].lstrip("-").isdigit():
            return token[-1], int(token[:-1])
        return "f", float(token)

    def skip(self, char: int) -> bool:
        if self.pos < len(self.d) and self.d[self.pos] == char:
            self.pos += 1
            return True
        return False

    def line(self) -> IlpLine:
        table = self.text(b", ")
        tags: dict[str, str] = {}
        while self.skip(ord(",")):
            key = self.text(b"=")
            self.expect(ord("="))
            tags[key] = self.text(b", ")
        self.expect(ord(" "))
        fields: dict[str, tuple[str, Any]] = {}
        while True:
            key = self.text(b"=")
            self.expect(ord("="))
            fields[key] = self.value()
            if not self.skip(ord(",")):
                break
        ts = None
        if self.skip(ord(" ")):
            start = self.pos
            while chr(self.peek()).isdigit():
                self.pos += 1
            ts = int(self.d[start : self.pos])
            if self.skip(ord("t")):
                ts *= 1000
            else:
                self.skip(ord("n"))
        self.expect(NL)
        return IlpLine(table, tags, fields, ts)


def parse_ilp(data: bytes) -> list[IlpLine]:
    """Every line of ``data`` (which must end with a newline)."""
    parser = _Parser(data)
    lines = []
    while parser.pos < len(data):
        lines.append(parser.line())
    return lines


class IlpListener:
    """ILP/TCP on 127.0.0.1:<free port>; ``received()`` once the senders closed."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conf = f"tcp::addr=127.0.0.1:{self.port};"
        self.chunks: list[bytearray] = []
        self.done: list[threading.Event] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            buf, done = bytearray(), threading.Event()
            with self._lock:
                self.chunks.append(buf)
                self.done.append(done)
            threading.Thread(target=self._read, args=(conn, buf, done), daemon=True).start()

    @staticmethod
    def _read(conn: socket.socket, buf: bytearray, done: threading.Event) -> None:
        with conn:
            while data := conn.recv(1 << 16):
                buf.extend(data)
        done.set()

    def received(self, connections: int = 1, timeout: float = 10.0) -> list[bytes]:
        """The bytes of each connection, after ``connections`` of them were closed."""
        for _ in range(int(timeout * 100)):
            with self._lock:
                if len(self.done) >= connections and all(d.is_set() for d in self.done):
                    return [bytes(c) for c in self.chunks]
            threading.Event().wait(0.01)
        raise TimeoutError(f"expected {connections} closed connections, have {len(self.done)}")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() thread
        self.sock.close()


@dataclass
class FakeQuestDB:
    """ILP over HTTP and ``/exec`` on 127.0.0.1:<free port>.

    ``versions``: what ``/settings`` advertises (None: 404, as before QuestDB 8);
    ``fail_first`` writes get ``fail_status``; ``always_fail`` fails every write;
    a write with a line whose tags hold ``poison`` gets QuestDB's 400 naming that line;
    an ``/exec`` query containing a key of ``exec_errors`` gets that JSON with a 400.
    """

    versions: list[int] | None = field(default_factory=lambda: [1, 2])
    fail_first: int = 0
    fail_status: int = 503
    always_fail: bool = False
    poison: str = "POISON"
    exec_errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    bodies: list[bytes] = field(default_factory=list)
    posts: list[str] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def reply(self, status: int, doc: dict[str, Any] | None = None) -> None:
                body = json.dumps(doc).encode() if doc is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                if url.path == "/settings" and fake.versions is not None:
                    config = {"line.proto.support.versions": fake.versions, "cairo.max.file.name.length": 127}
                    return self.reply(200, {"config": config})
                if url.path == "/exec":
                    query = urllib.parse.parse_qs(url.query)["query"][0]
                    fake.queries.append(query)
                    fake.headers.append(dict(self.headers))
                    for needle, doc in fake.exec_errors.items():
                        if needle in query:
                            return self.reply(400, {"query": query, **doc})
                    return self.reply(200, {"ddl": "OK"})
                return self.reply(404, {"error": "not found"})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fake.posts.append(self.path)
                if fake.always_fail or len(fake.posts) <= fake.fail_first:
                    return self.reply(fake.fail_status, {"code": "internal error", "message": "try later"})
                for number, line in enumerate(parse_ilp(body), 1):
                    if fake.poison in line.tags.values():
                        message = (
                            "failed to parse line protocol:errors encountered on line(s):\nerror in line "
                            f"{number}: table: {line.table}, column: symbol; cast error from protocol type: "
                            "SYMBOL to column type: DOUBLE"
                        )
                        doc = {"code": "invalid", "message": message, "line": number, "errorId": "fake-1"}
                        return self.reply(400, doc)
                fake.bodies.append(body)
                return self.reply(204)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.conf = f"http::addr=127.0.0.1:{self.server.server_address[1]};"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def lines(self) -> list[IlpLine]:
        return [line for body in self.bodies for line in parse_ilp(body)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def sample_price(i: int = 0, **changes: Any) -> Any:
    """A PriceUpdate with distinct, exactly checkable values."""
    from tests.support import records

    base: dict[str, Any] = {
        "venue": "binance", "symbol": "BTC-USDT", "price": 64000.5 + i, "size": 0.25 * (i + 1),
        "side": "buy" if i % 2 == 0 else "sell", "trade_id": str(1000 + i),
        "ts_event": 1_700_000_000_123_456_789 + i, "ts_kafka": 1_700_000_000_124_000_001 + i,
        "ts_recv": 1_700_000_000_125_000_002 + i, "ts_proc": 1_700_000_000_126_000_003 + i,
        "seq": i + 1, "src": "trades/0", "offset": 500 + i,
    }  # fmt: skip
    return records.price_update(**(base | changes))


def sample_candle(revision: int = 0, **changes: Any) -> Any:
    from tests.support import records

    start = 1_700_000_040_000_000_000
    base: dict[str, Any] = {
        "venue": "binance", "symbol": "BTC-USDT", "interval": 60, "start": start,
        "end": start + 60_000_000_000, "open": 100.0, "high": 110.5 + revision, "low": 99.25,
        "close": 105.125, "volume": 12.5, "notional": 1300.0625, "vwap": 104.005, "trades": 42 + revision,
        "buy_volume": 7.5, "sell_volume": 5.0, "first_trade_id": "7000", "last_trade_id": str(7041 + revision),
        "revision": revision, "ts_final": 1_700_000_102_000_000_123 + revision,
    }  # fmt: skip
    return records.candle(**(base | changes))


def questdb_config(**values: Any) -> Any:
    """A QuestDBConfig decoded as from the config file (durations as text)."""
    import msgspec

    from ticktape.schemas.durations import dec_hook
    from ticktape.sinks.questdb.config import QuestDBConfig

    return msgspec.convert({"enabled": True, **values}, QuestDBConfig, dec_hook=dec_hook)
