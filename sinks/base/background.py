"""One background thread that applies queued writes in order (used by the embedded
cache to take its SQLite writes off the Bytewax worker thread).

Guarantees: items are written one at a time in submission order; the queue is bounded,
so a slow disk blocks :meth:`BackgroundWriter.submit` (backpressure, never loss);
:meth:`BackgroundWriter.drain` returns once everything submitted is written. A write
that raises is never swallowed: the error is raised again by the next ``submit`` or
``drain`` in the caller's thread, and later items are not written.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class BackgroundWriter(Generic[T]):
    """Applies ``write(item)`` on a daemon thread named ``name``."""

    def __init__(self, write: Callable[[T], None], name: str, max_queue: int = 8) -> None:
        self._write = write
        self._queue: queue.Queue[tuple[T] | None] = queue.Queue(maxsize=max_queue)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T) -> None:
        """Queue ``item`` (blocks while the queue is full)."""
        self._raise()
        self._queue.put((item,))

    def busy(self) -> bool:
        """Whether submitted items are still being written (False once a write failed, so
        that the caller's next :meth:`submit` raises instead of waiting for nothing)."""
        return self._error is None and self._queue.unfinished_tasks > 0

    def drain(self) -> None:
        """Wait until every submitted item is written."""
        self._queue.join()
        self._raise()

    def close(self) -> None:
        """Drain, then stop the thread."""
        if not self._thread.is_alive():
            return
        try:
            self.drain()
        finally:
            self._queue.put(None)
            self._thread.join()

    def _raise(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"background write failed in {self._thread.name}") from self._error

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self._error is None:
                    self._write(item[0])
            except BaseException as exc:  # surfaced to the caller by submit()/drain()
                self._error = exc
            finally:
                self._queue.task_done()
