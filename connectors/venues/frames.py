"""Frames as the socket delivered them, and the bounded queue between a connection's event
loop and the job.

Every :class:`Frame` is stamped at the socket with its receive time (ns, wall clock) and
its connection coordinates: the session (the n-th WebSocket connection of this logical
connection) and the frame's sequence number within the session (1, 2, ...; 0 for frames
the handler itself adds: control frames and REST snapshots).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import NamedTuple


class Frame(NamedTuple):
    ts_recv: int
    session: int
    seq: int
    raw: bytes


class FrameQueue:
    """A bounded FIFO shared by one producer (the connection's loop) and one consumer."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: deque[Frame] = deque()
        self._lock = threading.Lock()
        self.high_water = 0

    def __len__(self) -> int:
        return len(self._items)

    def put_nowait(self, frame: Frame) -> bool:
        """Append ``frame``; False (nothing appended) when full."""
        with self._lock:
            n = len(self._items)
            if n >= self.maxsize:
                return False
            self._items.append(frame)
            if n + 1 > self.high_water:
                self.high_water = n + 1
            return True

    def put_force(self, frame: Frame) -> None:
        """Append even when full (control frames: a handful, never data)."""
        with self._lock:
            self._items.append(frame)

    def drain(self, limit: int) -> list[Frame]:
        """Up to ``limit`` frames, oldest first."""
        with self._lock:
            items = self._items
            n = min(limit, len(items))
            return [items.popleft() for _ in range(n)]
