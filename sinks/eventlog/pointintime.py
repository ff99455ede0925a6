"""The state of an aggregate at a point in time, from snapshots plus later events.

``state_at(store, aggregate, t)`` is the fold (:mod:`ticktape.sinks.eventlog.state`) of the
aggregate's events with ``ts_event <= t``, in ``seq`` order. Guarantee: it always equals
``fold(e for e in store.replay(aggregate) if e.ts_event <= t)``; snapshots
(:mod:`ticktape.sinks.eventlog.snapshots`) only make it cheaper:

1. the nearest snapshot whose largest event time is ``<= t`` (every event folded into
   it counts);
2. plus the later events with ``ts_event <= t``, read only from the segments between
   snapshots whose smallest event time is ``<= t``, the tail after the last snapshot,
   and only from batches whose smallest event time is ``<= t``.

Snapshots are not used (the aggregate is folded from the beginning) when the aggregate
is tainted, lives in several partition files, or has events beyond the snapshotter's
progress that are out of ``seq`` order; everything is read in one read transaction, so
a snapshotter or writer committing meanwhile changes nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from ticktape.schemas.records import Event
from ticktape.sinks.base.sqlite import connect
from ticktape.sinks.eventlog.snapshots import ensure_schema, progress_of
from ticktape.sinks.eventlog.state import AggregateState, StateBuilder, decode_state, fold


class EventSource(Protocol):
    """What point-in-time reads need of the event store (:class:`~ticktape.sinks.eventlog.store.EventStore`)."""

    paths: list[Path]

    def connection(self, path: Path) -> sqlite3.Connection:
        """The read connection of one partition file."""
        ...

    def batch_events(self, path: Path, batch_id: int) -> list[Event]:
        """The events of one stored batch, local or archived."""
        ...

    def replay(self, aggregate: str) -> Iterator[Event]:
        """Every event of ``aggregate`` in ``seq`` order."""
        ...


_TABLES = ("snapshots", "snapshot_heads", "snapshot_progress")


def has_snapshot_tables(conn: sqlite3.Connection) -> bool:
    found = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN (?, ?, ?)", _TABLES
    ).fetchone()[0]
    return bool(found == len(_TABLES))


def ensure_snapshot_tables(conn: sqlite3.Connection, path: Path) -> bool:
    """Make sure ``path`` has the snapshot tables (created through a short-lived writable
    connection when missing); False when they are missing and the file is read-only."""
    if has_snapshot_tables(conn):
        return True
    try:
        writer = connect(path)
        try:
            ensure_schema(writer)
        finally:
            writer.close()
    except sqlite3.Error:
        return False
    return has_snapshot_tables(conn)


def snapshot_stats(conn: sqlite3.Connection) -> dict[str, int]:
    """Snapshots, aggregates with snapshots, tainted aggregates and the snapshotter's
    progress (last batch id) of one partition file (zeros without snapshot tables)."""
    if not has_snapshot_tables(conn):
        return {"snapshots": 0, "snapshot_aggregates": 0, "tainted": 0, "snapshot_progress": 0}
    snaps, aggs = conn.execute("SELECT count(*), count(DISTINCT aggregate) FROM snapshots").fetchone()
    tainted = conn.execute("SELECT count(*) FROM snapshot_heads WHERE tainted").fetchone()[0]
    return {
        "snapshots": snaps,
        "snapshot_aggregates": aggs,
        "tainted": tainted,
        "snapshot_progress": progress_of(conn),
    }


def state_at(store: EventSource, aggregate: str, at: int) -> AggregateState:
    """The state of ``aggregate`` after its events with ``ts_event <= at``."""
    holders = [
        path
        for path in store.paths
        if store.connection(path)
        .execute("SELECT 1 FROM batch_aggregates WHERE aggregate = ? LIMIT 1", (aggregate,))
        .fetchone()
    ]
    if len(holders) == 1 and ensure_snapshot_tables(store.connection(holders[0]), holders[0]):
        state = _from_snapshots(store, holders[0], aggregate, at)
        if state is not None:
            return state
    return full_fold(store, aggregate, at)


def full_fold(store: EventSource, aggregate: str, at: int) -> AggregateState:
    """The same state without snapshots: every event of the aggregate, filtered by time."""
    events = (e for e in store.replay(aggregate) if e.ts_event <= at)
    return fold(events, AggregateState(aggregate=aggregate))


def _from_snapshots(store: EventSource, path: Path, aggregate: str, at: int) -> AggregateState | None:
    conn = store.connection(path)
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")  # one read snapshot for heads, progress, snapshots and batches
    try:
        head = conn.execute(
            "SELECT seq, tainted FROM snapshot_heads WHERE aggregate = ?", (aggregate,)
        ).fetchone()
        if head is None or head[1]:
            return None
        head_seq = int(head[0])
        progress = progress_of(conn)
        behind = conn.execute(
            "SELECT 1 FROM batch_aggregates WHERE aggregate = ? AND batch_id > ? AND first_seq <= ? LIMIT 1",
            (aggregate, progress, head_seq),
        ).fetchone()
        if behind is not None:
            return None
        base = conn.execute(
            "SELECT seq, batch_id, state FROM snapshots WHERE aggregate = ? AND ts_event <= ?"
            " ORDER BY seq DESC LIMIT 1",
            (aggregate, at),
        ).fetchone()
        if base is None:
            lo_seq, lo_batch, state = -1, 0, AggregateState(aggregate=aggregate)
        else:
            lo_seq, lo_batch, state = base[0], base[1], decode_state(base[2])
        # (first batch, last batch or None, seq above, seq up to or None)
        ranges: list[tuple[int, int | None, int, int | None]] = []
        for seq, batch_id, seg_min in conn.execute(
            "SELECT seq, batch_id, seg_min_ts FROM snapshots WHERE aggregate = ? AND seq > ? ORDER BY seq",
            (aggregate, lo_seq),
        ).fetchall():
            if seg_min <= at:
                ranges.append((lo_batch, batch_id, lo_seq, seq))
            lo_seq, lo_batch = seq, batch_id
        ranges.append((lo_batch, None, lo_seq, None))
        builder = StateBuilder(state)
        checked = head_seq  # events past the progress must continue the seq order
        for lo_b, hi_b, above, upto in ranges:
            sql = (
                "SELECT a.batch_id FROM batch_aggregates a JOIN batches b ON b.id = a.batch_id"
                " WHERE a.aggregate = ? AND a.batch_id >= ? AND b.min_ts <= ?"
            )
            params: list[object] = [aggregate, lo_b, at]
            if hi_b is not None:
                sql += " AND a.batch_id <= ?"
                params.append(hi_b)
            for (batch_id,) in conn.execute(sql + " ORDER BY a.batch_id", params).fetchall():
                for e in store.batch_events(path, batch_id):
                    if (
                        e.aggregate != aggregate
                        or e.seq <= above
                        or (upto is not None and e.seq > upto)
                        or e.ts_event > at
                    ):
                        continue
                    if batch_id > progress:
                        if e.seq <= checked:
                            return None
                        checked = e.seq
                    builder.apply(e)
        return builder.freeze()
    finally:
        if own:
            conn.rollback()
