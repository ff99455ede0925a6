"""SQLite connections configured the same way everywhere (WAL, busy timeout)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

_BUSY_TIMEOUT_S = 30.0


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL (a no-op when the file already is). SQLite can fail this statement
    with "database is locked" without waiting in its busy handler (seen when two cluster
    processes opened the cache file at the same moment), so retry with backoff up to the
    busy timeout."""
    deadline = time.monotonic() + _BUSY_TIMEOUT_S
    pause = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.25)


def connect(path: Path, *, synchronous: str = "NORMAL", readonly: bool = False) -> sqlite3.Connection:
    """Open ``path`` in WAL mode, usable from any thread (callers serialize access).

    ``synchronous=NORMAL`` in WAL mode keeps the database consistent after a crash of the
    process (a power loss may lose the last transactions); ``FULL`` survives power loss.
    """
    if readonly:
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=_BUSY_TIMEOUT_S
        )
        conn.execute("PRAGMA query_only=ON")
        return conn
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, timeout=_BUSY_TIMEOUT_S)
    _enable_wal(conn)
    if synchronous not in ("OFF", "NORMAL", "FULL"):
        raise ValueError(f"synchronous must be OFF, NORMAL or FULL, got {synchronous!r}")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA temp_store=MEMORY")
    return conn
