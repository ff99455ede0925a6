"""Graceful shutdown on SIGINT (Ctrl-C) and SIGTERM (what Kubernetes, compose and
systemd send).

First signal: **stop reading**. The stop flag is set; every source partition ends at its
next poll (:class:`~ticktape.connectors.stopping.StoppableSource`), the dataflow drains
what is in flight, the sinks flush, the final recovery snapshot is taken (positions where
the sources stopped; with ``-r`` the keyed state keeps its open candle windows), and the
run returns normally: the caller prints the summary, writes the report and exits 0.
Resuming with the same recovery directory continues exactly where it stopped.

Second signal: **stop at once** (exit ``128 + signal``, 130 or 143), as a kill -9 would:
every store restarts from its last durable state.

Only the main thread can receive signals; elsewhere (a test running the flow in a
thread) :class:`GracefulShutdown` leaves the handlers alone.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType, TracebackType
from typing import Any

from ticktape.infra.observability.logs import get_logger

log = get_logger("shutdown")
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GracefulShutdown:
    """``with GracefulShutdown() as shutdown: run(..., stop=shutdown.stop)``."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def signal_name(self) -> str | None:
        """``"SIGTERM"``/``"SIGINT"`` once a signal asked to stop."""
        return signal.Signals(self.signum).name if self.signum is not None else None

    @property
    def exit_code(self) -> int:
        """The conventional status of a run a signal ended without a clean drain."""
        return 128 + (self.signum or signal.SIGINT)

    def __enter__(self) -> GracefulShutdown:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.stop.is_set():
            os.write(2, f"{name} again: stopping at once (restarts resume from the last snapshot)\n".encode())
            os._exit(128 + signum)
        self.signum = signum
        self.stop.set()
        log.warning(
            "%s: stopping - no more input; finishing the work in flight, flushing and snapshotting"
            " (send it again to stop at once)",
            name,
        )
