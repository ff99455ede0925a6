"""The simulator's server: WebSocket and REST on one 127.0.0.1 port.

Two ways to play a tape:

* ``market`` (default): one market clock per venue. It starts ``start_delay`` seconds
  after the first client subscribes and sends ``rate`` items per second (0: all at once) to every connection
  subscribed to each item's stream, like a live venue: a client that is away misses what
  was sent meanwhile. The reference books follow every book change sent.
* ``replay``: every connection gets the whole tape from its start, as fast as it reads
  (benchmarks: frames/s of one connection).

Faults (:mod:`.faults`) are applied per connection. When the tape is done, connections
stay open with heartbeats; ``done`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlsplit

from ticktape.schemas.errors import MissingDependencyError

try:
    from websockets.asyncio.server import Server, ServerConnection, serve
    from websockets.datastructures import Headers
    from websockets.exceptions import ConnectionClosed
    from websockets.http11 import Request, Response
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingDependencyError("websockets", "venues") from exc

from ticktape.connectors.venuesim.faults import Fault
from ticktape.connectors.venuesim.tape import Item
from ticktape.connectors.venuesim.venue import SimConn, SimVenue
from ticktape.infra.observability.logs import get_logger

log = get_logger("venuesim")
#: Frames queued per connection before it is a slow consumer (unless a ``slow`` fault says less).
DEFAULT_QUEUE = 100_000


class SimStats:
    def __init__(self) -> None:
        self.connections = 0
        self.frames = 0
        self.items = 0
        self.rest_requests = 0
        self.dropped_slow = 0


class _Client:
    def __init__(self, conn: SimConn, ws: ServerConnection, limit: int) -> None:
        self.conn = conn
        self.ws = ws
        self.out: asyncio.Queue[bytes] = asyncio.Queue()
        self.limit = limit
        self.sent = 0  # data frames sent
        self.dropped = False


class VenueSimServer:
    """See the module docstring. ``url``/``rest_url`` once started."""

    def __init__(
        self,
        venue: SimVenue,
        *,
        rate: float = 1000.0,
        mode: str = "market",
        faults: Sequence[Fault] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        heartbeat_every: float = 1.0,
        history: int = 1000,
        start_delay: float = 0.0,
    ) -> None:
        if mode not in ("market", "replay"):
            raise ValueError(f"mode: expected market or replay, got {mode!r}")
        self.venue = venue
        self.rate = rate
        self.mode = mode
        self.faults = list(faults)
        self.host = host
        self.port = port
        self.heartbeat_every = heartbeat_every
        self.start_delay = start_delay
        self.stats = SimStats()
        self.done = asyncio.Event()
        self.started = asyncio.Event()
        self._clients: list[_Client] = []
        self._recent: deque[Item] = deque(maxlen=history)
        self._server: Server | None = None
        self._market: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> VenueSimServer:
        self._server = await serve(
            self._handle, self.host, self.port, process_request=self._http, compression=None,
            max_size=1 << 20, ping_interval=20, ping_timeout=20, write_limit=1 << 16,
        )  # fmt: skip
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        if self.mode == "market":
            self._market = asyncio.create_task(self._run_market())
        log.info("%s simulator on %s (REST %s), %d items", self.venue.venue, self.url, self.rest_url,
                 len(self.venue.tape.items))  # fmt: skip
        return self

    async def stop(self) -> None:
        if self._market is not None:
            self._market.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    def _faults(self, kind: str, conn: int) -> list[Fault]:
        return [f for f in self.faults if f.kind == kind and f.hits(conn)]

    # --- REST -------------------------------------------------------------------------
    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        self.stats.rest_requests += 1
        n = self.stats.rest_requests
        for fault in self.faults:
            if fault.kind == "rest_error" and fault.at == n:
                status = int(fault.arg)
                return _response(status, b'{"code":-1003,"msg":"simulated failure"}', {"Retry-After": "0"})
        parts = urlsplit(request.path)
        status, body = self.venue.http(parts.path, dict(parse_qsl(parts.query)))
        return _response(status, body)

    # --- WebSocket --------------------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        self.stats.connections += 1
        n = self.stats.connections
        conn = SimConn(n, ws.request.path if ws.request is not None else "/")
        if not self.venue.accept(conn):
            await ws.close(1008, "unknown path or stream")
            return
        client = _Client(conn, ws, DEFAULT_QUEUE)
        self._clients.append(client)
        sender = asyncio.create_task(self._send(client))
        try:
            if conn.subs:
                self._subscribed(client)
            async for message in ws:
                data = message.encode() if isinstance(message, str) else message
                had = bool(conn.subs)
                for reply in self.venue.on_message(conn, data):
                    client.out.put_nowait(reply)
                if conn.subs and not had:
                    self._subscribed(client)
        except ConnectionClosed:
            pass
        finally:
            sender.cancel()
            if client in self._clients:
                self._clients.remove(client)

    def _subscribed(self, client: _Client) -> None:
        """A connection's first subscription: the market starts (or its replay), and a
        ``duplicate`` fault resends what the venue sent last."""
        conn = client.conn
        for fault in self._faults("duplicate", conn.n):
            self._spawn(self._resend(client, int(fault.arg)))
        if self.mode == "replay":
            self._spawn(self._replay(client))
        else:
            self.started.set()

    async def _resend(self, client: _Client, count: int) -> None:
        """The ``duplicate`` fault: once the client had time to subscribe to everything,
        the last ``count`` items of its streams again."""
        await asyncio.sleep(0.2)
        venue, conn = self.venue, client.conn
        items = [i for i in self._recent if venue.wants(conn, i) and venue.resends(i)]
        for item in items[-count:]:
            for frame in venue.render(conn, item):
                client.out.put_nowait(frame)

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[call-overload]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, client: _Client) -> None:
        ws, conn, n = client.ws, client.conn, client.conn.n
        plan = {f.at: f for f in self.faults if f.hits(n) and f.kind not in ("duplicate", "rest_error")}
        try:
            while True:
                try:
                    frame = await asyncio.wait_for(client.out.get(), self.heartbeat_every)
                except TimeoutError:
                    beat = self.venue.heartbeat(conn)
                    if beat is not None:
                        await ws.send(beat, text=True)
                    continue
                number = client.sent + 1
                fault = plan.pop(number, None)
                if fault is not None:
                    keep = await self._inject(client, fault, frame)
                    if not keep:
                        client.sent = number
                        continue
                await ws.send(frame, text=True)
                client.sent = number
                self.stats.frames += 1
        except ConnectionClosed:
            return

    async def _inject(self, client: _Client, fault: Fault, frame: bytes) -> bool:
        """Apply ``fault`` before data frame ``frame``; False when the frame is not sent."""
        ws = client.ws
        log.info("connection %d: fault %s at frame %d", client.conn.n, fault.kind, fault.at)
        if fault.kind == "disconnect":
            ws.transport.abort()
            raise ConnectionClosed(None, None)
        if fault.kind == "close":
            await ws.close(int(fault.arg), "simulated close")
            raise ConnectionClosed(None, None)
        if fault.kind == "stall":
            await asyncio.sleep(fault.arg)
        elif fault.kind == "malformed":
            await ws.send(frame[: max(len(frame) // 2, 1)], text=True)
        elif fault.kind == "oversized":
            size = int(fault.arg)
            await ws.send(b'{"junk":"' + b"x" * max(size - 11, 0) + b'"}', text=True)
        elif fault.kind == "skip":
            return False
        elif fault.kind == "slow":  # the client stops keeping up: the venue queues, then drops it
            client.limit = int(fault.arg)
            client.out.put_nowait(frame)
            await asyncio.Event().wait()
        return True

    def _fanout(self, item: Item) -> None:
        venue = self.venue
        for client in list(self._clients):
            conn = client.conn
            if client.dropped or not venue.wants(conn, item):
                continue
            for frame in venue.render(conn, item):
                if client.out.qsize() >= client.limit:
                    client.dropped = True
                    self.stats.dropped_slow += 1
                    self._spawn(client.ws.close(1008, "slow consumer"))
                    break
                client.out.put_nowait(frame)

    async def _run_market(self) -> None:
        await self.started.wait()
        await asyncio.sleep(self.start_delay)  # let the first client finish subscribing
        items = self.venue.tape.items
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        i, total = 0, len(items)
        while i < total:
            due = total if self.rate <= 0 else min(total, int((loop.time() - t0) * self.rate) + 1)
            while i < due:
                item = items[i]
                i += 1
                if item.book is not None:
                    self.venue.apply(item.book)
                self._recent.append(item)
                self._fanout(item)
                self.stats.items = i
            await asyncio.sleep(0.001 if self.rate > 0 else 0)
        self.done.set()

    async def _replay(self, client: _Client) -> None:
        """``replay`` mode: the whole tape to this connection, as fast as it reads. Without
        faults the frames are framed here and written to the socket in large chunks
        (unmasked server frames are just a header and the payload), so that the simulator
        is not what limits a benchmark's client."""
        venue, conn = self.venue, client.conn
        if not any(f.hits(conn.n) for f in self.faults):
            await self._replay_wire(client)
            return
        for item in venue.tape.items:
            if client.dropped:
                return
            if venue.wants(conn, item):
                for frame in venue.render(conn, item):
                    while client.out.qsize() >= 1000:
                        await asyncio.sleep(0.0005)
                    client.out.put_nowait(frame)
        self.done.set()

    async def _replay_wire(self, client: _Client) -> None:
        venue, conn, transport = self.venue, client.conn, client.ws.transport
        chunk: list[bytes] = []
        size = 0
        for item in venue.tape.items:
            if not venue.wants(conn, item):
                continue
            for frame in venue.render(conn, item):
                chunk.append(_text_frame(frame))
                size += len(frame) + 10
                client.sent += 1
            if size >= 1 << 18:
                if transport.is_closing():
                    return
                transport.write(b"".join(chunk))
                chunk, size = [], 0
                while transport.get_write_buffer_size() > 1 << 20:
                    await asyncio.sleep(0.0005)
        if chunk and not transport.is_closing():
            transport.write(b"".join(chunk))
        self.stats.frames += client.sent
        self.done.set()


def _text_frame(payload: bytes) -> bytes:
    """A final, unmasked WebSocket text frame (RFC 6455 section 5.2)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 1 << 16:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


def _response(status: int, body: bytes, extra: dict[str, str] | None = None) -> Response:
    headers = Headers({"Content-Type": "application/json", "Content-Length": str(len(body)), **(extra or {})})
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 418: "I'm a teapot", 429: "Too Many Requests",
              500: "Internal Server Error"}.get(status, "Error")  # fmt: skip
    return Response(status, reason, headers, body)
