"""The local event log (docs/architecture.md, "Event log"): durable, append-only, idempotent, per partition.

Layout: ``<data_dir>/events/part-NNN.sqlite``, one SQLite file (WAL) per event-log
partition; an aggregate always lives in partition ``stable_bucket(aggregate)``, so the
layout does not depend on the number of workers or processes.

Storage ("append-only segments indexed by SQLite"): each write is one *batch* row whose
``body`` is the msgpack of its events, plus one ``batch_aggregates`` row per aggregate in
the batch (seq and id range) and one ``rare_events`` row per event that is not a
``PriceUpdated`` (indexed by type and time). Measured on the dev machine: one SQLite row
per event peaked at ~115k rows/s with the needed indexes; batches reach ~640k events/s
(500 symbols) and ~210k (10,000 symbols) per writer.

Guarantees:

* **Idempotent** (insert-or-ignore by ``event_id``): event ids start with the event time,
  and events of one aggregate arrive in order, so an id above the aggregate's newest id
  is new (fast path); others are checked against the stored batches of that aggregate
  (slow path: replays). When retention deletes archived bodies it keeps their event ids
  (``deleted_ids``: the sorted ids of each batch, zstd-compressed, about 10 bytes per
  event), so a replay of archived data is recognised exactly, and a new event whose id
  merely falls inside a deleted batch's id range (a revision of an old candle, a late
  trade) is stored, never taken for a repeat.
* **Durable**: a batch is committed before :meth:`EventLogPartition.flush` returns; the
  Bytewax sink flushes before every recovery snapshot.
* Rows are numbered per partition in append order (``first_row``), which the archiver uses
  for deterministic object keys.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import zstandard

from ticktape.infra.observability.crashpoints import declare, reach
from ticktape.infra.observability.logs import get_logger
from ticktape.schemas.ids import stable_bucket
from ticktape.schemas.records import Event, EventType
from ticktape.sinks.base.sqlite import connect
from ticktape.sinks.eventlog.compression import decode_stored_body, dictionary_loader

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS batches (
        id INTEGER PRIMARY KEY,
        first_row INTEGER NOT NULL,
        rows INTEGER NOT NULL,
        min_ts INTEGER NOT NULL,
        max_ts INTEGER NOT NULL,
        ts_logged INTEGER NOT NULL,
        body BLOB,
        codec TEXT NOT NULL DEFAULT 'msgpack',
        archived_key TEXT,
        archived_at INTEGER
    )""",
    """CREATE TABLE IF NOT EXISTS batch_aggregates (
        aggregate TEXT NOT NULL,
        batch_id INTEGER NOT NULL,
        first_seq INTEGER NOT NULL,
        last_seq INTEGER NOT NULL,
        min_id TEXT NOT NULL,
        max_id TEXT NOT NULL,
        PRIMARY KEY (aggregate, batch_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS rare_events (
        event_id TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        aggregate TEXT NOT NULL,
        seq INTEGER NOT NULL,
        ts_event INTEGER NOT NULL,
        batch_id INTEGER NOT NULL,
        pos INTEGER NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS rare_by_type ON rare_events(type, ts_event)",
    "CREATE INDEX IF NOT EXISTS rare_by_batch ON rare_events(batch_id, pos)",
    # The event ids of batches whose bodies retention deleted (see remember_deleted_ids).
    "CREATE TABLE IF NOT EXISTS deleted_ids (batch_id INTEGER PRIMARY KEY, ids BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    # The archive (ticktape.sinks.archive.archiver): one row per archive object; a unit is the rows sharing
    # (first_row, last_row). ``state`` goes planned -> verified; ``deleted_at`` is set
    # when retention deleted the unit's local bodies.
    """CREATE TABLE IF NOT EXISTS archive_units (
        key TEXT PRIMARY KEY,
        partition INTEGER NOT NULL,
        stream TEXT NOT NULL,
        first_row INTEGER NOT NULL,
        last_row INTEGER NOT NULL,
        first_batch INTEGER NOT NULL,
        last_batch INTEGER NOT NULL,
        rows INTEGER NOT NULL,
        raw_bytes INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('planned', 'verified')),
        size INTEGER,
        sha256 TEXT,
        planned_at INTEGER NOT NULL,
        verified_at INTEGER,
        deleted_at INTEGER,
        compressed_at INTEGER
    )""",
    "CREATE INDEX IF NOT EXISTS archive_units_by_row ON archive_units(first_row)",
    # This file's name in archive keys (ticktape.sinks.archive.format.writer_name), set once.
    "CREATE TABLE IF NOT EXISTS archive_writer (id INTEGER PRIMARY KEY CHECK (id = 1), name TEXT NOT NULL)",
    # Local compression of archived-but-retained bodies (ticktape.sinks.eventlog.compression).
    "CREATE TABLE IF NOT EXISTS zstd_dicts (id INTEGER PRIMARY KEY, created INTEGER NOT NULL, bytes BLOB NOT NULL)",
    """CREATE TABLE IF NOT EXISTS compression_stats (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        batches INTEGER NOT NULL,
        rows INTEGER NOT NULL,
        raw_bytes INTEGER NOT NULL,
        compressed_bytes INTEGER NOT NULL,
        last_run INTEGER NOT NULL,
        last_codec TEXT NOT NULL,
        dictionary_gain REAL
    )""",
)

log = get_logger("eventlog")
CRASH_UNCOMMITTED = declare("eventlog.uncommitted", "a batch written inside its open transaction")
CRASH_COMMITTED = declare("eventlog.committed", "a batch committed, before the snapshot that covers it")
_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(list[Event])


def encode_body(events: Sequence[Event]) -> bytes:
    return _enc.encode(events)


def decode_body(body: bytes) -> list[Event]:
    return _dec.decode(body)


def remember_deleted_ids(db: sqlite3.Connection, first_batch: int, last_batch: int) -> None:
    """Keep the event ids of batches ``first_batch..last_batch`` whose bodies are about to
    be deleted (call inside the deleting transaction): the write path's slow path needs
    them to tell a repeat from a new event once the bodies are gone."""
    load = dictionary_loader(db)
    rows = db.execute(
        "SELECT id, body, codec FROM batches WHERE id BETWEEN ? AND ? AND body IS NOT NULL",
        (first_batch, last_batch),
    ).fetchall()
    packed = []
    zstd = zstandard.ZstdCompressor(level=9)  # one per call: compressors are not thread-safe
    for batch_id, body, codec in rows:
        ids = sorted(e.event_id for e in decode_body(decode_stored_body(codec, body, load)))
        packed.append((batch_id, zstd.compress("\n".join(ids).encode())))
    db.executemany("INSERT OR REPLACE INTO deleted_ids VALUES (?, ?)", packed)


def deleted_ids(db: sqlite3.Connection, batch_id: int) -> set[str] | None:
    """The event ids of a batch whose body retention deleted (None: not recorded, a
    batch deleted before ids were kept)."""
    row = db.execute("SELECT ids FROM deleted_ids WHERE batch_id = ?", (batch_id,)).fetchone()
    if row is None:
        return None
    text = zstandard.ZstdDecompressor().decompress(row[0]).decode()
    return set(text.split("\n")) if text else set()


def partition_of(aggregate: str, partitions: int) -> int:
    """The event-log partition that holds ``aggregate``."""
    return stable_bucket(aggregate, partitions)


def partition_path(directory: Path, index: int) -> Path:
    return directory / f"part-{index:03d}.sqlite"


class EventLogPartition:
    """Writer of one partition file (one writer per partition).

    With ``background=True`` appends are queued to a writer thread that coalesces them
    into large transactions (bounded queue: a full queue blocks the caller, which is
    backpressure, never loss); :meth:`flush` waits until everything queued is committed
    and re-raises a writer failure.
    """

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "NORMAL",
        background: bool = False,
        max_queue: int = 64,
        max_coalesce: int = 50_000,
        after_write: Callable[[], object] | None = None,
        on_commit: Callable[[list[Event], int], object] | None = None,
    ) -> None:
        self.path = path
        self.max_coalesce = max_coalesce
        self.after_write = after_write
        #: Called on the writing thread after each commit with the events it stored and
        #: ``time.time_ns()`` of the commit (the bench's recv->durable stamp); must be cheap.
        self.on_commit = on_commit
        self._db = connect(path, synchronous=synchronous)
        self._db.execute("PRAGMA cache_size=-65536")
        with self._db:
            for ddl in SCHEMA:
                self._db.execute(ddl)
        self._heads: dict[str, str] = dict(
            self._db.execute(
                "SELECT aggregate, max(max_id) FROM batch_aggregates GROUP BY aggregate"
            ).fetchall()
        )
        row = self._db.execute("SELECT value FROM meta WHERE key = 'next_row'").fetchone()
        self.next_row = int(row[0]) if row else 0
        self.rows_written = 0
        self.rows_ignored = 0
        self._queue: queue.Queue[list[Event] | None] | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        if background:
            self._queue = queue.Queue(maxsize=max_queue)
            self._thread = threading.Thread(target=self._run, name=f"eventlog-{path.stem}", daemon=True)
            self._thread.start()

    def append(self, events: Sequence[Event]) -> None:
        """Store ``events`` (in order), ignoring ids already present."""
        if not events:
            return
        if self._error is not None:
            raise self._error
        if self._queue is None:
            self._write(list(events))
        else:
            self._queue.put(list(events))

    def _fresh_spans(self, events: list[Event]) -> dict[str, list[Any]] | None:
        """The usual case in one pass: when every event's id is above its aggregate's
        newest (stored or earlier in ``events``), all are new; then per aggregate
        ``[min seq, max seq, min id, max id]`` (and the newest ids are recorded). ``None``
        when some id is not: :meth:`_new_events` decides, nothing was recorded."""
        heads = self._heads
        spans: dict[str, list[Any]] = {}
        for e in events:
            agg, eid, seq = e.aggregate, e.event_id, e.seq
            span = spans.get(agg)
            if span is None:
                head = heads.get(agg)
                if head is not None and eid <= head:
                    return None
                spans[agg] = [seq, seq, eid, eid]
            else:
                if eid <= span[3]:
                    return None
                span[3] = eid
                if seq < span[0]:
                    span[0] = seq
                elif seq > span[1]:
                    span[1] = seq
        for agg, span in spans.items():
            heads[agg] = span[3]
        return spans

    @staticmethod
    def _spans(events: list[Event]) -> dict[str, list[Any]]:
        """Per aggregate ``[min seq, max seq, min id, max id]`` of ``events``."""
        spans: dict[str, list[Any]] = {}
        for e in events:
            agg, seq, eid = e.aggregate, e.seq, e.event_id
            span = spans.get(agg)
            if span is None:
                spans[agg] = [seq, seq, eid, eid]
                continue
            if seq < span[0]:
                span[0] = seq
            elif seq > span[1]:
                span[1] = seq
            if eid < span[2]:
                span[2] = eid
            elif eid > span[3]:
                span[3] = eid
        return spans

    def _new_events(self, events: list[Event]) -> list[Event]:
        """The events not stored yet, in their append order."""
        heads = self._heads
        fast: list[bool] = []
        slow: list[Event] = []
        for e in events:
            head = heads.get(e.aggregate)
            if head is None or e.event_id > head:
                heads[e.aggregate] = e.event_id
                fast.append(True)
            else:
                fast.append(False)
                slow.append(e)
        if not slow:
            return events
        known = self._stored_ids(slow)
        known.update(e.event_id for e, f in zip(events, fast, strict=True) if f)
        fresh: list[Event] = []
        for e, f in zip(events, fast, strict=True):
            if f:
                fresh.append(e)
            elif e.event_id not in known:
                known.add(e.event_id)
                fresh.append(e)
        return fresh

    def _stored_ids(self, events: list[Event]) -> set[str]:
        """Ids of stored events that could equal ``events`` (slow path). Events inside
        the id range of a batch whose body was deleted after archiving count as stored."""
        by_agg: dict[str, tuple[str, str]] = {}
        for e in events:
            lo, hi = by_agg.get(e.aggregate, (e.event_id, e.event_id))
            by_agg[e.aggregate] = (min(lo, e.event_id), max(hi, e.event_id))
        known: set[str] = set()
        bodies: dict[int, list[Event] | None] = {}
        gone: dict[int, set[str] | None] = {}
        for agg, (lo, hi) in by_agg.items():
            rows = self._db.execute(
                "SELECT batch_id, min_id, max_id FROM batch_aggregates WHERE aggregate = ? AND max_id >= ? AND min_id <= ?",
                (agg, lo, hi),
            ).fetchall()
            for batch_id, min_id, max_id in rows:
                if batch_id not in bodies:
                    body = self._db.execute(
                        "SELECT body, codec FROM batches WHERE id = ?", (batch_id,)
                    ).fetchone()
                    bodies[batch_id] = (
                        decode_body(decode_stored_body(body[1], body[0], dictionary_loader(self._db)))
                        if body and body[0] is not None
                        else None
                    )
                stored = bodies[batch_id]
                if stored is not None:
                    known.update(s.event_id for s in stored if s.aggregate == agg)
                    continue
                if batch_id not in gone:  # archived and deleted: its kept ids decide
                    gone[batch_id] = deleted_ids(self._db, batch_id)
                    if gone[batch_id] is None:
                        log.warning(
                            "%s: batch %d was deleted before its event ids were kept; new events "
                            "inside its id range are taken as stored",
                            self.path.name,
                            batch_id,
                        )
                ids = gone[batch_id]
                in_range = (
                    e.event_id for e in events if e.aggregate == agg and min_id <= e.event_id <= max_id
                )
                known.update(in_range if ids is None else (i for i in in_range if i in ids))
        return known

    def _write(self, events: list[Event]) -> None:
        spans = self._fresh_spans(events)
        if spans is None:  # some id is not above its aggregate's newest: check the stored ids
            new = self._new_events(events)
            self.rows_ignored += len(events) - len(new)
            if not new:
                return
            spans = self._spans(new)
        else:
            new = events
        times = [e.ts_event for e in new]
        min_ts, max_ts = min(times), max(times)
        price_updated = EventType.PRICE_UPDATED
        rare = [
            (e.event_id, e.type, e.aggregate, e.seq, e.ts_event, pos)
            for pos, e in enumerate(new)
            if e.type != price_updated
        ]
        first_row = self.next_row
        db = self._db
        with db:
            cur = db.execute(
                "INSERT INTO batches(first_row, rows, min_ts, max_ts, ts_logged, body) VALUES (?, ?, ?, ?, ?, ?)",
                (first_row, len(new), min_ts, max_ts, time.time_ns(), encode_body(new)),
            )
            batch_id = cur.lastrowid
            db.executemany(
                "INSERT OR REPLACE INTO batch_aggregates VALUES (?, ?, ?, ?, ?, ?)",
                [(agg, batch_id, v[0], v[1], v[2], v[3]) for agg, v in spans.items()],
            )
            if rare:
                db.executemany(
                    "INSERT OR IGNORE INTO rare_events VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(r[0], r[1], r[2], r[3], r[4], batch_id, r[5]) for r in rare],
                )
            db.execute(
                "INSERT INTO meta(key, value) VALUES ('next_row', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (first_row + len(new),),
            )
            reach(CRASH_UNCOMMITTED)
        reach(CRASH_COMMITTED)
        self.next_row = first_row + len(new)
        self.rows_written += len(new)
        if self.on_commit is not None:
            self.on_commit(new, time.time_ns())

    def _run(self) -> None:
        """Writer thread: coalesce everything queued into one transaction (commit cost
        dominates small transactions)."""
        assert self._queue is not None
        q = self._queue
        while True:
            items = [q.get()]
            try:
                rows = len(items[0] or ())
                while rows < self.max_coalesce:
                    try:
                        item = q.get_nowait()
                    except queue.Empty:
                        break
                    items.append(item)
                    rows += len(item or ())
                merged = [e for item in items if item for e in item]
                if merged and self._error is None:
                    self._write(merged)
            except BaseException as exc:  # surfaced to the caller by flush()/append()
                self._error = exc
            finally:
                for _ in items:
                    q.task_done()
            if any(item is None for item in items):
                return
            if self.after_write is not None and q.empty() and self._error is None:
                try:
                    self.after_write()
                except Exception:  # housekeeping (snapshots) must never fail the writer
                    log.warning("after-write hook of %s failed", self.path.name, exc_info=True)

    def flush(self) -> None:
        """Block until every appended event is committed."""
        if self._queue is not None:
            self._queue.join()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self._queue is not None and self._thread is not None:
                self._queue.put(None)
                self._thread.join(timeout=30)
            self._db.close()

    @property
    def connection(self) -> sqlite3.Connection:
        return self._db
