"""Arrow schemas for Parquet (candles, archived events) and conversions from records.

Times are ``timestamp[ns, UTC]`` in Parquet (what DuckDB, polars and Spark expect) and
``int`` ns in our records; strings that repeat (venue, symbol, type, aggregate) are
dictionary-encoded by the Parquet writer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from ticktape.schemas.records import Candle

TS = pa.timestamp("ns", tz="UTC")

CANDLE_SCHEMA = pa.schema(
    [
        ("venue", pa.string()),
        ("symbol", pa.string()),
        ("interval", pa.int32()),
        ("start", TS),
        ("end", TS),
        ("open", pa.float64()),
        ("high", pa.float64()),
        ("low", pa.float64()),
        ("close", pa.float64()),
        ("volume", pa.float64()),
        ("notional", pa.float64()),
        ("vwap", pa.float64()),
        ("trades", pa.int64()),
        ("buy_volume", pa.float64()),
        ("sell_volume", pa.float64()),
        ("first_trade_id", pa.string()),
        ("last_trade_id", pa.string()),
        ("revision", pa.int32()),
        ("ts_final", TS),
    ]
)
_CANDLE_FIELDS = tuple(Candle.__struct_fields__)


def candles_to_table(candles: Sequence[Candle]) -> pa.Table:
    """Column-wise conversion (one pass per field)."""
    columns: list[Any] = [[getattr(c, name) for c in candles] for name in _CANDLE_FIELDS]
    arrays = [pa.array(col, type=field.type) for col, field in zip(columns, CANDLE_SCHEMA, strict=True)]
    return pa.Table.from_arrays(arrays, schema=CANDLE_SCHEMA)


def table_to_candles(table: pa.Table) -> list[Candle]:
    cols = [
        table.column(name).cast(pa.int64()) if table.schema.field(name).type == TS else table.column(name)
        for name in _CANDLE_FIELDS
    ]
    values = [c.to_pylist() for c in cols]
    return [Candle(*row) for row in zip(*values, strict=True)]
