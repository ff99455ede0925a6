"""Reading the archive: listings by hour, ranged Parquet reads, events of deleted batches.

* :meth:`ArchiveReader.list_objects` lists only the ``date=``/``hour=`` prefixes of the
  asked time range (whole days as one prefix): every object holds rows of one hour
  (:mod:`ticktape.sinks.archive.format`), so nothing outside them can match. Without ``since``
  the stream is listed whole; without ``until`` it is listed and filtered by key.
* :meth:`ArchiveReader.read` is predicate pushdown over ranged GETs: it fetches the
  footer (one request for the tail of the object, a second only for a larger footer),
  keeps the row groups whose symbol and ``ts_event`` min/max statistics can match, and
  fetches each kept row group's byte range in one request. ``bytes_fetched`` and
  ``requests`` count what was read, so callers and tests can see what was skipped.
* :meth:`ArchiveReader.events_of_batches` rebuilds the exact ``Event`` objects of batches
  whose local bodies retention deleted (the event store's fallback).
* :func:`verify` checks every partition's recorded units against the store (see
  :mod:`ticktape.sinks.archive.verify`).
"""

from __future__ import annotations

import io
import re
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ticktape.schemas.errors import ArchiveError, InputError
from ticktape.schemas.records import Event
from ticktape.sinks.archive import format as fmt
from ticktape.sinks.objectstore.base import ObjectInfo, ObjectStore

DAY_HOURS = 24
TAIL = 64 * 1024  # first footer request: most footers fit
KEY = re.compile(
    r"^(?P<prefix>.+)/stream=(?P<stream>[a-z]+)/date=(?P<date>\d{4}-\d{2}-\d{2})/hour=(?P<hour>\d{2})"
    r"/part=(?P<part>\d+)(?:/writer=(?P<writer>[A-Za-z0-9._-]+))?/(?P<first>\d+)-(?P<last>\d+)\.parquet$"
)


def key_hour(key: str) -> int | None:
    """Hours since the epoch of an archive key, or None for another kind of key."""
    m = KEY.match(key)
    if m is None:
        return None
    day = datetime.strptime(m["date"], "%Y-%m-%d").replace(tzinfo=UTC)
    return int(day.timestamp()) // 3600 + int(m["hour"])


def _hour_or(key: str, default: int) -> int:
    hour = key_hour(key)
    return default if hour is None else hour


def _date(hour: int) -> str:
    return datetime.fromtimestamp(hour * 3600, UTC).strftime("date=%Y-%m-%d/hour=%H")


class _RangeFile(io.RawIOBase):
    """A read-only file over ranged GETs, served from the ranges fetched so far."""

    def __init__(self, reader: ArchiveReader, key: str, size: int) -> None:
        self.reader, self.key, self.size, self.pos = reader, key, size, 0
        self.chunks: list[tuple[int, bytes]] = []

    def fetch(self, start: int, end: int) -> None:
        start, end = max(start, 0), min(end, self.size)
        if start < end and not self._cached(start, end):
            self.chunks.append((start, self.reader.get_range(self.key, start, end)))

    def _cached(self, start: int, end: int) -> bytes | None:
        for at, data in self.chunks:
            if at <= start and end <= at + len(data):
                return data[start - at : end - at]
        return None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.pos = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence] + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        end = min(self.pos + len(buffer), self.size)
        if end <= self.pos:
            return 0
        self.fetch(self.pos, end)
        data = self._cached(self.pos, end)
        assert data is not None
        buffer[: len(data)] = data
        self.pos = end
        return len(data)


class ArchiveReader:
    """Reads the objects under ``<prefix>/`` of ``store`` (see the module docstring)."""

    def __init__(self, store: ObjectStore, prefix: str = "ticktape") -> None:
        self.store, self.prefix = store, prefix.strip("/")
        self.bytes_fetched = 0
        self.requests = 0
        self._unit_cache: tuple[tuple[str, ...], dict[int, Event]] | None = None

    def get_range(self, key: str, start: int, end: int) -> bytes:
        data = self.store.get_range(key, start, end)
        self.bytes_fetched += len(data)
        self.requests += 1
        return data

    def list_objects(
        self, stream: str | None = None, since: int | None = None, until: int | None = None
    ) -> list[ObjectInfo]:
        """Objects of ``stream`` (both when None) with rows in ``[since, until)`` (ns)."""
        streams = fmt.STREAMS if stream is None else (stream,)
        if stream is not None and stream not in fmt.STREAMS:
            raise InputError(f"stream: expected one of {', '.join(fmt.STREAMS)}, got {stream!r}")
        out: list[ObjectInfo] = []
        for s in streams:
            base = f"{self.prefix}/stream={s}/"
            if since is None or until is None:
                lo = -(2**62) if since is None else since // fmt.HOUR_NS
                hi = 2**62 if until is None else (until - 1) // fmt.HOUR_NS
                out += [o for o in self.store.list(base) if lo <= _hour_or(o.key, lo - 1) <= hi]
                continue
            out += self._list_range(base, since // fmt.HOUR_NS, (until - 1) // fmt.HOUR_NS)
        return out

    def _list_range(self, base: str, first: int, last: int) -> list[ObjectInfo]:
        out: list[ObjectInfo] = []
        hour = first
        while hour <= last:
            if hour % DAY_HOURS == 0 and hour + DAY_HOURS - 1 <= last:  # a whole day: one listing
                out += self.store.list(base + _date(hour)[:15] + "/")
                hour += DAY_HOURS
            else:
                out += self.store.list(base + _date(hour) + "/")
                hour += 1
        return [o for o in out if key_hour(o.key) is not None]

    def read(
        self,
        symbol: str | None = None,
        since: int | None = None,
        until: int | None = None,
        stream: str = "ticks",
        *,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        """Rows of ``symbol`` (an aggregate for ``events``) with ``since <= ts_event <
        until``, sorted like the objects (symbol, time, row)."""
        if stream not in fmt.STREAMS:
            raise InputError(f"stream: expected one of {', '.join(fmt.STREAMS)}, got {stream!r}")
        schema = fmt.SCHEMAS[stream]
        tables = [
            self._read_object(o, stream, symbol, since, until)
            for o in self.list_objects(stream, since, until)
        ]
        tables = [t for t in tables if t is not None and t.num_rows]
        table = pa.concat_tables(tables) if tables else schema.empty_table()
        sort = fmt.SORT_COLUMN[stream]
        table = table.sort_by([(sort, "ascending"), ("ts_event", "ascending"), ("row", "ascending")])
        return table.select(list(columns)) if columns else table

    def _read_object(
        self, info: ObjectInfo, stream: str, symbol: str | None, since: int | None, until: int | None
    ) -> pa.Table | None:
        file = _RangeFile(self, info.key, info.size)
        file.fetch(info.size - TAIL, info.size)
        try:
            pf = pq.ParquetFile(file)
        except (pa.ArrowInvalid, OSError) as exc:
            raise ArchiveError(f"{info.key}: not a readable Parquet object ({exc})") from None
        meta = pf.metadata
        names = [meta.schema.column(i).name for i in range(meta.num_columns)]
        by_name, by_time = names.index(fmt.SORT_COLUMN[stream]), names.index("ts_event")
        keep: list[int] = []
        spans: list[list[int]] = []
        for i in range(meta.num_row_groups):
            group = meta.row_group(i)
            name, when = group.column(by_name).statistics, group.column(by_time).statistics
            if (
                symbol is not None
                and name is not None
                and name.has_min_max
                and not name.min <= symbol <= name.max
            ):
                continue
            if (
                when is not None
                and when.has_min_max
                and (
                    (since is not None and when.max_raw < since)
                    or (until is not None and when.min_raw >= until)
                )
            ):
                continue
            keep.append(i)
            cols = [group.column(j) for j in range(group.num_columns)]
            starts = [c.dictionary_page_offset or c.data_page_offset for c in cols]
            end = max(s + c.total_compressed_size for s, c in zip(starts, cols, strict=True))
            if spans and spans[-1][1] >= min(starts):  # adjacent row groups: one request
                spans[-1][1] = max(spans[-1][1], end)
            else:
                spans.append([min(starts), end])
        if not keep:
            return None
        for start, end in spans:
            file.fetch(start, end)
        table = pf.read_row_groups(keep)
        mask = pc.equal(table[fmt.SORT_COLUMN[stream]], symbol) if symbol is not None else None
        ts = table["ts_event"].cast(pa.int64())
        for cond in (
            pc.greater_equal(ts, since) if since is not None else None,
            pc.less(ts, until) if until is not None else None,
        ):
            if cond is not None:
                mask = cond if mask is None else pc.and_(mask, cond)
        return table.filter(mask) if mask is not None else table

    def events_of_batches(self, keys: Sequence[str], batches: Sequence[tuple[int, int]]) -> list[list[Event]]:
        """The events of batches given as ``(first_row, rows)``, each in log order, from
        the unit's objects ``keys`` (see :func:`unit_keys`). The last unit read is cached
        (an event store pages through a unit batch by batch)."""
        cached = self._unit_cache
        if cached is None or cached[0] != tuple(keys):
            by_row: dict[int, Event] = {}
            for key in keys:
                m = KEY.match(key)
                if m is None:
                    raise ArchiveError(f"{key!r} is not an archive object key")
                table = pq.read_table(pa.BufferReader(self.store.get(key)))
                by_row.update(fmt.table_events(m["stream"], table))
            cached = self._unit_cache = (tuple(keys), by_row)
        rows = cached[1]
        try:
            return [[rows[r] for r in range(first, first + n)] for first, n in batches]
        except KeyError as exc:
            raise ArchiveError(f"row {exc.args[0]} is not in the archive objects {list(keys)}") from None

    def events_of_archived_batch(
        self, conn: sqlite3.Connection, archived_key: str, first_row: int, rows: int
    ) -> list[Event]:
        """The events of one archived batch (the event store's ``ArchivedBatches``)."""
        return self.events_of_batches(unit_keys(conn, archived_key), [(first_row, rows)])[0]

    def iter_keys(self) -> Iterator[ObjectInfo]:
        """Every archive object under the prefix (a full listing: verify and ls only)."""
        for info in self.store.list(self.prefix + "/"):
            if KEY.match(info.key):
                yield info


def unit_keys(conn: sqlite3.Connection, archived_key: str) -> list[str]:
    """Every object key of the unit whose batches carry ``archived_key`` (the unit's
    first key), from the partition file's ``archive_units``."""
    rows = conn.execute(
        "SELECT key FROM archive_units WHERE first_row = (SELECT first_row FROM archive_units WHERE key = ?)"
        " ORDER BY key",
        (archived_key,),
    ).fetchall()
    return [r[0] for r in rows] or [archived_key]
