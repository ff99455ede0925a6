"""Scenario ``archive``: event-log batches -> zstd Parquet -> S3 (a moto server), verified.

ticktape: a full :class:`~ticktape.sinks.archive.archiver.Archiver` pass over a partition file holding
``rows`` ``PriceUpdated`` events (plus 0.2% other events) in batches of 5,000: read and
decode the bodies, build and sort the tables, write zstd Parquet, PUT with SHA-256, HEAD,
mark. Each repetition starts from a fresh copy of the same file.

Baseline: ``pyarrow.parquet.write_table`` (zstd level 3, defaults otherwise) of the same
tables, already built in memory, plus one PUT each: the ratio is what decoding the log,
sorting, the statistics layout and the verify/mark protocol cost.

``extra``: rows/s of the Parquet build alone (decode + build + write, no S3), Parquet
bytes per row, the size ratios against the same rows as JSON lines and as JSON lines +
zstd (level 3, one stream), the share of bytes a one-symbol read fetches, and the local
zstd ratio and dictionary gain of the retained bodies.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from ticktape.infra.bench.common import Measurement, median, repeat
from ticktape.infra.devstack.services import MOTO_CREDENTIALS, MotoS3
from ticktape.schemas.ids import event_id
from ticktape.schemas.records import Event, EventType, PriceUpdate, aggregate_of
from ticktape.sinks.archive import format as fmt
from ticktape.sinks.archive.archiver import Archiver
from ticktape.sinks.archive.config import ArchiveConfig
from ticktape.sinks.archive.reader import ArchiveReader
from ticktape.sinks.archive.units import Unit, UnitLog
from ticktape.sinks.eventlog.compression import compress_retained
from ticktape.sinks.eventlog.log import EventLogPartition
from ticktape.sinks.objectstore.s3 import S3ObjectStore

BUCKET = "ticktape-bench"
START = 1_704_067_200_000_000_000


def bench_events(rows: int, symbols: int = 500, seed: int = 7) -> Iterator[list[Event]]:
    """Batches of 5,000 events shaped like the keyed step's output (random-walk prices,
    per-symbol sequence numbers, wall-clock stage stamps), 0.2% of them not trades."""
    rng = random.Random(seed)
    enc = msgspec.json.Encoder()
    prices = [100.0 + k % 97 for k in range(symbols)]
    seqs = [0] * symbols
    wall = time.time_ns()
    batch: list[Event] = []
    for n in range(rows):
        k = rng.randrange(symbols)
        symbol, ts = f"S{k:04d}-USD", START + n * 1_000_000
        agg = aggregate_of("synthetic", symbol)
        seqs[k] += 1
        if n % 500 == 499:
            payload = enc.encode({"symbol": symbol, "last_ts": ts - 60_000_000_000})
            batch.append(
                Event(event_id(ts, "S", agg, n), EventType.SYMBOL_STALE, agg, seqs[k], ts, 0, payload, "scan")
            )
        else:
            prices[k] = round(prices[k] * (1 + rng.gauss(0, 0.0005)), 6)
            u = PriceUpdate("synthetic", symbol, prices[k], round(rng.expovariate(2.0) + 0.001, 6),
                            "buy" if rng.random() < 0.5 else "sell", str(seqs[k]), ts, 0, wall + n * 900,
                            wall + n * 900 + 7000 + rng.randrange(3000), seqs[k], "bench/0", n)  # fmt: skip
            batch.append(Event(event_id(ts, "P", "synthetic", symbol, u.trade_id), EventType.PRICE_UPDATED, agg,
                               seqs[k], ts, 0, enc.encode(u), f"bench/0@{n}"))  # fmt: skip
        if len(batch) == 5000:
            yield batch
            batch = []
    if batch:
        yield batch


@contextlib.contextmanager
def _moto(state: Path) -> Iterator[MotoS3]:
    saved = {k: os.environ.get(k) for k in MOTO_CREDENTIALS}
    os.environ.update(MOTO_CREDENTIALS)
    server = MotoS3(state)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _json_sizes(tables: list[pa.Table], limit: int = 200_000) -> tuple[float, float]:
    """Bytes per row as JSON lines (one object per row, times in ns) and as JSON lines +
    zstd, measured on the first ``limit`` rows."""
    enc = msgspec.json.Encoder()
    lines: list[bytes] = []
    for table in tables:
        part = table.slice(0, max(limit - len(lines), 0))
        for i, field in enumerate(part.schema):
            if pa.types.is_timestamp(field.type):
                part = part.set_column(i, field.name, part[field.name].cast(pa.int64()))
        lines += map(enc.encode, part.to_pylist())
    text = b"\n".join(lines) + b"\n"
    return len(text) / len(lines), len(zstandard.ZstdCompressor(level=3).compress(text)) / len(lines)


def archive_scenario(rows: int = 1_000_000, repeats: int = 3, symbols: int = 500) -> Measurement:
    """Median rows/s of an archive pass into moto S3 and of the pyarrow baseline."""
    cfg = ArchiveConfig(batch_rows=100_000, compress_retained=False)
    with tempfile.TemporaryDirectory(prefix="ticktape-bench-") as tmp, _moto(Path(tmp) / "moto") as server:
        pristine = Path(tmp) / "pristine.sqlite"
        writer = EventLogPartition(pristine)
        for batch in bench_events(rows, symbols):
            writer.append(batch)
        writer.close()
        import boto3

        client = boto3.client("s3", endpoint_url=server.endpoint_url, region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        runs = iter(range(1000))
        last: dict[str, Any] = {}

        def ours() -> float:
            run = next(runs)
            path = Path(tmp) / f"run{run}" / "part-000.sqlite"
            path.parent.mkdir()
            shutil.copy(pristine, path)
            store = S3ObjectStore(BUCKET, f"run{run}", endpoint_url=server.endpoint_url, region="us-east-1")
            archiver = Archiver(path, 0, store, cfg)
            t0 = time.perf_counter()
            result = archiver.run_once(force=True)
            elapsed = time.perf_counter() - t0
            archiver.close()
            if result.error or result.rows != rows:
                raise RuntimeError(f"archive pass failed: {result}")
            last.update(path=path, store=store, bytes=result.bytes)
            return rows / elapsed

        units = UnitLog(pristine, 0)
        batches = units.batches(Unit(0, rows - 1, 1, -(-rows // 5000)))  # every batch of the file
        units.close()
        parts = fmt.build_parts(batches)

        def baseline() -> float:
            t0 = time.perf_counter()
            for i, part in enumerate(parts):
                sink = pa.BufferOutputStream()
                pq.write_table(part.table, sink, compression="zstd", compression_level=3)
                client.put_object(
                    Bucket=BUCKET, Key=f"baseline/{i}.parquet", Body=sink.getvalue().to_pybytes()
                )
            return rows / (time.perf_counter() - t0)

        def build_only() -> float:
            t0 = time.perf_counter()
            for start in range(0, len(batches), 20):  # units of 100,000 rows, as the archiver cuts them
                for part in fmt.build_parts(batches[start : start + 20]):
                    fmt.write_parquet(part, level=cfg.zstd_level, row_group_rows=cfg.row_group_rows)
            return rows / (time.perf_counter() - t0)

        samples = repeat(ours, repeats)
        base = repeat(baseline, repeats)
        build = repeat(build_only, repeats)
        jsonl, jsonl_zstd = _json_sizes([p.table for p in parts if p.stream == "ticks"])
        parquet = last["bytes"] / rows
        reader = ArchiveReader(last["store"], cfg.prefix)
        total = sum(o.size for o in reader.list_objects("ticks"))
        reader.read("S0042-USD", START, START + rows * 1_000_000)
        local = compress_retained(
            UnitLog(last["path"], 0).db, codec="zstd-dict", level=9, min_gain=0.10, older_than=time.time_ns()
        )
    return Measurement(
        scenario="archive",
        unit="rows/s",
        value=median(samples),
        baseline_name="pyarrow write_table + PUT",
        baseline=median(base),
        samples=samples,
        baseline_samples=base,
        extra={
            "rows": rows,
            "parquet_build_rows_per_s": median(build),
            "parquet_bytes_per_row": round(parquet, 2),
            "jsonl_bytes_per_row": round(jsonl, 2),
            "ratio_vs_jsonl": round(jsonl / parquet, 2),
            "ratio_vs_jsonl_zstd": round(jsonl_zstd / parquet, 2),
            "one_symbol_read_fraction": round(reader.bytes_fetched / total, 4),
            "local_zstd_ratio": round(local.raw_bytes / local.compressed_bytes, 2)
            if local.compressed_bytes
            else None,
            "local_dictionary_gain": round(local.gain, 4) if local.gain is not None else None,
            "local_codec": local.codec,
        },
    )
