"""Parquet history files: trades read column-wise with the CSV column mapping.

The mapping (``[source.file.csv]``: ``timestamp``/``ts_unit``, ``price``, ``size``,
``side``, ``trade_id``, ``symbol``) names the columns; a timestamp column of a timestamp
type is used as it is. Rows keep file order; ``offset`` is the row number and ``src``
``file:<name>``, as for every history file. Used by ``ticktape run`` (the file source)
and ``ticktape backfill``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ticktape.schemas.errors import InputError
from ticktape.schemas.history import CsvMapping
from ticktape.schemas.limits import MAX_NUMERIC_ID, NUMERIC_ID_DIGITS
from ticktape.schemas.timeparse import rfc3339_to_ns, unit_to_ns
from ticktape.schemas.venues import side_of

COLUMNS = ("venue", "symbol", "price", "size", "side", "trade_id", "trade_no", "ts_event", "src", "offset")
_UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() == ".parquet"


def check_parquet(path: Path, mapping: CsvMapping, symbol: str) -> None:
    """Raise :class:`InputError` unless ``path`` is Parquet with the mapped columns (read
    from the footer only)."""
    try:
        names = pq.read_schema(path).names
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    wanted = [(mapping.timestamp, "the timestamp"), (mapping.price, "the price"), (mapping.size, "the size")]
    wanted += [
        (c, what)
        for c, what in (
            (mapping.side, "the side"),
            (mapping.trade_id, "the trade id"),
            (mapping.symbol, "the symbol"),
        )
        if c
    ]
    for name, what in wanted:
        if name not in names:
            raise InputError(
                f"{path.name}: no column {name!r} for {what} (columns: {', '.join(names)}); set [source.file.csv]"
            )
    if not mapping.symbol and not symbol:
        raise InputError(
            f"{path.name}: no symbol: map a symbol column ([source.file.csv] symbol) or set the symbol"
        )


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


def _ns_or_none(value: object, unit: str) -> int | None:
    if value is None:
        return None
    try:
        ns = rfc3339_to_ns(str(value)) if unit == "rfc3339" else unit_to_ns(value, unit)  # type: ignore[arg-type]
    except (ValueError, TypeError, OverflowError):
        return None
    return ns if -(2**63) <= ns < 2**63 else None


def read_parquet_trades(path: Path, mapping: CsvMapping, venue: str, symbol: str) -> pa.Table:
    """The trades of a Parquet file as a table of :data:`COLUMNS`, read column-wise with
    the CSV column ``mapping``; ``venue``/``symbol`` fill what the file does not carry.
    A timestamp that does not parse is null (its row a dead letter in a run). Raises
    :class:`InputError` when a mapped column is missing or no symbol is known."""
    check_parquet(path, mapping, symbol)
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
    else:  # text or another unit: value by value; one that does not parse is null
        ts = pa.array([_ns_or_none(v, mapping.ts_unit) for v in ts_raw.to_pylist()], pa.int64())
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
    symbols = col(mapping.symbol, "the symbol").cast(pa.string()) if mapping.symbol else pa.repeat(symbol, n)
    return pa.table({
        "venue": pa.repeat(venue or "file", n), "symbol": symbols,
        "price": col(mapping.price, "the price").cast(pa.float64()), "size": col(mapping.size, "the size").cast(pa.float64()),
        "side": sides, "trade_id": ids, "trade_no": trade_numbers(ids),
        "ts_event": ts, "src": pa.repeat(f"file:{path.name}", n), "offset": pa.array(np.arange(n, dtype=np.int64)),
    })  # fmt: skip
