"""Scenario ``backfill``: rows/s from a Parquet file of trades to 1m/5m/1h candles.

Measured in the same run on the same file: ticktape's vectorized fast path (read +
admission + exact candles), polars and DuckDB doing the same aggregation (first/last by
time and trade id, max, min, sums, count; their float sums are not exact), and
ticktape's streaming path (the whole flow with every output) for scale. The ratio
compares the fast path with the faster of polars and DuckDB.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ticktape.connectors.files.history import FileSourceConfig
from ticktape.flows.backfill.inputs import read_files
from ticktape.flows.backfill.run import backfill
from ticktape.flows.config import from_dict
from ticktape.flows.steps.candles_vector import candles_with_admission
from ticktape.infra.bench.candles import bench_ticks
from ticktape.infra.bench.common import Measurement, median, repeat
from ticktape.schemas.history import CsvMapping
from ticktape.sinks.cache import embedded as cache_mod

SEC = 1_000_000_000
INTERVALS = (60 * SEC, 300 * SEC, 3600 * SEC)


MAPPING = CsvMapping(
    timestamp="timestamp",
    ts_unit="ns",
    price="price",
    size="size",
    side="side",
    trade_id="trade_id",
    symbol="symbol",
)


def write_trades(path: Path, ticks: int, symbols: int) -> int:
    rows = bench_ticks(ticks, symbols)
    cols = {
        c: [getattr(t, c) for t in rows] for c in ("symbol", "price", "size", "side", "trade_id", "ts_event")
    }
    cols["timestamp"] = cols.pop("ts_event")
    pq.write_table(pa.table(cols), path, compression="zstd")
    return len(rows)


def fast_path(path: Path) -> float:
    """The backfill's own reader and vectorized candle computation (no output writes)."""
    t0 = time.perf_counter()
    tables, _ = read_files([path], FileSourceConfig(csv=MAPPING, venue="bench"))
    table = pa.concat_tables(list(tables.values()))
    result = candles_with_admission(table, INTERVALS, grace_ns=2 * SEC, horizon_ns=300 * SEC, window=4096)
    assert result is not None
    rows: int = table.num_rows
    return rows / (time.perf_counter() - t0)


def polars_path(path: Path) -> float:
    import polars as pl

    t0 = time.perf_counter()
    df = (
        pl.read_parquet(path)
        .with_columns(pl.col("trade_id").cast(pl.Int64).alias("no"))
        .sort(["symbol", "timestamp", "no"])
    )
    for interval in INTERVALS:
        (
            df.with_columns((pl.col("timestamp") // interval * interval).alias("start"), (pl.col("price") * pl.col("size")).alias("notional"))
            .group_by(["symbol", "start"], maintain_order=True)
            .agg(
                pl.col("price").first().alias("open"), pl.col("price").max().alias("high"), pl.col("price").min().alias("low"),
                pl.col("price").last().alias("close"), pl.col("size").sum().alias("volume"), pl.col("notional").sum(), pl.len().alias("trades"),
            )
        )  # fmt: skip
    return df.height / (time.perf_counter() - t0)


def duckdb_path(path: Path) -> float:
    import duckdb

    t0 = time.perf_counter()
    con = duckdb.connect()
    for interval in INTERVALS:
        con.sql(
            f"""SELECT symbol, timestamp // {interval} * {interval} AS start,
                   arg_min(price, (timestamp, CAST(trade_id AS BIGINT))) AS open, max(price) AS high, min(price) AS low,
                   arg_max(price, (timestamp, CAST(trade_id AS BIGINT))) AS close, sum(size) AS volume,
                   sum(price * size) AS notional, count(*) AS trades
                FROM read_parquet(?) GROUP BY ALL""",
            params=[str(path)],
        ).to_arrow_table()
    rows = con.execute("SELECT count(*) FROM read_parquet(?)", [str(path)]).fetchone()
    con.close()
    return (rows[0] if rows else 0) / (time.perf_counter() - t0)


def streaming_path(path: Path, n: int) -> float:
    tmp = Path(tempfile.mkdtemp(prefix="ticktape-bench-backfill-"))
    try:
        cfg = from_dict({"run": {"data_dir": str(tmp)}, "metrics": {"enabled": False}})
        t0 = time.perf_counter()
        backfill(
            cfg, files=[path], file_cfg=FileSourceConfig(csv=MAPPING, venue="bench"), exact_streaming=True
        )
        rate = n / (time.perf_counter() - t0)
        cache_mod.release(tmp / "cache.sqlite")
        return rate
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def backfill_scenario(ticks: int = 1_000_000, symbols: int = 500, repeats: int = 3) -> Measurement:
    with tempfile.TemporaryDirectory(prefix="ticktape-bench-trades-") as tmp:
        path = Path(tmp) / "trades.parquet"
        n = write_trades(path, ticks, symbols)
        fast = repeat(lambda: fast_path(path), repeats)
        pol = repeat(lambda: polars_path(path), repeats)
        duck = repeat(lambda: duckdb_path(path), repeats)
        stream = repeat(lambda: streaming_path(path, n), 1, warmup=0)
    best_name, best = max((("polars", median(pol)), ("DuckDB", median(duck))), key=lambda kv: kv[1])
    return Measurement(
        scenario="backfill",
        unit="rows/s",
        value=median(fast),
        baseline_name=f"{best_name} (faster of polars/DuckDB)",
        baseline=best,
        samples=fast,
        baseline_samples=pol if best_name == "polars" else duck,
        extra={
            "rows": n,
            "polars": median(pol),
            "duckdb": median(duck),
            "streaming_path": median(stream),
            "intervals_s": [i // SEC for i in INTERVALS],
        },
    )
