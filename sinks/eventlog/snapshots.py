"""Aggregate snapshots every N events, written beside the event log (docs/architecture.md, "Event log").

The :class:`Snapshotter` is decoupled from the hot writer: it reads the batches of one
partition file that it has not processed yet, folds each aggregate's events
(:mod:`ticktape.sinks.eventlog.state`) and, every ``every`` events of an aggregate, stores the
aggregate's state in ``snapshots``. Tables it adds to the partition file:

* ``snapshots(aggregate, seq, ts_event, batch_id, state, seg_min_ts)``: the state after
  the aggregate's events up to ``seq`` (msgpack of ``AggregateState``). ``ts_event`` is
  the *largest* event time folded in (event times are not monotonic within an aggregate:
  candles carry their window end, late ticks their own time), so a snapshot with
  ``ts_event <= t`` holds only events at or before ``t``. ``batch_id`` is the batch of
  the event at ``seq``; ``seg_min_ts`` is the smallest event time among the events since
  the previous snapshot, so readers skip whole segments that end before ``t``.
* ``snapshot_heads``: each aggregate's running fold, so a restart needs no re-reading;
  ``snapshot_progress``: the last batch id processed.

Guarantees: a pass commits snapshots, heads and progress in one transaction, so a crash
mid-pass redoes the pass and writes nothing twice (``INSERT OR IGNORE``; snapshots are a
deterministic function of the log). Two snapshotters on one file are safe: a pass that
finds the progress moved under it is dropped. An aggregate whose events reach the log
out of ``seq`` order (a non-deterministic replay), or whose batch cannot be read, is
*tainted*: its snapshots are deleted and readers fold it from the beginning. Bodies
compressed in place (``ticktape.sinks.eventlog.compression``) are read like any other.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from ticktape.schemas.errors import ArchiveError
from ticktape.schemas.records import Event
from ticktape.sinks.base.sqlite import connect
from ticktape.sinks.eventlog.compression import decode_stored_body, dictionary_loader
from ticktape.sinks.eventlog.log import decode_body
from ticktape.sinks.eventlog.state import AggregateState, StateBuilder, decode_state, encode_state

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS snapshots (
        aggregate TEXT NOT NULL, seq INTEGER NOT NULL, ts_event INTEGER NOT NULL,
        batch_id INTEGER NOT NULL, state BLOB NOT NULL, seg_min_ts INTEGER NOT NULL,
        PRIMARY KEY (aggregate, seq)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS snapshot_heads (
        aggregate TEXT PRIMARY KEY, seq INTEGER NOT NULL, batch_id INTEGER NOT NULL,
        since INTEGER NOT NULL, ts_max INTEGER NOT NULL, seg_min_ts INTEGER NOT NULL,
        tainted INTEGER NOT NULL, state BLOB
    ) WITHOUT ROWID""",
    "CREATE TABLE IF NOT EXISTS snapshot_progress (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
)
TS_MIN, TS_MAX = -(2**63), 2**63 - 1


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the snapshot tables if they do not exist (idempotent)."""
    with conn:
        for ddl in SCHEMA:
            conn.execute(ddl)


def progress_of(conn: sqlite3.Connection) -> int:
    """The last batch id a snapshotter processed in this file (0: none)."""
    row = conn.execute("SELECT value FROM snapshot_progress WHERE key = 'batch_id'").fetchone()
    return int(row[0]) if row else 0


def decode_batch(body: bytes | None, codec: str, dicts: Callable[[int], bytes]) -> list[Event] | None:
    """The events of a stored batch (any body codec); None when it cannot be read (body
    deleted after archiving, unknown codec, missing dictionary: its aggregates get tainted)."""
    if body is None:
        return None
    try:
        return decode_body(decode_stored_body(codec, body, dicts))
    except ArchiveError:
        return None


class PassResult(msgspec.Struct, frozen=True):
    """What a pass (or a whole run) processed."""

    batches: int = 0
    events: int = 0
    snapshots: int = 0


class _Head:
    __slots__ = ("batch_id", "builder", "seg_min", "seq", "since", "tainted", "ts_max")

    def __init__(self, builder: StateBuilder | None, seq: int = -1, batch_id: int = 0, since: int = 0,
                 ts_max: int = TS_MIN, seg_min: int = TS_MAX, tainted: bool = False) -> None:  # fmt: skip
        self.builder, self.seq, self.batch_id, self.since = builder, seq, batch_id, since
        self.ts_max, self.seg_min, self.tainted = ts_max, seg_min, tainted


class Snapshotter:
    """Snapshots of every aggregate of one partition file, every ``every`` events.

    ``run_once`` processes at most ``max_events`` events (whole batches) in one pass;
    ``maybe_run(now)`` runs a pass when ``min_interval_s`` has passed since the last one
    or the last pass was cut by ``max_events`` (for the writer thread, between writes);
    ``run()`` catches up completely (the one-off).
    """

    def __init__(
        self,
        log_path: Path,
        *,
        every: int = 1000,
        max_events: int = 20_000,
        min_interval_s: float = 1.0,
        synchronous: str = "NORMAL",
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.path = log_path
        self.every = every
        self.max_events = max_events
        self.min_interval = int(min_interval_s * 1e9)
        self._db = connect(log_path, synchronous=synchronous)
        ensure_schema(self._db)
        self._heads: dict[str, _Head] = {}
        self._progress: int | None = None
        self._last_run: int | None = None
        self._behind = True

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Snapshotter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def maybe_run(self, now: int | None = None) -> PassResult:
        """A bounded pass if one is due (``now``: ns of one monotonic clock, default
        ``time.monotonic_ns()``); an empty result otherwise."""
        now = time.monotonic_ns() if now is None else now
        if not self._behind and self._last_run is not None and now - self._last_run < self.min_interval:
            return PassResult()
        self._last_run = now
        result = self.run_once()
        self._behind = result.events >= self.max_events
        return result

    def run(self) -> PassResult:
        """Passes until every committed batch is processed; the totals."""
        batches = events = snaps = 0
        while True:
            r = self.run_once()
            if r.batches == 0:
                return PassResult(batches, events, snaps)
            batches, events, snaps = batches + r.batches, events + r.events, snaps + r.snapshots

    def run_once(self, max_events: int | None = None) -> PassResult:
        """One pass over the batches after the stored progress (whole batches, until at
        least ``max_events`` events are folded), committed atomically."""
        budget = max_events or self.max_events
        try:
            return self._pass(budget)
        except BaseException:
            self._heads.clear()  # the in-memory folds may be ahead of the file: reload
            self._progress = None
            raise

    def _pass(self, budget: int) -> PassResult:
        db = self._db
        start = progress_of(db)
        if start != self._progress:
            self._heads.clear()
            self._progress = start
        snaps: list[tuple[str, int, int, int, bytes, int]] = []
        touched: set[str] = set()
        tainted: set[str] = set()
        batches = events = 0
        last = start
        unreadable: set[int] = set()
        dicts = dictionary_loader(db)
        cur = db.execute("SELECT id, body, codec, rows FROM batches WHERE id > ? ORDER BY id", (start,))
        try:
            for batch_id, body, codec, rows in cur:
                got = decode_batch(body, codec, dicts)
                if got is None:
                    unreadable.add(batch_id)
                else:
                    self._fold(got, batch_id, snaps, tainted, touched)
                events += rows
                batches += 1
                last = batch_id
                if events >= budget:
                    break
        finally:
            cur.close()
        if not batches:
            return PassResult()
        if unreadable:  # one scan (batch_aggregates is keyed by aggregate) for the whole pass
            for agg, batch_id in db.execute(
                "SELECT aggregate, batch_id FROM batch_aggregates WHERE batch_id BETWEEN ? AND ?",
                (min(unreadable), max(unreadable)),
            ).fetchall():
                if batch_id in unreadable:
                    self._taint(agg, tainted, touched)
        snaps = [s for s in snaps if s[0] not in tainted]
        db.execute("BEGIN IMMEDIATE")
        try:
            if progress_of(db) != start:  # another snapshotter did this pass
                db.rollback()
                self._heads.clear()
                self._progress = None
                return PassResult()
            for agg in tainted:
                db.execute("DELETE FROM snapshots WHERE aggregate = ?", (agg,))
            db.executemany("INSERT OR IGNORE INTO snapshots VALUES (?, ?, ?, ?, ?, ?)", snaps)
            db.executemany(
                "INSERT OR REPLACE INTO snapshot_heads VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [self._head_row(agg) for agg in touched],
            )
            db.execute(
                "INSERT INTO snapshot_progress VALUES ('batch_id', ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (last,),
            )
            db.commit()
        except BaseException:
            db.rollback()
            raise
        self._progress = last
        return PassResult(batches, events, len(snaps))

    def _head(self, agg: str) -> _Head:
        head = self._heads.get(agg)
        if head is None:
            row = self._db.execute(
                "SELECT seq, batch_id, since, ts_max, seg_min_ts, tainted, state FROM snapshot_heads"
                " WHERE aggregate = ?",
                (agg,),
            ).fetchone()
            if row is None:
                head = _Head(StateBuilder(AggregateState(aggregate=agg)))
            else:
                seq, batch_id, since, ts_max, seg_min, bad, blob = row
                builder = StateBuilder(decode_state(blob)) if blob is not None and not bad else None
                head = _Head(builder, seq, batch_id, since, ts_max, seg_min, bool(bad))
            self._heads[agg] = head
        return head

    def _fold(
        self,
        events: list[Event],
        batch_id: int,
        snaps: list[tuple[str, int, int, int, bytes, int]],
        tainted: set[str],
        touched: set[str],
    ) -> None:
        heads, every = self._heads, self.every
        for e in events:
            agg = e.aggregate
            head = heads.get(agg) or self._head(agg)
            builder = head.builder
            if builder is None:  # tainted
                continue
            seq, ts = e.seq, e.ts_event
            if seq <= head.seq:  # out of seq order: this aggregate's snapshots cannot be trusted
                self._taint(agg, tainted, touched)
                continue
            builder.apply(e)
            head.seq, head.batch_id = seq, batch_id
            head.since += 1
            head.ts_max = max(head.ts_max, ts)
            head.seg_min = min(head.seg_min, ts)
            touched.add(agg)
            if head.since >= every:
                snaps.append((agg, seq, head.ts_max, batch_id, encode_state(builder.freeze()), head.seg_min))
                head.since, head.seg_min = 0, TS_MAX

    def _taint(self, agg: str, tainted: set[str], touched: set[str]) -> None:
        head = self._head(agg)
        if not head.tainted:
            head.tainted, head.builder = True, None
            tainted.add(agg)
            touched.add(agg)

    def _head_row(self, agg: str) -> tuple[object, ...]:
        h = self._heads[agg]
        blob = encode_state(h.builder.freeze()) if h.builder is not None else None
        return (agg, h.seq, h.batch_id, h.since, h.ts_max, h.seg_min, int(h.tainted), blob)


def snapshot_all(directory: Path, *, every: int = 1000) -> dict[str, PassResult]:
    """Run a :class:`Snapshotter` to completion on every partition file of ``directory``."""
    out: dict[str, PassResult] = {}
    for path in sorted(directory.glob("part-*.sqlite")):
        with Snapshotter(path, every=every) as snap:
            out[str(path)] = snap.run()
    return out
