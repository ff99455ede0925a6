"""One logical venue connection: WebSocket sessions one after another, forever.

:class:`FeedConnection` (asyncio) opens a session (connect, subscribe), reads frames and
stamps them (:class:`~ticktape.connectors.venues.frames.Frame`), and puts the data
frames into a bounded :class:`~ticktape.connectors.venues.frames.FrameQueue`. It adds
control frames (:mod:`ticktape.schemas.venues.feeds.control`) for what the job must know:
``connected``, ``disconnected`` (with the reason), ``gap`` (a hole in a connection-wide
sequence), ``venue_error``, ``oversized`` and the REST ``snapshot`` bodies it fetched.

Per session:

* **heartbeats**: WebSocket pings every ``ping_interval`` (the library answers the
  venue's), plus the venue's application ping when it wants one;
* **idle timeout**: no frame for ``idle_timeout`` ends the session;
* **errors**: a venue error message ends the session; its text is logged once (a repeat
  is logged at debug level) and becomes a ``venue_error`` frame;
* **reconnect**: after a session ends, the next one starts after an exponential backoff
  with full jitter (:mod:`.backoff`), reset by a session that delivered data;
* **lifetime** (Binance closes after 24 h): when it is reached, the next session opens
  *first* (overlap); its frames are held while the old one stays active, and it takes
  over at a frame both received (the same bytes: one venue event sent to both), so the
  stream goes on without a gap or a repeat; with no common frame within ``overlap`` it
  takes over with everything it held (repeats are duplicates downstream, by trade and
  update ids);
* **backpressure**: when the queue is full the session stops reading (the socket's
  buffers fill; a venue may then drop the connection: a disconnect, then gaps and
  resyncs that say what was lost).

Book resyncs are asked for by the job (:meth:`FeedConnection.request_resync`): a REST
snapshot (Binance) fetched through a :class:`~ticktape.connectors.venues.rest.SnapshotClient`
with retries, or an unsubscribe/subscribe of the book (in-band snapshot venues).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from typing import Any

import msgspec

from ticktape.schemas.errors import MissingDependencyError

try:
    from websockets.asyncio.client import ClientConnection, connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingDependencyError("websockets", "venues") from exc

from ticktape.connectors.venues.backoff import Backoff
from ticktape.connectors.venues.frames import Frame, FrameQueue
from ticktape.connectors.venues.protocol import Kind, Stream, VenueProtocol
from ticktape.connectors.venues.rest import SnapshotClient, SnapshotError
from ticktape.infra.observability.logs import get_logger
from ticktape.schemas.venues.feeds.control import (
    CONNECTED,
    DISCONNECTED,
    GAP,
    OVERSIZED,
    PLANNED,
    SNAPSHOT,
    VENUE_ERROR,
    Control,
    encode_control,
)

log = get_logger("venues")
#: Bytes of an oversized frame kept in its dead letter.
OVERSIZED_KEEP = 1024
#: REST snapshot attempts per request before waiting for the next request.
SNAPSHOT_ATTEMPTS = 5


class ConnectionStats:
    """Counters of one logical connection (read by the metrics collector)."""

    __slots__ = (
        "acks",
        "bytes",
        "connected",
        "data_frames",
        "dropped_after_switch",
        "errors",
        "heartbeats",
        "last_frame_ns",
        "overlap_frames",
        "oversized",
        "reconnects",
        "sequence_gaps",
        "sessions",
        "snapshot_failures",
        "snapshots",
        "stalls",
    )  # fmt: skip

    def __init__(self) -> None:
        self.acks = self.bytes = self.data_frames = self.dropped_after_switch = self.errors = 0
        self.heartbeats = self.last_frame_ns = self.oversized = self.reconnects = self.sequence_gaps = 0
        self.sessions = self.snapshots = self.snapshot_failures = self.stalls = self.overlap_frames = 0
        self.connected = False


class _Session:
    __slots__ = (
        "blocked", "data", "first_data", "last_ns", "last_seq", "n", "opened", "pending", "reason", "seq", "task", "ws",
    )  # fmt: skip

    def __init__(self, n: int, ws: ClientConnection) -> None:
        self.n = n
        self.ws = ws
        self.seq = 0
        self.data = 0
        self.last_seq = -1
        self.opened = time.monotonic()
        self.pending: list[Frame] | None = None  # held frames while an older session is active
        self.reason = ""
        self.task: asyncio.Task[None] | None = None
        self.first_data = asyncio.Event()
        self.last_ns = time.time_ns()  # last frame received (idle watch)
        self.blocked = False  # waiting for room in the queue


class FeedConnection:
    """See the module docstring. ``name`` is the partition (``ws:binance/0``); ``streams``
    what this connection carries."""

    def __init__(
        self,
        name: str,
        protocol: VenueProtocol,
        streams: list[Stream],
        queue: FrameQueue,
        *,
        rest: SnapshotClient | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.name = name
        self.protocol = protocol
        self.cfg = protocol.cfg
        self.streams = streams
        self.queue = queue
        self.rest = rest
        self.clock = clock
        self.stats = ConnectionStats()
        self.backoff = Backoff(self.cfg.backoff_initial.seconds, self.cfg.backoff_max.seconds, rng)
        self._active = 0
        self._current: _Session | None = None
        self._session_no = 0
        self._fetching: set[str] = set()
        self._logged_errors: set[str] = set()
        self._stop: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # a planned handover in progress: the incoming session, its held frames by bytes,
        # the last data frame the active session delivered, and when the switch happened
        self._incoming: _Session | None = None
        self._held: dict[bytes, int] = {}
        self._last_active = b""
        self._switched: asyncio.Event | None = None

    # --- the loop ---------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Sessions until ``stop`` is set."""
        self._stop = stop
        current: _Session | None = None
        try:
            while not stop.is_set():
                if current is None:
                    current = await self._open(pending=False)
                    if current is None:
                        await self._pause(self.backoff.next_delay())
                        continue
                outcome = await self._watch(current)
                if outcome == "lifetime":
                    nxt = await self._open(pending=True)
                    if nxt is not None:
                        await self._handover(current, nxt)
                        current = nxt
                        continue
                    current.reason = "lifetime reached (the next session failed to open)"
                await self._close(current)
                healthy = current.data > 0 and not current.reason.startswith("venue error")
                current = None
                if stop.is_set():
                    break
                if healthy:
                    self.backoff.reset()
                await self._pause(self.backoff.next_delay())
        finally:
            if current is not None:
                current.reason = current.reason or "stopped"
                await self._close(current)
            for task in list(self._tasks):
                task.cancel()

    async def _pause(self, seconds: float) -> None:
        assert self._stop is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _open(self, *, pending: bool) -> _Session | None:
        """Connect and subscribe; None when it failed (logged)."""
        url = self.protocol.connect_url(self.streams)
        cfg = self.cfg
        self.stats.reconnects += 1 if self._session_no else 0
        try:
            ws = await connect(
                url,
                open_timeout=cfg.connect_timeout.seconds,
                ping_interval=cfg.ping_interval.seconds or None,
                ping_timeout=cfg.ping_interval.seconds or None,
                close_timeout=2,
                max_size=cfg.hard_max_frame_bytes,
                max_queue=64,
                compression=None,
                proxy=None,
                user_agent_header="ticktape",
            )
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI, ConnectionClosed) as exc:
            self._log_once(f"connect: {type(exc).__name__}: {exc}")
            return None
        self._session_no += 1
        s = _Session(self._session_no, ws)
        self.stats.sessions += 1
        if pending:
            s.pending = []
            self._incoming, self._held, self._last_active = s, {}, b""
        else:
            self._active = s.n
            self._current = s
        self._control(s, Control(CONNECTED, self.protocol.venue, self.name, s.n, url=url.split("?")[0],
                                 reason=PLANNED if pending else "", ts=self.clock()))  # fmt: skip
        try:
            for message in self.protocol.subscribe(self.streams):
                await ws.send(message)
        except ConnectionClosed as exc:
            s.reason = f"closed while subscribing: {_describe(exc)}"
            await self._close(s)
            return None
        s.task = asyncio.create_task(self._receive(s), name=f"{self.name}#{s.n}")
        self._spawn(self._idle_watch(s))
        if self.protocol.app_ping_every:
            self._spawn(self._app_pings(s))
        self.stats.connected = True
        return s

    async def _watch(self, s: _Session) -> str:
        """Until the session ends (``closed``), ``stop``, or its ``lifetime`` is reached."""
        assert s.task is not None
        assert self._stop is not None
        stop = asyncio.ensure_future(self._stop.wait())
        waits: set[asyncio.Future[Any]] = {s.task, stop}
        life = self.cfg.lifetime.seconds
        timer = (
            asyncio.ensure_future(asyncio.sleep(max(life - (time.monotonic() - s.opened), 0)))
            if life
            else None
        )
        if timer is not None:
            waits.add(timer)
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if timer is not None:
                timer.cancel()
        if s.task in done:
            return "closed"
        if stop in done:
            s.reason = "stopped"
            return "stop"
        return "lifetime"

    async def _handover(self, old: _Session, new: _Session) -> None:
        """Planned reconnect. The new session is subscribed and its frames are held while
        the old one stays active; the switch happens at a frame both sessions received
        (same bytes: the venue sent one event to both): the old session's frames up to it
        are already delivered, the new one's held frames after it follow, so nothing is
        missed and nothing repeated. With no common frame within ``overlap`` (a quiet
        stream) every held frame is delivered (repeats are duplicates downstream)."""
        self._switched = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._switched.wait(), self.cfg.overlap.seconds)
        if self._incoming is new:
            self._switch(None)
        self._switched = None
        old.reason = f"lifetime {self.cfg.lifetime.seconds:g}s reached: replaced by session {new.n}"
        await self._close(old)

    def _switch(self, common: bytes | None) -> None:
        """Make the incoming session the active one (see :meth:`_handover`)."""
        new = self._incoming
        assert new is not None
        held, new.pending = new.pending or [], None
        cut = self._held.get(common, -1) if common is not None else -1
        frames = [f for f in held[: cut + 1] if f.seq == 0] + held[cut + 1 :]  # keep its control frames
        self.stats.overlap_frames += sum(1 for f in held[: cut + 1] if f.seq)  # both sessions had them
        self._incoming, self._held, self._last_active = None, {}, b""
        self._active = new.n
        self._current = new
        for frame in frames:
            self.queue.put_force(frame)
        if self._switched is not None:
            self._switched.set()

    async def _close(self, s: _Session) -> None:
        if s.task is not None and not s.task.done():
            s.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await s.task
        with contextlib.suppress(Exception):
            await s.ws.close(1000, "ticktape: " + (s.reason or "closing")[:100])
        reason = s.reason or _describe_closed(s.ws)
        if s.n == self._active:
            self.stats.connected = False
            self._current = None
        log.info("%s: session %d ended after %d frames: %s", self.name, s.n, s.seq, reason)
        self._control(s, Control(DISCONNECTED, self.protocol.venue, self.name, s.n, reason=reason, frames=s.seq,
                                 ts=self.clock()), force=True)  # fmt: skip

    async def _receive(self, s: _Session) -> None:
        ws, proto, stats = s.ws, self.protocol, self.stats
        soft_max = self.cfg.max_frame_bytes
        classify, recv, put, now = proto.classify, ws.recv, self.queue.put_nowait, time.time_ns
        data_kind = Kind.DATA
        while True:
            try:
                raw = await recv(decode=False)
            except ConnectionClosed as exc:
                s.reason = s.reason or _describe(exc)
                return
            ts = now()
            seq = s.seq = s.seq + 1
            s.last_ns = stats.last_frame_ns = ts
            data = raw if isinstance(raw, bytes) else bytes(raw)
            stats.bytes += len(data)
            if len(data) > soft_max:
                stats.oversized += 1
                head = data[:OVERSIZED_KEEP].decode("utf-8", "replace")
                ctrl = Control(OVERSIZED, proto.venue, self.name, s.n, reason=head, frames=len(data), ts=ts)
                await self._deliver(s, Frame(ts, s.n, seq, encode_control(ctrl)))
                continue
            c = classify(data)
            if c.seq >= 0:
                self._check_sequence(s, c.seq, ts)
            kind = c.kind
            if kind is data_kind:
                s.data += 1
                stats.data_frames += 1
                frame = Frame(ts, s.n, seq, data)
                if s.n != self._active or not put(frame):  # held, or the queue is full
                    await self._deliver(s, frame)
                if self._incoming is not None and s.n == self._active:  # a handover: is it common?
                    self._last_active = data
                    if data in self._held:
                        self._switch(data)
                if s.data == 1:
                    s.first_data.set()
            elif kind is Kind.HEARTBEAT:
                stats.heartbeats += 1
            elif kind is Kind.ACK:
                stats.acks += 1
            else:
                stats.errors += 1
                self._log_once(f"venue error: {c.detail}")
                self._control(
                    s, Control(VENUE_ERROR, proto.venue, self.name, s.n, reason=c.detail[:500], ts=ts)
                )
                s.reason = f"venue error: {c.detail[:200]}"
                return

    async def _idle_watch(self, s: _Session) -> None:
        """End the session when no frame came for ``idle_timeout`` (not while the session
        waits for room in the queue: that is backpressure, not a stall)."""
        idle = self.cfg.idle_timeout.seconds
        idle_ns = int(self.cfg.idle_timeout)
        while s.task is not None and not s.task.done():
            await asyncio.sleep(min(idle / 4, 1.0))
            if s.blocked:
                s.last_ns = time.time_ns()
            elif time.time_ns() - s.last_ns > idle_ns and s.task is not None and not s.task.done():
                self.stats.stalls += 1
                s.reason = f"idle: no frame for {idle:g}s"
                s.task.cancel()
                return

    def _check_sequence(self, s: _Session, seq: int, ts: int) -> None:
        """A connection-wide message sequence (Coinbase): a hole is a ``gap`` frame and
        fresh book snapshots."""
        last = s.last_seq
        if last >= 0 and seq > last + 1:
            self.stats.sequence_gaps += 1
            log.warning("%s: session %d: sequence_num jumped from %d to %d", self.name, s.n, last, seq)
            ctrl = Control(GAP, self.protocol.venue, self.name, s.n, first=last + 1, last=seq - 1, ts=ts)
            self._control(s, ctrl)
            for symbol in self.protocol.book_symbols(self.streams):
                self._spawn(self._resubscribe(symbol))
        if seq > last:
            s.last_seq = seq

    async def _app_pings(self, s: _Session) -> None:
        message = self.protocol.app_ping()
        every = self.protocol.app_ping_every
        if message is None:
            return
        while s.task is not None and not s.task.done():
            await asyncio.sleep(min(every, self.cfg.ping_interval.seconds or every))
            with contextlib.suppress(ConnectionClosed):
                await s.ws.send(message)

    # --- delivery ---------------------------------------------------------------------
    async def _deliver(self, s: _Session, frame: Frame) -> None:
        if s.n == self._active:
            s.blocked = True
            try:
                await self._put(frame)
            finally:
                s.blocked = False
        elif s.pending is not None:
            s.pending.append(frame)
            if frame.seq:
                self._held[frame.raw] = len(s.pending) - 1
                if frame.raw == self._last_active:
                    self._switch(frame.raw)
        else:  # an old session after the handover: the new one has these frames too
            self.stats.dropped_after_switch += 1

    async def _put(self, frame: Frame) -> None:
        queue = self.queue
        while not queue.put_nowait(frame):
            await asyncio.sleep(0.002)  # full: stop reading the socket (backpressure)

    def _control(self, s: _Session, ctrl: Control, *, force: bool = False) -> None:
        frame = Frame(ctrl.ts, s.n, 0, encode_control(ctrl))
        if s.pending is not None and not force:
            s.pending.append(frame)
        else:
            self.queue.put_force(frame)

    def _log_once(self, text: str) -> None:
        if text in self._logged_errors:
            log.debug("%s: %s (again)", self.name, text)
            return
        if len(self._logged_errors) < 1000:
            self._logged_errors.add(text)
        log.warning("%s: %s (retrying with backoff)", self.name, text)

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[call-overload]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- resyncs ----------------------------------------------------------------------
    def request_resync(self, symbol: str, reason: str) -> None:
        """The job's book of ``symbol`` (normalized) needs a snapshot (loop thread only)."""
        venue_symbol = self.protocol.venue_symbol(symbol)
        if venue_symbol is None:
            return
        if reason == "reconnect" and not self.protocol.rest_snapshots:
            return  # every new session subscribes afresh: its snapshots are on their way
        if self.protocol.rest_snapshots:
            if venue_symbol not in self._fetching:
                self._fetching.add(venue_symbol)
                self._spawn(self._fetch_snapshot(venue_symbol, reason))
        else:
            self._spawn(self._resubscribe(venue_symbol))

    async def _fetch_snapshot(self, symbol: str, reason: str) -> None:
        url = self.protocol.snapshot_url(symbol)
        retry = Backoff(self.cfg.backoff_initial.seconds, self.cfg.backoff_max.seconds, self.backoff.rng)
        try:
            for _attempt in range(SNAPSHOT_ATTEMPTS):
                if self.rest is None:
                    return
                try:
                    body = await self.rest.fetch(url)
                    msgspec.json.decode(body)  # a body that is not JSON is retried, not recorded
                except (SnapshotError, msgspec.DecodeError) as exc:
                    self.stats.snapshot_failures += 1
                    self._log_once(f"book snapshot {symbol}: {exc}")
                    wait = max(retry.next_delay(), getattr(exc, "retry_after", 0.0))
                    await self._pause(wait)
                    if self._stop is not None and self._stop.is_set():
                        return
                    continue
                self.stats.snapshots += 1
                ctrl = Control(SNAPSHOT, self.protocol.venue, self.name, self._active, symbol=symbol,
                               reason=reason, ts=self.clock(), data=msgspec.Raw(body))  # fmt: skip
                await self._put(Frame(ctrl.ts, self._active, 0, encode_control(ctrl)))
                return
        finally:
            self._fetching.discard(symbol)

    async def _resubscribe(self, symbol: str) -> None:
        s = self._current
        if s is None:
            return  # the next session subscribes afresh (and gets snapshots)
        with contextlib.suppress(ConnectionClosed):
            for message in self.protocol.resubscribe_book(symbol):
                await s.ws.send(message)
            self.stats.snapshots += 1


def _describe(exc: ConnectionClosed) -> str:
    rcvd = exc.rcvd
    if rcvd is not None:
        return f"closed by the venue: code {rcvd.code} {rcvd.reason!r}"[:300]
    return f"connection lost: {exc}"[:300]


def _describe_closed(ws: ClientConnection) -> str:
    code = ws.close_code
    return f"closed: code {code}" if code is not None else "closed"
