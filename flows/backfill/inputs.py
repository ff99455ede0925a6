"""Backfill input: history files or the job's own archive, as Arrow tables of trades in
arrival order, one table per source partition.

History files (freqtrade JSON, CSV with a column mapping, Kraken REST JSON) are decoded
row by row with the live decoders; Parquet files are read column-wise with the same
column mapping as CSV. Archive objects are read with predicate pushdown on symbol and
time and put back in their original arrival order (by source partition and offset), so
a backfill of an archived stream sees the trades in the order the live job saw them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ticktape.connectors.files.history import FileSourceConfig, history_spec
from ticktape.schemas.errors import DataError, InputError
from ticktape.schemas.history import CsvMapping, open_history
from ticktape.schemas.limits import MAX_NUMERIC_ID, NUMERIC_ID_DIGITS
from ticktape.schemas.records import Tick
from ticktape.schemas.timeparse import unit_to_ns
from ticktape.schemas.venues import side_of

COLUMNS = ("venue", "symbol", "price", "size", "side", "trade_id", "trade_no", "ts_event", "src", "offset")


_UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def trade_numbers(ids: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """``trade_no`` of each trade id (vectorized ``ticktape.schemas.venues.trade_no_of``): the
    integer value of ASCII-digit ids that fit int64, else -1."""
    text = pc.cast(ids, pa.string())
    length = pc.utf8_length(text)
    digits = pc.ascii_is_decimal(text)
    if pc.all(digits).as_py() and pc.max(length).as_py() <= NUMERIC_ID_DIGITS - 1:
        return pc.cast(text, pa.int64())  # the usual case: every id numeric
    fits = pc.or_(
        pc.less(length, NUMERIC_ID_DIGITS),
        pc.and_(pc.equal(length, NUMERIC_ID_DIGITS), pc.less_equal(text, str(MAX_NUMERIC_ID))),
    )
    numeric = pc.fill_null(pc.and_(digits, fits), False)
    return pc.cast(pc.if_else(numeric, text, pa.scalar("-1")), pa.int64())


def ticks_to_table(ticks: Iterable[Tick]) -> pa.Table:
    rows = list(ticks)
    return pa.table({c: [getattr(t, c) for t in rows] for c in COLUMNS})


def _parquet_file(path: Path, mapping: CsvMapping, venue: str, symbol: str) -> pa.Table:
    table = pq.read_table(path)
    names = table.column_names

    def col(name: str, what: str) -> pa.ChunkedArray:
        if name not in names:
            raise InputError(
                f"{path.name}: no column {name!r} for {what} (columns: {', '.join(names)}); set the mapping"
            )
        return table.column(name)

    n = table.num_rows
    ts_raw = col(mapping.timestamp, "the timestamp")
    if pa.types.is_timestamp(ts_raw.type):
        ts = ts_raw.cast(pa.timestamp("ns")).cast(pa.int64())
    elif mapping.ts_unit in _UNIT_NS and pa.types.is_integer(ts_raw.type):
        ts = pc.multiply(ts_raw.cast(pa.int64()), _UNIT_NS[mapping.ts_unit])
    else:
        ts = pa.array([unit_to_ns(v, mapping.ts_unit) for v in ts_raw.to_pylist()], pa.int64())
    ids = (
        pc.cast(col(mapping.trade_id, "the trade id"), pa.string())
        if mapping.trade_id
        else pa.array([""] * n)
    )
    if mapping.side:  # the venue's side words through side_of, once per distinct word
        raw = pc.cast(col(mapping.side, "the side"), pa.string())
        words = pc.unique(raw)
        sides = pc.take(
            pa.array([side_of(str(w)) for w in words.to_pylist()]), pc.index_in(raw, value_set=words)
        )
    else:
        sides = pa.array(["unknown"] * n)
    if not mapping.symbol and not symbol:
        raise InputError(f"{path.name}: no symbol: map a symbol column or pass --symbol")
    symbols = col(mapping.symbol, "the symbol").cast(pa.string()) if mapping.symbol else pa.repeat(symbol, n)
    return pa.table({
        "venue": pa.repeat(venue or "file", n), "symbol": symbols,
        "price": col(mapping.price, "the price").cast(pa.float64()), "size": col(mapping.size, "the size").cast(pa.float64()),
        "side": sides, "trade_id": ids, "trade_no": trade_numbers(ids),
        "ts_event": ts, "src": pa.repeat(f"file:{path.name}", n), "offset": pa.array(np.arange(n, dtype=np.int64)),
    })  # fmt: skip


def read_files(paths: list[Path], cfg: FileSourceConfig) -> tuple[dict[str, pa.Table], int]:
    """One table per file (partition ``file:<name>``), rows in file order, and the number
    of rows that could not be decoded (left out here; the streaming path over the files
    themselves turns them into dead letters)."""
    tables: dict[str, pa.Table] = {}
    undecodable = 0
    for path in paths:
        if not path.is_file():
            raise InputError(f"history file not found: {path}")
        name = f"file:{path.name}"
        if path.suffix == ".parquet":
            tables[name] = _parquet_file(path, cfg.csv, cfg.venue, cfg.symbol)
            continue
        rows, decode = open_history(path, history_spec(cfg, path))
        ticks: list[Tick] = []
        for row, raw in rows:
            try:
                ticks.extend(decode(raw, name, row, 0, 0))
            except DataError:
                undecodable += 1
        tables[name] = ticks_to_table(ticks)
    return tables, undecodable


def read_archive(
    url: str, prefix: str, *, since: int | None, until: int | None, symbols: list[str]
) -> dict[str, pa.Table]:
    """Archived accepted trades, one table per original source partition in offset order."""
    from ticktape.sinks.archive.reader import ArchiveReader
    from ticktape.sinks.objectstore.stores import open_store

    reader = ArchiveReader(open_store(url), prefix)
    wanted: list[str | None] = list(symbols) if symbols else [None]
    parts = [reader.read(symbol=s, since=since, until=until, stream="ticks") for s in wanted]
    table = (
        pa.concat_tables([p for p in parts if p.num_rows], promote_options="default")
        if any(p.num_rows for p in parts)
        else None
    )
    if table is None:
        return {}
    table = table.append_column("trade_no", trade_numbers(table.column("trade_id")))
    if pa.types.is_timestamp(table.schema.field("ts_event").type):
        table = table.set_column(
            table.schema.get_field_index("ts_event"), "ts_event", table.column("ts_event").cast(pa.int64())
        )
    out: dict[str, pa.Table] = {}
    for src in pc.unique(table.column("src")).to_pylist():
        part = table.filter(pc.equal(table.column("src"), src))
        out[str(src)] = part.sort_by([("offset", "ascending")]).select(list(COLUMNS))
    return out


def restrict(
    tables: dict[str, pa.Table], *, since: int | None, until: int | None, symbols: list[str]
) -> dict[str, pa.Table]:
    """Keep trades with ``since <= ts_event < until`` of the given symbols."""
    out = {}
    for name, table in tables.items():
        mask = None
        ts = table.column("ts_event")
        for cond in (
            pc.greater_equal(ts, since) if since is not None else None,
            pc.less(ts, until) if until is not None else None,
            pc.is_in(table.column("symbol"), pa.array(symbols)) if symbols else None,
        ):
            if cond is not None:
                mask = cond if mask is None else pc.and_(mask, cond)
        out[name] = table.filter(mask) if mask is not None else table
    return {k: v for k, v in out.items() if v.num_rows}
