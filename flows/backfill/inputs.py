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

import pyarrow as pa
import pyarrow.compute as pc

from ticktape.connectors.files.history import FileSourceConfig, history_spec
from ticktape.connectors.files.parquet import is_parquet, read_parquet_trades, trade_numbers
from ticktape.schemas.errors import DataError, InputError
from ticktape.schemas.history import open_history
from ticktape.schemas.records import Tick
from ticktape.sinks.objectstore.s3 import S3Config

COLUMNS = ("venue", "symbol", "price", "size", "side", "trade_id", "trade_no", "ts_event", "src", "offset")


def ticks_to_table(ticks: Iterable[Tick]) -> pa.Table:
    rows = list(ticks)
    return pa.table({c: [getattr(t, c) for t in rows] for c in COLUMNS})


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
        if cfg.format == "parquet" or (cfg.format == "auto" and is_parquet(path)):
            table = read_parquet_trades(path, cfg.csv, cfg.venue, cfg.symbol)
            timed = table.filter(pc.is_valid(table.column("ts_event")))
            undecodable += table.num_rows - timed.num_rows
            tables[name] = timed
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
    url: str,
    prefix: str,
    *,
    since: int | None,
    until: int | None,
    symbols: list[str],
    s3: S3Config | None = None,
) -> dict[str, pa.Table]:
    """Archived accepted trades, one table per original source partition in offset order.
    ``s3``: the ``[archive.s3]`` client settings (endpoint, region, timeouts) for an
    ``s3://`` URL."""
    from ticktape.sinks.archive.reader import ArchiveReader
    from ticktape.sinks.objectstore.stores import open_store

    reader = ArchiveReader(open_store(url, s3=s3), prefix)
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
