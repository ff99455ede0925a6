"""Named crash points in the write paths of the embedded stores, for the crash tests.

Every place where a store's files on disk change in a way a kill -9 could interrupt
declares a point (:func:`declare`, at import time) and passes it (:func:`reach`) when the
write gets there. A process started with ``TICKTAPE_CRASH_AT=<point>`` (or
``<point>:<n>``, the n-th time any thread of the process reaches it) kills itself with
SIGKILL at that moment, exactly as an operator's ``kill -9`` or the OOM killer would.

Off by default: when the variable is unset :func:`reach` is one comparison. The crash
tests enumerate :func:`declared`, so a store that declares a new point is covered by
them without a test change.
"""

from __future__ import annotations

import os
import signal
import threading

ENV = "TICKTAPE_CRASH_AT"

_declared: dict[str, str] = {}
_lock = threading.Lock()


def _parse(spec: str) -> tuple[str, int]:
    name, _, nth = spec.strip().partition(":")
    return name, int(nth) if nth.strip().isdigit() and int(nth) > 0 else 1


_target, _remaining = _parse(os.environ.get(ENV, "")) if os.environ.get(ENV) else ("", 0)


def declare(name: str, where: str) -> str:
    """Declare the crash point ``name`` (``<store>.<moment>``); ``where`` says what is
    on disk when a crash happens there. Returns ``name``."""
    _declared[name] = where
    return name


def declared() -> dict[str, str]:
    """Every declared point and its description (modules declare theirs on import)."""
    return dict(_declared)


def reach(name: str) -> None:
    """The write path is at ``name``: kill this process here if the crash test asks."""
    global _remaining  # noqa: PLW0603 - one countdown per process
    if name != _target:
        return
    with _lock:
        _remaining -= 1
        if _remaining != 0:
            return
    os.kill(os.getpid(), signal.SIGKILL)
