"""A :class:`~ticktape.connectors.venues.connection.FeedConnection` on its own thread.

:class:`FeedRunner` owns an asyncio event loop on a daemon thread: the Bytewax source
partition (or the recorder) drains frames from its queue and forwards book resync
requests, from its own thread, without blocking on the network.
"""

from __future__ import annotations

import asyncio
import random
import threading

from ticktape.connectors.venues.connection import FeedConnection
from ticktape.connectors.venues.frames import Frame, FrameQueue
from ticktape.connectors.venues.protocol import Stream, VenueProtocol
from ticktape.connectors.venues.rest import HttpSnapshotClient, SnapshotClient
from ticktape.infra.observability.logs import get_logger

log = get_logger("venues")


class FeedRunner:
    """Run one connection (see the module docstring); ``start``/``drain``/``stop``."""

    def __init__(
        self,
        name: str,
        protocol: VenueProtocol,
        streams: list[Stream],
        *,
        rest: SnapshotClient | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.queue = FrameQueue(protocol.cfg.queue_frames)
        client = rest if rest is not None else (HttpSnapshotClient() if protocol.rest_snapshots else None)
        self.connection = FeedConnection(name, protocol, streams, self.queue, rest=client, rng=rng)
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name=f"feed-{name}", daemon=True)
        self._ready = threading.Event()
        self.failed: BaseException | None = None

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._stop = asyncio.Event()
        self._ready.set()
        try:
            self._loop.run_until_complete(self.connection.run(self._stop))
        except BaseException as exc:
            self.failed = exc
            log.exception("%s: feed connection crashed", self.name)
        finally:
            self._loop.close()

    def start(self) -> FeedRunner:
        self._thread.start()
        self._ready.wait(10)
        return self

    def drain(self, limit: int) -> list[Frame]:
        return self.queue.drain(limit)

    def request_resync(self, symbol: str, reason: str) -> None:
        """Ask for a fresh book of ``symbol`` (normalized); thread-safe."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.connection.request_resync, symbol, reason)

    def stop(self, timeout: float = 10.0) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()
