"""SQLite connections configured the same way everywhere (WAL, busy timeout)."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def connect(path: Path, *, synchronous: str = "NORMAL", readonly: bool = False) -> sqlite3.Connection:
    """Open ``path`` in WAL mode, usable from any thread (callers serialize access).

    ``synchronous=NORMAL`` in WAL mode keeps the database consistent after a crash of the
    process (a power loss may lose the last transactions); ``FULL`` survives power loss.
    """
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA query_only=ON")
        return conn
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    if synchronous not in ("OFF", "NORMAL", "FULL"):
        raise ValueError(f"synchronous must be OFF, NORMAL or FULL, got {synchronous!r}")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA temp_store=MEMORY")
    return conn
