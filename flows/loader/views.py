"""DuckDB views over the loader's Parquet store (optional: only if ``duckdb`` imports).

``<output>/analytics.duckdb`` holds views only (no data), re-created after every load
over *all* the store's files, so they see every batch:

- ``v_quotes``: the quotes, one row per (date, instrument, dealer): the most recent
  record across batches (greatest time; equal times: the file that sorts last), with
  ``id_type`` (``cusip``/``isin``, from the id's length);
- ``v_daily_instrument``: per (date, instrument) of ``v_quotes``: dealers, first/last
  time, mean/min/max of the numeric value columns;
- ``v_daily_dealer``: per (date, dealer) of ``v_quotes``: instruments, first/last time;
- ``v_unmatched``: per instrument reported unmatched against the reference by any load:
  rows, loads, first/last date (empty when no load had a reference);
- ``v_rejected``: every rejected row with its reason and origin (when there are any).

Paths inside the views are absolute: moving the store means loading again (or
recreating the views with :func:`create_views`). SQLite cannot read Parquet, so without
DuckDB there are no views, only the Parquet summaries.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.parquet as pq

DATABASE: Final = "analytics.duckdb"


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _numeric_columns(root: Path) -> list[str]:
    """Numeric value columns of the newest quotes file (the views are rebuilt per load)."""
    files = sorted((root / "quotes").glob("*/*.parquet"), key=lambda p: p.stat().st_mtime)
    if not files:
        return []
    schema = pq.read_schema(files[-1])
    skip = {"instrument", "dealer", "time", "id_type", "date"}
    return [
        f.name
        for f in schema
        if f.name not in skip and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))
    ]


def view_sql(root: Path) -> list[str]:
    """The ``CREATE OR REPLACE VIEW`` statements for the store at ``root``."""
    root = root.resolve()
    out: list[str] = []
    if any((root / "quotes").glob("*/*.parquet")):
        source = f"read_parquet({_quote(root / 'quotes' / '*' / '*.parquet')}, hive_partitioning = true, union_by_name = true, filename = true)"
        out.append(
            "CREATE OR REPLACE VIEW v_quotes AS SELECT * EXCLUDE (_rank, filename),"
            " CASE length(instrument) WHEN 12 THEN 'isin' ELSE 'cusip' END AS id_type FROM ("
            " SELECT *, row_number() OVER (PARTITION BY date, instrument, dealer ORDER BY time DESC, filename DESC) AS _rank"
            f" FROM {source}) WHERE _rank = 1"
        )
        stats = "".join(
            f", avg({_ident(c)}) AS {_ident(c + '_mean')}, min({_ident(c)}) AS {_ident(c + '_min')}, max({_ident(c)}) AS {_ident(c + '_max')}"
            for c in _numeric_columns(root)
        )
        out.append(
            "CREATE OR REPLACE VIEW v_daily_instrument AS SELECT date, instrument, count(*) AS dealers,"
            f" min(time) AS first_time, max(time) AS last_time{stats} FROM v_quotes GROUP BY date, instrument"
        )
        out.append(
            "CREATE OR REPLACE VIEW v_daily_dealer AS SELECT date, dealer, count(*) AS instruments,"
            " min(time) AS first_time, max(time) AS last_time FROM v_quotes GROUP BY date, dealer"
        )
    if any((root / "unmatched").glob("*.parquet")):
        source = f"read_parquet({_quote(root / 'unmatched' / '*.parquet')}, union_by_name = true)"
        out.append(
            "CREATE OR REPLACE VIEW v_unmatched AS SELECT instrument, sum(rows) AS rows, count(*) AS loads,"
            f" min(first_date) AS first_date, max(last_date) AS last_date FROM {source} GROUP BY instrument"
        )
    else:
        out.append(
            "CREATE OR REPLACE VIEW v_unmatched AS SELECT NULL::VARCHAR AS instrument, NULL::BIGINT AS rows,"
            " NULL::BIGINT AS loads, NULL::DATE AS first_date, NULL::DATE AS last_date WHERE false"
        )
    if any((root / "rejected").glob("*.parquet")):
        source = f"read_parquet({_quote(root / 'rejected' / '*.parquet')}, union_by_name = true)"
        out.append(f"CREATE OR REPLACE VIEW v_rejected AS SELECT * FROM {source}")
    return out


def create_views(root: Path) -> str:
    """(Re)create the views in ``root/analytics.duckdb``; returns what was done, for the
    report (``duckdb: <path> (<views>)``, or why there are no views)."""
    try:
        import duckdb
    except ImportError:
        return "none: the optional 'duckdb' package is not installed (Parquet summaries only)"
    statements = view_sql(root)
    path = root / DATABASE
    try:
        con = duckdb.connect(str(path))
        try:
            for sql in _drop_stale(con, statements):
                con.execute(sql)
        finally:
            con.close()
    except duckdb.Error as exc:
        return f"none: cannot update {path}: {exc}"
    names = [s.split()[4] for s in statements]
    return f"duckdb: {path} ({', '.join(names)})"


def _drop_stale(con: object, statements: Sequence[str]) -> list[str]:
    """Drop the views this module makes that the new statements do not recreate."""
    names = {s.split()[4] for s in statements}
    ours = ("v_daily_instrument", "v_daily_dealer", "v_quotes", "v_rejected")  # dependents first
    stale = [v for v in ours if v not in names]
    return [f"DROP VIEW IF EXISTS {v}" for v in stale] + list(statements)
