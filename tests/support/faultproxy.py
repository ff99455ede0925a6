"""A fault-injecting HTTP/1.1 proxy for the moto S3 server (127.0.0.1 only).

The proxy relays requests byte for byte: the request line, every header (``Host``
included) and the body exactly as received, so SigV4 signatures still verify upstream.
Bodies framed by ``Content-Length`` and by ``Transfer-Encoding: chunked`` (which is how
``aws-chunked`` uploads with trailers travel) are both relayed raw, chunk framing and
trailers included. ``Expect: 100-continue`` is answered by the proxy itself (botocore
sends it on every PUT and would otherwise stall ~1 s per request) and still forwarded,
the upstream's interim ``100`` response being dropped. Each request uses a fresh upstream
connection; the client's connection is kept alive.

Plan (rules are consumed in the order they were added; ``n=None`` means forever;
``method`` restricts a rule to ``GET``/``PUT``/...):

* :meth:`FaultProxy.reset` - read the request, then close the client socket with an RST
  and no response; nothing reaches the upstream.
* :meth:`FaultProxy.error` - answer ``status`` (500, 503, ...) with an S3 XML error body
  without forwarding.
* :meth:`FaultProxy.delay` - forward, then hold the response ``seconds`` before relaying
  it (the request takes effect upstream: a client read timeout is ambiguous).
* :meth:`FaultProxy.lose_response` - forward (the PUT succeeds upstream), then reset the
  client connection instead of relaying the response.

``received`` counts requests by method as they arrive; ``forwarded`` those that reached
the upstream.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urlsplit

LOOPBACK = "127.0.0.1"
_ERROR_CODES = {500: "InternalError", 503: "SlowDown", 429: "TooManyRequests"}


@dataclass
class _Rule:
    action: str  # "reset" | "error" | "delay" | "lose"
    remaining: int | None
    method: str | None
    status: int = 0
    seconds: float = 0.0


class _PeerClosedError(Exception):
    """The peer closed the connection (between requests or mid-message)."""


def _read_head(rfile: BinaryIO) -> tuple[bytes, list[tuple[str, str]]]:
    """The raw start line + headers (through the blank line) and the parsed headers."""
    raw = bytearray()
    headers: list[tuple[str, str]] = []
    while True:
        line = rfile.readline(65537)
        if not line:
            raise _PeerClosedError
        if not raw and line in (b"\r\n", b"\n"):
            continue  # stray CRLF between keep-alive messages
        first = not raw
        raw += line
        if line in (b"\r\n", b"\n"):
            return bytes(raw), headers
        if not first and b":" in line:
            name, _, value = line.decode("latin-1").partition(":")
            headers.append((name.strip().lower(), value.strip()))


def _read_exact(rfile: BinaryIO, n: int) -> bytes:
    data = rfile.read(n)
    if len(data) != n:
        raise _PeerClosedError
    return data


def _read_body(rfile: BinaryIO, headers: list[tuple[str, str]], until_eof: bool) -> bytes:
    """The raw body bytes (chunk framing and trailers kept for chunked messages)."""
    fields = dict(headers)
    if "chunked" in fields.get("transfer-encoding", "").lower():
        raw = bytearray()
        while True:
            size_line = rfile.readline(65537)
            if not size_line:
                raise _PeerClosedError
            raw += size_line
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (trailer := rfile.readline(65537)) not in (b"\r\n", b"\n", b""):
                    raw += trailer
                return bytes(raw + b"\r\n")
            raw += _read_exact(rfile, size + 2)
    if "content-length" in fields:
        return _read_exact(rfile, int(fields["content-length"]))
    return rfile.read() if until_eof else b""


def _abort(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0): the client sees 'connection reset by peer'."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class FaultProxy:
    """See the module docstring. ``start()``/``stop()`` or use it as a context manager."""

    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        if parts.hostname != LOOPBACK or parts.port is None:
            raise ValueError(f"upstream must be http://{LOOPBACK}:<port>, got {upstream_url!r}")
        self.upstream = (LOOPBACK, parts.port)
        self.received: Counter[str] = Counter()
        self.forwarded: Counter[str] = Counter()
        self.events: list[tuple[str, str, str]] = []  # (method, target, what happened)
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._clients: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._server = socket.create_server((LOOPBACK, 0))
        self.port: int = self._server.getsockname()[1]

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    # -- the plan ---------------------------------------------------------------------

    def _add(self, rule: _Rule) -> FaultProxy:
        if rule.method is not None:
            rule.method = rule.method.upper()
        with self._lock:
            self._rules.append(rule)
        return self

    def reset(self, n: int | None = 1, *, method: str | None = None) -> FaultProxy:
        return self._add(_Rule("reset", n, method))

    def error(self, status: int = 503, n: int | None = 1, *, method: str | None = None) -> FaultProxy:
        return self._add(_Rule("error", n, method, status=status))

    def delay(self, seconds: float, n: int | None = 1, *, method: str | None = None) -> FaultProxy:
        return self._add(_Rule("delay", n, method, seconds=seconds))

    def lose_response(self, n: int | None = 1, *, method: str | None = "PUT") -> FaultProxy:
        return self._add(_Rule("lose", n, method))

    def pass_through(self) -> FaultProxy:
        """Drop every rule: relay everything from now on."""
        with self._lock:
            self._rules.clear()
        return self

    def _take(self, method: str, target: str) -> _Rule | None:
        """Count the request and consume the first rule that applies to it."""
        with self._lock:
            self.received[method] += 1
            for rule in self._rules:
                if rule.method in (None, method) and rule.remaining != 0:
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    self.events.append((method, target, rule.action))
                    return rule
            self.events.append((method, target, "pass"))
        return None

    # -- serving ----------------------------------------------------------------------

    def start(self) -> FaultProxy:
        thread = threading.Thread(target=self._accept, name=f"faultproxy-{self.port}", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            clients = list(self._clients)
        for sock in clients:  # shutdown() wakes a thread blocked reading it; close() does not
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)
        self._server.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self) -> None:
        self._server.settimeout(0.1)  # poll: closing a socket does not wake accept()
        while not self._stopping.is_set():
            try:
                sock, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(None)
            with self._lock:
                self._clients.add(sock)
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, sock: socket.socket) -> None:
        try:
            with sock.makefile("rb") as rfile:
                while not self._stopping.is_set() and self._one(sock, rfile):
                    pass
        except (_PeerClosedError, OSError, ValueError):
            pass
        finally:
            with self._lock:
                self._clients.discard(sock)
            with contextlib.suppress(OSError):
                sock.close()

    def _one(self, sock: socket.socket, rfile: BinaryIO) -> bool:
        """Handle one request; False when the client connection must end."""
        head, headers = _read_head(rfile)
        method, target, _version = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        fields = dict(headers)
        if fields.get("expect", "").lower() == "100-continue":
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = _read_body(rfile, headers, until_eof=False)
        rule = self._take(method, target)
        if rule is not None and rule.action == "reset":
            _abort(sock)
            return False
        if rule is not None and rule.action == "error":
            sock.sendall(self._error_response(rule.status, method))
            return True
        response, close = self._forward(method, head + body)
        if rule is not None and rule.action == "lose":
            _abort(sock)
            return False
        if rule is not None and rule.action == "delay" and self._stopping.wait(rule.seconds):
            return False
        sock.sendall(response)
        return not close and fields.get("connection", "").lower() != "close"

    def _forward(self, method: str, request: bytes) -> tuple[bytes, bool]:
        """Send ``request`` upstream; return the raw final response and whether it ended
        with the connection (no length framing)."""
        with socket.create_connection(self.upstream, timeout=30) as up, up.makefile("rb") as rfile:
            up.sendall(request)
            with self._lock:
                self.forwarded[method] += 1
            while True:
                head, headers = _read_head(rfile)
                status = int(head.split(b" ", 2)[1])
                if status >= 200:
                    break  # 1xx (e.g. "100 Continue"): interim, not relayed
            fields = dict(headers)
            if method == "HEAD" or status in (204, 304):
                return head, False
            framed = "content-length" in fields or "chunked" in fields.get("transfer-encoding", "")
            return head + _read_body(rfile, headers, until_eof=True), not framed

    @staticmethod
    def _error_response(status: int, method: str) -> bytes:
        code = _ERROR_CODES.get(status, "InternalError")
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>injected by faultproxy</Message></Error>"
        ).encode()
        head = (
            f"HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        return head if method == "HEAD" else head + body
