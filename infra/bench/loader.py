"""Scenario ``loader``: batch history loading of a generated vendor file (CSV and Parquet).

Ours: :func:`ticktape.flows.loader.load.load_files` end to end (read, id standardization with check
digits, rejection, most-recent dedupe, partitioned zstd Parquet, rejected rows, daily
summaries, DQ report, DuckDB views), into a fresh store each time.

Baseline, in the same run on the same file: DuckDB (or polars when DuckDB is missing)
doing less work the usual way: read, trim/uppercase the id, drop rows without id, dealer
or time, ``row_number()`` window dedupe per (date, instrument, dealer) and a partitioned
zstd Parquet write. It validates no check digits, maps no ISINs and reports nothing, so
the ratio is conservative. The predecessor (Python + SQLite) loaded 7,558 rows/s.

Rates are rows read per wall second (medians after a warm-up); ``extra`` also has rows
per CPU second, which is steadier on a shared machine.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ticktape.flows.loader.generate import generate_vendor_file
from ticktape.flows.loader.load import LoaderConfig, LoadReport, load_files
from ticktape.infra.bench.common import Measurement, median

PREDECESSOR_ROWS_PER_S = 7_558
TARGET_ROWS_PER_S = 1_000_000
DIRT: dict[str, Any] = {
    "invalid_rate": 0.01, "mistyped_rate": 0.005, "duplicate_rate": 0.1, "isin_rate": 0.1,
    "bad_time_rate": 0.0005, "missing_dealer_rate": 0.0005,
}  # fmt: skip


def _duckdb_baseline(path: Path, out: Path) -> None:
    import duckdb

    source = (
        f"read_csv('{path}', header = true, all_varchar = true)"
        if path.suffix == ".csv"
        else f"read_parquet('{path}')"
    )
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute(f"""
            COPY (
                SELECT * EXCLUDE (rn) FROM (
                    SELECT *, row_number() OVER (
                        PARTITION BY date, instrument, dealer ORDER BY ts DESC, rowid DESC) AS rn
                    FROM (
                        SELECT upper(trim(instrument)) AS instrument, trim(dealer) AS dealer,
                               TRY_CAST(time AS TIMESTAMPTZ) AS ts,
                               CAST(TRY_CAST(time AS TIMESTAMPTZ) AS DATE) AS date,
                               TRY_CAST(bid AS DOUBLE) AS bid, TRY_CAST(ask AS DOUBLE) AS ask,
                               TRY_CAST(bid_size AS BIGINT) AS bid_size, TRY_CAST(ask_size AS BIGINT) AS ask_size,
                               row_number() OVER () AS rowid
                        FROM {source})
                    WHERE length(instrument) > 0 AND length(dealer) > 0 AND ts IS NOT NULL)
                WHERE rn = 1
            ) TO '{out}' (FORMAT parquet, PARTITION_BY (date), COMPRESSION zstd)
        """)
    finally:
        con.close()


def _polars_baseline(path: Path, out: Path) -> None:
    import polars as pl

    frame = pl.scan_csv(path, infer_schema=False) if path.suffix == ".csv" else pl.scan_parquet(path)
    ts = pl.col("time").cast(pl.String).str.to_datetime(time_zone="UTC", strict=False)
    result = (
        frame.with_row_index("rowid")
        .with_columns(pl.col("instrument").str.strip_chars().str.to_uppercase(), pl.col("dealer").str.strip_chars(), ts.alias("ts"))
        .filter(pl.col("instrument").str.len_chars() > 0, pl.col("dealer").str.len_chars() > 0, pl.col("ts").is_not_null())
        .with_columns(pl.col("ts").dt.date().alias("date"))
        .sort(["ts", "rowid"])
        .unique(["date", "instrument", "dealer"], keep="last")
        .collect()
    )  # fmt: skip
    result.write_parquet(out, compression="zstd", partition_by=["date"])


def _baseline() -> tuple[str, Callable[[Path, Path], None]]:
    try:
        import duckdb  # noqa: F401
    except ImportError:
        return "polars sort + unique + partitioned write", _polars_baseline
    return "DuckDB SQL window dedupe + partitioned write", _duckdb_baseline


def _timed(rows: int, work: Callable[[Path], object]) -> tuple[float, float]:
    """Rows per wall second and per CPU second (all threads) of ``work`` into a fresh dir."""
    out = Path(tempfile.mkdtemp(prefix="ticktape-bench-loader-"))
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        work(out / "store")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        return rows / wall, rows / max(cpu, 1e-9)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def loader_scenario(rows: int = 2_000_000, repeats: int = 3) -> Measurement:
    """Median rows/s of ``load_files`` vs the baseline on generated CSV and Parquet files.

    The four runs (ours/baseline x CSV/Parquet) are interleaved in every repetition, after
    one warm-up each, so that both sides see the same background load.
    """
    baseline_name, baseline = _baseline()
    tmp = Path(tempfile.mkdtemp(prefix="ticktape-bench-vendor-"))
    wall: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    reports: list[LoadReport] = []
    try:
        truth = generate_vendor_file(tmp / "runs.csv", rows, seed=42, **DIRT)
        generate_vendor_file(tmp / "runs.parquet", rows, seed=42, format="parquet", **DIRT)
        runs: dict[str, Callable[[Path], object]] = {}
        for fmt in ("csv", "parquet"):
            path = tmp / f"runs.{fmt}"
            runs[fmt] = lambda out, path=path: reports.append(load_files([path], LoaderConfig(), output=out))  # type: ignore[misc]
            runs[f"{fmt}_baseline"] = lambda out, path=path: baseline(path, out)  # type: ignore[misc]
        for i in range(repeats + 1):
            for name, work in runs.items():
                w, c = _timed(rows, work)
                if i:  # the first round is the warm-up
                    wall.setdefault(name, []).append(w)
                    cpu.setdefault(name, []).append(c)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report = reports[-1]
    csv_rate = median(wall["csv"])
    extra = {
        "rows": rows,
        "parquet_rows_per_s": median(wall["parquet"]),
        "parquet_baseline_rows_per_s": median(wall["parquet_baseline"]),
        "parquet_ratio": median(wall["parquet"]) / max(median(wall["parquet_baseline"]), 1e-9),
        "rows_per_cpu_s": {k: median(v) for k, v in cpu.items()},
        "predecessor_rows_per_s": PREDECESSOR_ROWS_PER_S,
        "vs_predecessor": csv_rate / PREDECESSOR_ROWS_PER_S,
        "target_rows_per_s": TARGET_ROWS_PER_S,
        "target_met": csv_rate >= TARGET_ROWS_PER_S,
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
        "samples": wall,
        "dq": {
            "rows_loaded": report.rows_loaded,
            "expected_loaded": truth.survivors.num_rows,
            "rejected": report.rejected,
            "duplicates_resolved": report.duplicates_resolved,
            "standardized": report.standardized,
            "balanced": report.balanced,
        },
    }
    return Measurement(
        scenario="loader",
        unit="rows/s",
        value=csv_rate,
        baseline_name=baseline_name,
        baseline=median(wall["csv_baseline"]),
        samples=wall["csv"],
        baseline_samples=wall["csv_baseline"],
        extra=extra,
    )
