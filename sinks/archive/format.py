"""Archive objects: Arrow schemas, table builders and deterministic keys (docs/architecture.md, "The archive").

Two streams, one Parquet object per (stream, hour) of an archive *unit* (a contiguous run
of event-log batches):

* ``ticks``: one row per ``PriceUpdated`` event, its ``PriceUpdate`` fields as typed
  columns (times ``timestamp[ns, UTC]``), sorted by symbol, ``ts_event``, row;
* ``events``: every other event (``payload`` as a JSON string), sorted by aggregate,
  ``ts_event``, row;
* ``quotes`` and ``books`` (the market log of venue feeds, archived under its own prefix):
  one row per ``QuoteUpdated`` event (a ``Quote``: bid, ask, sizes, ...) or
  ``BookSnapshotted`` event (a ``BookSnapshot``: its levels as lists of
  ``{price, size}``), typed columns, sorted by symbol, ``ts_event``, row.

Both carry ``row`` (the event-log row number), ``ev_seq``/``seq`` and ``ts_logged``, so
:func:`table_events` rebuilds the exact ``Event`` the log held; the ``PriceUpdated``
payload is the canonical msgspec JSON of its fields, re-created byte for byte
(``causation`` is stored only when it is not ``src@offset``). A ``PriceUpdated`` event that
does not fit (another aggregate, another time, a payload that is not a canonical
``PriceUpdate``) goes to ``events`` unchanged: nothing is dropped or altered.

Keys: ``<prefix>/stream=<s>/date=YYYY-MM-DD/hour=HH/part=<p>/writer=<w>/<first_row>-<last_row>.parquet``
where first/last are the unit's log rows (zero-padded: keys sort by row), date/hour is
the hour of the object's rows (event time, or logged time when it is 0) and ``<w>`` is
the writer: the event-log partition file that holds the rows, named once per file as
``<job>-p<process id>-<random id>`` (:func:`writer_name`). Row numbers count per file,
so jobs and cluster processes that share a bucket and prefix (every pod of a
StatefulSet has the same config; a partition that moves to another process starts a new
file) never write, overwrite or shadow each other's keys. Keys written before writers
were named have no ``writer=`` segment; they are read the same way. A unit whose rows
span several hours becomes one object per hour, so an hour prefix lists every row of that
hour: time-range reads never need a lookback or a full listing. Keys are made of integers
and fixed words only; no input text (symbols, venues) can reach them.

Deterministic: the same batches give the same keys and the same rows in the same order.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ticktape.schemas.errors import ArchiveError
from ticktape.schemas.records import BookSnapshot, Event, EventType, Quote
from ticktape.sinks.objectstore.base import check_key

TS = pa.timestamp("ns", tz="UTC")
HOUR_NS = 3_600_000_000_000
STREAMS = ("ticks", "events", "quotes", "books")
_UPDATE = [
    ("venue", pa.string()), ("symbol", pa.string()), ("price", pa.float64()), ("size", pa.float64()),
    ("side", pa.string()), ("trade_id", pa.string()), ("ts_event", pa.int64()), ("ts_kafka", pa.int64()),
    ("ts_recv", pa.int64()), ("ts_proc", pa.int64()), ("seq", pa.int64()), ("src", pa.string()),
    ("offset", pa.int64()),
]  # fmt: skip
_UPDATE_NAMES = [n for n, _ in _UPDATE]
_TIMES = ("ts_event", "ts_kafka", "ts_recv", "ts_proc")
TICKS_SCHEMA = pa.schema(
    [("row", pa.int64()), ("event_id", pa.string())]
    + [(n, TS if n in _TIMES else t) for n, t in _UPDATE]
    + [("ev_seq", pa.int64()), ("ts_logged", TS), ("causation", pa.string())]
)
EVENTS_SCHEMA = pa.schema(
    [("row", pa.int64()), ("event_id", pa.string()), ("type", pa.string()), ("aggregate", pa.string()),
     ("seq", pa.int64()), ("ts_event", TS), ("ts_logged", TS), ("payload", pa.string()),
     ("causation", pa.string())]
)  # fmt: skip
_LEVEL = pa.list_(pa.struct([("price", pa.float64()), ("size", pa.float64())]))
_TAIL = [("ev_seq", pa.int64()), ("ts_logged", TS), ("causation", pa.string())]
QUOTES_SCHEMA = pa.schema(
    [("row", pa.int64()), ("event_id", pa.string()), ("venue", pa.string()), ("symbol", pa.string()),
     ("bid", pa.float64()), ("bid_size", pa.float64()), ("ask", pa.float64()), ("ask_size", pa.float64()),
     ("ts_event", TS), ("ts_recv", TS), ("src", pa.string()), ("offset", pa.int64()), ("ts_kafka", TS),
     ("update_id", pa.int64()), ("seq", pa.int64()), *_TAIL]
)  # fmt: skip
BOOKS_SCHEMA = pa.schema(
    [("row", pa.int64()), ("event_id", pa.string()), ("venue", pa.string()), ("symbol", pa.string()),
     ("ts_event", TS), ("last_id", pa.int64()), ("bids", _LEVEL), ("asks", _LEVEL), ("ts_recv", TS),
     ("src", pa.string()), ("offset", pa.int64()), ("reason", pa.string()), *_TAIL]
)  # fmt: skip
SCHEMAS = {"ticks": TICKS_SCHEMA, "events": EVENTS_SCHEMA, "quotes": QUOTES_SCHEMA, "books": BOOKS_SCHEMA}
DICTIONARY_COLUMNS = {
    "ticks": ["venue", "symbol", "side", "src"], "events": ["type", "aggregate"],
    "quotes": ["venue", "symbol", "src"], "books": ["venue", "symbol", "src", "reason"],
}  # fmt: skip
SORT_COLUMN = {"ticks": "symbol", "events": "aggregate", "quotes": "symbol", "books": "symbol"}
_MARKET = {EventType.QUOTE_UPDATED: "quotes", EventType.BOOK_SNAPSHOTTED: "books"}
_quote_dec = msgspec.json.Decoder(Quote)
_book_dec = msgspec.json.Decoder(BookSnapshot)
_UpdateRow = tuple[str, str, float | None, float | None, str, str, int, int, int, int, int, str, int]
_strict = msgspec.json.Decoder(_UpdateRow)
_enc = msgspec.json.Encoder()
_CSV_READ = pacsv.ReadOptions(column_names=[*_UPDATE_NAMES, "_end"], block_size=1 << 22)
_CSV_PARSE = pacsv.ParseOptions(quote_char='"', double_quote=False, escape_char=False)
_CSV_CONVERT = pacsv.ConvertOptions(
    column_types=dict(_UPDATE) | {"_end": pa.string()},
    null_values=["null"],
    strings_can_be_null=False,
    quoted_strings_can_be_null=False,
)
_INT64 = (-(2**63), 2**63 - 1)
_CSV_BYTES = bytes.maketrans(b"[]", b"\n,")  # "[" -> newline, "]" -> ","


class Batch(NamedTuple):
    """One event-log batch: its first row number, logged time and events (log order)."""

    first_row: int
    ts_logged: int
    events: list[Event]


class Part(NamedTuple):
    """The rows of one stream and one hour (hours since the epoch) of a unit."""

    stream: str
    hour: int
    table: pa.Table


def object_key(
    prefix: str, stream: str, hour: int, partition: int, first_row: int, last_row: int, writer: str = ""
) -> str:
    """The key of a unit's object for ``stream`` and ``hour`` (see the module docstring);
    ``writer`` empty: the key of an archive written before writers were named."""
    if stream not in STREAMS:
        raise ArchiveError(f"stream: expected one of {STREAMS}, got {stream!r}")
    if writer and not WRITER.fullmatch(writer):
        raise ArchiveError(f"writer: expected 1-80 of [A-Za-z0-9._-], got {writer!r}")
    t = time.gmtime(hour * 3600)
    who = f"/writer={writer}" if writer else ""
    return check_key(
        f"{prefix}/stream={stream}/date={t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}/hour={t.tm_hour:02d}"
        f"/part={partition:03d}{who}/{first_row:012d}-{last_row:012d}.parquet"
    )


#: A writer name: ``<job>-p<process>-<random id>``.
WRITER = re.compile(r"[A-Za-z0-9._-]{1,80}")


def writer_name(job: str, process_id: int) -> str:
    """A new writer name for an event-log partition file: the job, the process id and a
    random id (64 bits), so two files never share one even with the same job and id."""
    return f"{job}-p{process_id}-{secrets.token_hex(8)}"


def _fast_updates(payloads: list[bytes]) -> pa.Table | None:
    """Parse canonical ``PriceUpdate`` JSON arrays in bulk (Arrow's CSV reader), or None.

    JSON without backslashes has no escapes and no raw newlines. When each payload starts
    with its only ``[`` and ends with its only ``]``, turning ``[`` into a newline and
    ``]`` into a comma makes the concatenation CSV (with an empty last column).
    """
    n = len(payloads)
    binary = pa.array(payloads, pa.large_binary())
    offsets = np.frombuffer(binary.buffers()[1], np.int64, n + 1)
    raw = binary.buffers()[2]
    data = np.frombuffer(raw, np.uint8, int(offsets[-1]))
    if (
        np.count_nonzero(data == 91) != n  # "["
        or np.count_nonzero(data == 93) != n  # "]"
        or np.count_nonzero(data == 92)  # a backslash: an escape
        or np.count_nonzero(data == 123)  # "{": a nested object
        or not (data[offsets[:-1]] == 91).all()
        or not (data[offsets[1:] - 1] == 93).all()
    ):
        return None
    csv = memoryview(raw)[: int(offsets[-1])].tobytes().translate(_CSV_BYTES)
    try:
        table = pacsv.read_csv(pa.BufferReader(csv), _CSV_READ, _CSV_PARSE, _CSV_CONVERT)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if table.num_rows != n:
        return None
    table = table.drop_columns(["_end"]).combine_chunks()
    # Canonical check on a sample: a foreign encoding (e.g. a number where a string
    # belongs) would parse but not re-encode to the same bytes.
    picks = list(range(0, n, max(1, n // 64)))
    sample = table.take(picks).to_pylist()
    if any(_enc.encode(tuple(r.values())) != payloads[i] for i, r in zip(picks, sample, strict=True)):
        return None
    return table


def _slow_updates(payloads: list[bytes]) -> tuple[pa.Table, list[int]]:
    """Decode one by one; returns the table of canonical payloads and the positions of
    the others (which go to the ``events`` stream)."""
    rows: list[_UpdateRow] = []
    bad: list[int] = []
    for i, p in enumerate(payloads):
        try:
            r = _strict.decode(p)
        except msgspec.ValidationError:
            bad.append(i)
            continue
        ints = (r[6], r[7], r[8], r[9], r[10], r[12])
        if _enc.encode(r) != p or not all(_INT64[0] <= v <= _INT64[1] for v in ints):
            bad.append(i)
            continue
        rows.append(r)
    cols: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [[] for _ in _UPDATE]
    arrays = [pa.array(c, type=t) for c, (_, t) in zip(cols, _UPDATE, strict=True)]
    return pa.Table.from_arrays(arrays, names=_UPDATE_NAMES), bad


def _ticks(evs: list[Event], rows: np.ndarray, logged: np.ndarray) -> tuple[pa.Table, list[int]]:
    """The ticks table of ``evs`` (all ``PriceUpdated``) and the positions that do not fit."""
    payloads = [e.payload for e in evs]
    fast = _fast_updates(payloads)
    table, bad = (fast, []) if fast is not None else _slow_updates(payloads)
    keep = np.ones(len(evs), dtype=bool)
    keep[bad] = False
    kept = evs if not bad else [e for e, k in zip(evs, keep, strict=True) if k]
    aggregate = pa.array([e.aggregate for e in kept], pa.string())
    ts_event = pa.array([e.ts_event for e in kept], pa.int64())
    fits = pc.and_(
        pc.equal(pc.binary_join_element_wise(table["symbol"], table["venue"], "@"), aggregate),
        pc.equal(table["ts_event"], ts_event),
    )
    causation = pa.array([e.causation for e in kept], pa.string())
    derived = pc.binary_join_element_wise(table["src"], pc.cast(table["offset"], pa.string()), "@")
    columns: dict[str, Any] = {
        "row": pa.array(rows[keep]),
        "event_id": pa.array([e.event_id for e in kept], pa.string()),
        **{n: table[n] for n in _UPDATE_NAMES},
        "ev_seq": pa.array([e.seq for e in kept], pa.int64()),
        "ts_logged": pa.array(logged[keep]),
        "causation": pc.if_else(pc.equal(derived, causation), pa.scalar(None, pa.string()), causation),
    }
    out = pa.table(columns)
    ok = np.asarray(fits.to_numpy(zero_copy_only=False), dtype=bool)
    if not ok.all():
        bad = sorted([*bad, *np.flatnonzero(keep)[~ok].tolist()])
        out = out.filter(pa.array(ok))
    for name in (*_TIMES, "ts_logged"):
        out = out.set_column(out.schema.get_field_index(name), name, out[name].cast(TS))
    return out.cast(TICKS_SCHEMA), bad


def _events(evs: list[Event], rows: np.ndarray, logged: np.ndarray) -> pa.Table:
    payloads: list[str] = []
    for e in evs:
        try:
            payloads.append(e.payload.decode("utf-8"))
        except UnicodeDecodeError as exc:  # never from our writers (msgspec JSON): keep it local
            raise ArchiveError(f"event {e.event_id}: payload is not UTF-8 JSON ({exc})") from None
    columns = {
        "row": pa.array(rows),
        "event_id": [e.event_id for e in evs],
        "type": [e.type for e in evs],
        "aggregate": [e.aggregate for e in evs],
        "seq": [e.seq for e in evs],
        "ts_event": pa.array([e.ts_event for e in evs], pa.int64()).cast(TS),
        "ts_logged": pa.array(logged).cast(TS),
        "payload": payloads,
        "causation": [e.causation for e in evs],
    }
    return pa.table(columns, schema=EVENTS_SCHEMA)


def _or(value: str | None, default: str) -> str:
    return default if value is None else value


def _sorted_parts(stream: str, table: pa.Table) -> list[Part]:
    """Sort by (symbol|aggregate, ts_event, row), then cut by hour of the row's time."""
    if table.num_rows == 0:
        return []
    names = table[SORT_COLUMN[stream]].combine_chunks().dictionary_encode()
    ranks = pc.take(pc.rank(names.dictionary, sort_keys="ascending"), names.indices)
    keys = pa.table({"k": ranks, "t": table["ts_event"], "r": table["row"]})
    table = table.take(pc.sort_indices(keys, [("k", "ascending"), ("t", "ascending"), ("r", "ascending")]))
    ts = table["ts_event"].cast(pa.int64())
    when = pc.if_else(pc.greater(ts, 0), ts, table["ts_logged"].cast(pa.int64()))
    hours = when.to_numpy() // HOUR_NS
    unique = np.unique(hours).tolist()
    if len(unique) == 1:
        return [Part(stream, unique[0], table)]
    return [Part(stream, h, table.filter(pa.array(hours == h))) for h in unique]


def _market(
    stream: str, evs: list[Event], rows: np.ndarray, logged: np.ndarray
) -> tuple[pa.Table, list[int]]:
    """The ``quotes``/``books`` table of ``evs`` and the positions that do not fit (not the
    canonical record of their aggregate and time: those stay JSON in ``events``)."""
    quotes = stream == "quotes"
    records: list[Any] = []
    keep: list[int] = []
    for i, e in enumerate(evs):
        try:
            r = _quote_dec.decode(e.payload) if quotes else _book_dec.decode(e.payload)
        except msgspec.ValidationError:
            continue
        aggregate = f"{r.symbol}@{r.venue}" if quotes else f"book:{r.symbol}@{r.venue}"
        if _enc.encode(r) != e.payload or e.aggregate != aggregate or e.ts_event != r.ts_event:
            continue
        records.append(r)
        keep.append(i)
    kept = [evs[i] for i in keep]
    derived = [f"{r.src}@{r.offset}" for r in records]
    columns: dict[str, Any] = {
        "row": pa.array(rows[keep] if keep else np.zeros(0, np.int64)),
        "event_id": [e.event_id for e in kept],
        "venue": [r.venue for r in records],
        "symbol": [r.symbol for r in records],
    }
    if quotes:
        for name in ("bid", "bid_size", "ask", "ask_size", "ts_event", "ts_recv", "src", "offset", "ts_kafka",
                     "update_id", "seq"):  # fmt: skip
            columns[name] = [getattr(r, name) for r in records]
    else:
        for name in ("ts_event", "last_id", "ts_recv", "src", "offset", "reason"):
            columns[name] = [getattr(r, name) for r in records]
        columns["bids"] = [[{"price": p, "size": q} for p, q in r.bids] for r in records]
        columns["asks"] = [[{"price": p, "size": q} for p, q in r.asks] for r in records]
    columns["ev_seq"] = [e.seq for e in kept]
    columns["ts_logged"] = pa.array(logged[keep] if keep else np.zeros(0, np.int64)).cast(TS)
    columns["causation"] = [
        None if e.causation == d else e.causation for e, d in zip(kept, derived, strict=True)
    ]
    schema = SCHEMAS[stream]
    ints = {
        n: pa.array(v, pa.int64()).cast(TS)
        for n, v in columns.items()
        if schema.field(n).type == TS and n != "ts_logged"
    }
    table = pa.table({**columns, **ints}, schema=schema)
    bad = sorted(set(range(len(evs))) - set(keep))
    return table, bad


def build_parts(batches: Sequence[Batch]) -> list[Part]:
    """The objects of a unit made of ``batches`` (in log order), ticks first."""
    evs = [e for b in batches for e in b.events]
    empty = np.zeros(0, np.int64)
    rows = np.concatenate([empty, *(np.arange(b.first_row, b.first_row + len(b.events)) for b in batches)])
    logged = np.concatenate([empty, *(np.full(len(b.events), b.ts_logged, np.int64) for b in batches)])
    types = [e.type for e in evs]
    if types.count(EventType.PRICE_UPDATED) == len(types):
        is_tick = np.ones(len(evs), dtype=bool)
    else:
        is_tick = pc.equal(pa.array(types, pa.string()), EventType.PRICE_UPDATED).to_numpy(
            zero_copy_only=False
        )
    tick_at = np.flatnonzero(is_tick)
    ticks = evs if len(tick_at) == len(evs) else [evs[i] for i in tick_at]
    parts: list[Part] = []
    other = np.flatnonzero(~is_tick)
    if len(other) and _MARKET.keys() & set(types):
        rest: list[int] = []
        by_stream: dict[str, list[int]] = {}
        for i in other.tolist():
            market = _MARKET.get(types[i])
            if market is None:
                rest.append(i)
            else:
                by_stream.setdefault(market, []).append(i)
        for market, at in sorted(by_stream.items()):
            positions = np.array(at, np.int64)
            table, misfits = _market(market, [evs[i] for i in at], rows[positions], logged[positions])
            parts += _sorted_parts(market, table)
            rest += [at[i] for i in misfits]
        other = np.array(sorted(rest), np.int64)
    if ticks:
        table, bad = _ticks(ticks, rows[tick_at], logged[tick_at])
        parts += _sorted_parts("ticks", table)
        if bad:
            other = np.sort(np.concatenate([other, tick_at[bad]]))
    if len(other):
        table = _events([evs[i] for i in other], rows[other], logged[other])
        parts += _sorted_parts("events", table)
    return parts


def write_parquet(part: Part, *, level: int, row_group_rows: int) -> bytes:
    """The Parquet bytes of ``part``: zstd at ``level``, dictionary-encoded repeated
    strings, min/max statistics per row group of ``row_group_rows`` rows."""
    sink = pa.BufferOutputStream()
    pq.write_table(
        part.table,
        sink,
        compression="zstd",
        compression_level=level,
        use_dictionary=DICTIONARY_COLUMNS[part.stream],
        row_group_size=row_group_rows,
        write_statistics=True,
    )
    return bytes(sink.getvalue().to_pybytes())


def table_events(stream: str, table: pa.Table) -> list[tuple[int, Event]]:
    """``(row, Event)`` for every row of an archived table, exactly as the log held them
    (``ts_logged`` is the batch's logged time, as the event store reports it)."""
    ints = table.select([n for n in table.column_names if table.schema.field(n).type != TS])
    times = {
        n: table[n].cast(pa.int64()).to_pylist()
        for n in table.column_names
        if table.schema.field(n).type == TS
    }
    cols = {n: ints[n].to_pylist() for n in ints.column_names} | times
    out: list[tuple[int, Event]] = []
    if stream in ("quotes", "books"):
        return _market_events(stream, cols)
    if stream == "events":
        for i, row in enumerate(cols["row"]):
            out.append((row, Event(
                cols["event_id"][i], cols["type"][i], cols["aggregate"][i], cols["seq"][i], cols["ts_event"][i],
                cols["ts_logged"][i], cols["payload"][i].encode(), cols["causation"][i],
            )))  # fmt: skip
        return out
    update = [cols[n] for n in _UPDATE_NAMES]
    for i, row in enumerate(cols["row"]):
        fields = tuple(c[i] for c in update)
        venue, symbol, src, offset = fields[0], fields[1], fields[11], fields[12]
        out.append((row, Event(
            cols["event_id"][i], EventType.PRICE_UPDATED, f"{symbol}@{venue}", cols["ev_seq"][i],
            cols["ts_event"][i], cols["ts_logged"][i], _enc.encode(fields), _or(cols["causation"][i], f"{src}@{offset}"),
        )))  # fmt: skip
    return out


def _market_events(stream: str, cols: dict[str, list[Any]]) -> list[tuple[int, Event]]:
    """The ``QuoteUpdated``/``BookSnapshotted`` events of a ``quotes``/``books`` table."""
    out: list[tuple[int, Event]] = []
    for i, row in enumerate(cols["row"]):
        venue, symbol, src, offset = cols["venue"][i], cols["symbol"][i], cols["src"][i], cols["offset"][i]
        record: Quote | BookSnapshot
        if stream == "quotes":
            record = Quote(venue, symbol, cols["bid"][i], cols["bid_size"][i], cols["ask"][i], cols["ask_size"][i],
                           cols["ts_event"][i], cols["ts_recv"][i], src, offset, cols["ts_kafka"][i],
                           cols["update_id"][i], cols["seq"][i])  # fmt: skip
            typ, aggregate = EventType.QUOTE_UPDATED, f"{symbol}@{venue}"
        else:
            bids = [(lv["price"], lv["size"]) for lv in cols["bids"][i]]
            asks = [(lv["price"], lv["size"]) for lv in cols["asks"][i]]
            record = BookSnapshot(venue, symbol, cols["ts_event"][i], cols["last_id"][i], bids, asks,
                                  cols["ts_recv"][i], src, offset, cols["reason"][i])  # fmt: skip
            typ, aggregate = EventType.BOOK_SNAPSHOTTED, f"book:{symbol}@{venue}"
        out.append((row, Event(
            cols["event_id"][i], typ, aggregate, cols["ev_seq"][i], cols["ts_event"][i], cols["ts_logged"][i],
            _enc.encode(record), _or(cols["causation"][i], f"{src}@{offset}"),
        )))  # fmt: skip
    return out
