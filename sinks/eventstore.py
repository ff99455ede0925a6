"""Reading the event log: events by aggregate, type and time range, paged.

Queries open every partition read-only (safe while the job writes: WAL readers never
block the writer) and merge their results. Ordering: by ``seq`` within one aggregate,
otherwise by ``event_id``, which is time-ordered (its prefix is ``ts_event``). Paging is
keyset-based: a page returns an opaque ``cursor`` to pass back for the next page, so
deep pages cost the same as the first.
"""

from __future__ import annotations

import heapq
import sqlite3
from collections import Counter
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import msgspec

from schemas.errors import InputError
from schemas.records import Event
from sinks.eventlog import partition_of
from sinks.sqlite import connect

_COLUMNS = "event_id, type, aggregate, seq, ts_event, ts_logged, payload, causation"


class EventPage(msgspec.Struct, frozen=True):
    events: list[Event]
    cursor: str | None


def _row_to_event(row: tuple[str, str, str, int, int, int, bytes, str]) -> Event:
    return Event(row[0], row[1], row[2], row[3], row[4], row[5], bytes(row[6]), row[7])


class EventStore:
    """Read access to ``<data_dir>/events``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.paths = sorted(directory.glob("part-*.sqlite")) if directory.is_dir() else []
        self._conns: dict[Path, sqlite3.Connection] = {}

    def _conn(self, path: Path) -> sqlite3.Connection:
        conn = self._conns.get(path)
        if conn is None:
            conn = self._conns[path] = connect(path, readonly=True)
        return conn

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(
        self,
        *,
        aggregate: str | None = None,
        type: str | None = None,
        since: int | None = None,
        until: int | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> EventPage:
        """One page of events matching every given filter (``since`` inclusive, ``until``
        exclusive, ns). Pass the returned ``cursor`` to get the next page; it is ``None``
        on the last page."""
        if limit < 1:
            raise InputError(f"limit must be >= 1, got {limit}")
        where: list[str] = []
        params: list[object] = []
        if type:
            where.append("type = ?")
            params.append(type)
        if since is not None:
            where.append("ts_event >= ?")
            params.append(since)
        if until is not None:
            where.append("ts_event < ?")
            params.append(until)
        if aggregate:
            return self._by_aggregate(aggregate, where, params, cursor, limit)
        if cursor:
            where.append("event_id > ?")
            params.append(_parse_cursor(cursor, "e"))
        if since is not None:  # use the unique index: ids start with the event time
            where.append("event_id >= ?")
            params.append(f"{since:016x}")
        sql = f"SELECT {_COLUMNS} FROM events{_where(where)} ORDER BY event_id LIMIT ?"
        streams = [self._conn(p).execute(sql, [*params, limit + 1]) for p in self.paths]
        rows = list(islice(heapq.merge(*streams, key=lambda r: r[0]), limit + 1))
        events = [_row_to_event(r) for r in rows[:limit]]
        more = len(rows) > limit
        return EventPage(events, f"e:{events[-1].event_id}" if more and events else None)

    def _by_aggregate(
        self, aggregate: str, where: list[str], params: list[object], cursor: str | None, limit: int
    ) -> EventPage:
        if not self.paths:
            return EventPage([], None)
        path = self.paths[partition_of(aggregate, len(self.paths))]
        where = ["aggregate = ?", *where]
        params = [aggregate, *params]
        if cursor:
            where.append("seq > ?")
            params.append(int(_parse_cursor(cursor, "s")))
        sql = f"SELECT {_COLUMNS} FROM events{_where(where)} ORDER BY seq LIMIT ?"
        rows = self._conn(path).execute(sql, [*params, limit + 1]).fetchall()
        events = [_row_to_event(r) for r in rows[:limit]]
        more = len(rows) > limit
        return EventPage(events, f"s:{events[-1].seq}" if more and events else None)

    def iter_events(
        self,
        *,
        aggregate: str | None = None,
        type: str | None = None,
        since: int | None = None,
        until: int | None = None,
    ) -> Iterator[Event]:
        """Every matching event, page after page (same order as :meth:`query`)."""
        cursor: str | None = None
        while True:
            page = self.query(aggregate=aggregate, type=type, since=since, until=until, cursor=cursor, limit=5000)
            yield from page.events
            if page.cursor is None:
                return
            cursor = page.cursor

    def latest_per_aggregate(self, type: str) -> Iterator[Event]:
        """The newest event of ``type`` of every aggregate (used to warm the cache)."""
        sql = (
            f"SELECT {_COLUMNS} FROM events WHERE id IN "
            "(SELECT max(id) FROM events WHERE type = ? GROUP BY aggregate)"
        )
        for path in self.paths:
            for row in self._conn(path).execute(sql, (type,)):
                yield _row_to_event(row)

    def stats(self) -> dict[str, object]:
        """Rows, aggregates and bytes per partition; events per type."""
        types: Counter[str] = Counter()
        parts = []
        for path in self.paths:
            conn = self._conn(path)
            rows = conn.execute(
                "SELECT count(*), count(DISTINCT aggregate), min(ts_event), max(ts_event) FROM events"
            ).fetchone()
            for typ, n in conn.execute("SELECT type, count(*) FROM events GROUP BY type"):
                types[typ] += n
            size = sum(f.stat().st_size for f in path.parent.glob(path.name + "*"))
            parts.append(
                {
                    "path": str(path),
                    "rows": rows[0],
                    "aggregates": rows[1],
                    "min_ts": rows[2],
                    "max_ts": rows[3],
                    "bytes": size,
                }
            )
        return {
            "partitions": parts,
            "rows": sum(int(p["rows"] or 0) for p in parts),
            "types": dict(types),
        }


def _where(clauses: list[str]) -> str:
    return " WHERE " + " AND ".join(clauses) if clauses else ""


def _parse_cursor(cursor: str, kind: str) -> str:
    prefix, _, value = cursor.partition(":")
    if prefix != kind or not value:
        raise InputError(
            f"invalid cursor {cursor!r} for this query (cursors belong to the query that made them)"
        )
    return value
