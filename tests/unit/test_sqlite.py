"""SQLite connections: WAL everywhere, and opening a file another process is switching or
writing waits for it instead of failing."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from ticktape.sinks.base.sqlite import connect


def test_connections_use_wal_and_the_requested_durability(tmp_path: Path) -> None:
    conn = connect(tmp_path / "a.sqlite", synchronous="FULL")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    conn.close()


def test_opening_a_file_another_connection_holds_exclusively_waits(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    holder = sqlite3.connect(path, check_same_thread=False)  # rollback journal, like a peer mid-switch
    holder.execute("CREATE TABLE t (x)")
    holder.commit()
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(0.3, holder.commit)
    release.start()
    conn = connect(path)  # must wait for the lock, not raise "database is locked"
    release.join()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    holder.close()


def test_simultaneous_first_opens_of_one_file_all_succeed(tmp_path: Path) -> None:
    path = tmp_path / "race.sqlite"
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def open_it() -> None:
        start.wait()
        try:
            connect(path).close()
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
