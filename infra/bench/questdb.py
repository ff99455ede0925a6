"""Scenario ``questdb``: price updates as ILP rows into a real QuestDB server.

A QuestDB server (the jar from Maven Central, :class:`~ticktape.infra.devstack.questdb.
QuestDBServer`) runs on loopback beside the benchmark; both sides write over ILP/HTTP, the
sink's default transport, into tables made by ``ticktape questdb init``'s DDL (WAL, DEDUP
UPSERT KEYS), a fresh table per run. ticktape: the QuestDB sink's partition
(``write_batch`` with 2,000-update batches, its own flushing every ``auto_flush_rows``,
and ``close()``). Baseline: the ``questdb`` client's ``Sender`` fed the same rows
directly by the same row function, with the client's own auto-flush at the same row count.
The clock stops when the last flush returned, i.e. QuestDB acknowledged every row; after
all runs the tables are checked to hold exactly ``rows`` rows each (the WAL applied).
"""

from __future__ import annotations

import itertools
import tempfile
import time
import warnings
from pathlib import Path

import questdb
from questdb import Sender

from ticktape.infra.bench.common import Measurement, alternate, median
from ticktape.infra.devstack.questdb import QuestDBServer
from ticktape.schemas.records import PriceUpdate
from ticktape.sinks.questdb.ddl import exec_sql
from ticktape.sinks.questdb.sink import QuestDBConfig, init_tables, prices_sink, write_price

BATCH = 2000
FLUSH_ROWS = 10_000


def bench_updates(n: int, symbols: int = 500) -> list[PriceUpdate]:
    """``n`` updates over ``symbols`` symbols, 1 ms apart."""
    t0, out = 1_700_000_000_000_000_000, []
    for i in range(n):
        ts = t0 + i * 1_000_000
        u = PriceUpdate(
            "binance", f"S{i % symbols:04d}-USDT", 100.0 + (i % 997) * 0.01, 0.001 * (i % 50 + 1),
            "buy" if i % 3 else "sell", str(10_000_000 + i), ts, ts + 50_000, ts + 900_000, ts + 950_000,
            i // symbols + 1, "trades/0", i,
        )  # fmt: skip
        out.append(u)
    return out


def _config(conf: str, table: str) -> QuestDBConfig:
    return QuestDBConfig(
        enabled=True, conf=conf, prices_table=table, candles_table=f"{table}_c",
        auto_flush_rows=FLUSH_ROWS, partitions=1,
    )  # fmt: skip


def sink_run(conf: str, http: str, table: str, updates: list[PriceUpdate]) -> float:
    """Seconds for the sink's partition to write and flush ``updates`` into a fresh ``table``."""
    cfg = _config(conf, table)
    init_tables(cfg, http)
    sink = prices_sink(cfg)
    assert sink is not None
    t0 = time.perf_counter()
    part = sink.build_part("bench", "0", None)
    for start in range(0, len(updates), BATCH):
        part.write_batch([updates[start : start + BATCH]])
    part.close()
    return time.perf_counter() - t0


def client_run(conf: str, http: str, table: str, updates: list[PriceUpdate]) -> float:
    """Seconds for a bare ``Sender`` (client auto-flush) to write ``updates`` into ``table``."""
    init_tables(_config(conf, table), http)
    t0 = time.perf_counter()
    with Sender.from_conf(conf, auto_flush_rows=FLUSH_ROWS) as sender:
        for u in updates:
            write_price(sender, table, u)
    return time.perf_counter() - t0


def _wait_counts(http: str, tables: list[str], rows: int, timeout: float = 300.0) -> None:
    """Until every table has ``rows`` rows (QuestDB applies WAL transactions after the ack)."""
    deadline = time.monotonic() + timeout
    for table in tables:
        while True:
            doc = exec_sql(http, f'SELECT count() FROM "{table}"')
            got = int(doc["dataset"][0][0])
            if got == rows:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"questdb bench: {table} holds {got} rows, expected {rows}")
            time.sleep(0.2)


def questdb_scenario(
    rows: int = 200_000, repeats: int = 3, server: QuestDBServer | None = None
) -> Measurement:
    """Median rows/s acknowledged by QuestDB: the sink's row path vs the bare client.

    ``server``: an already running QuestDB (tests); by default one is started for the run.
    """
    updates = bench_updates(rows)
    with tempfile.TemporaryDirectory(prefix="ticktape-bench-questdb-") as tmp:
        own = server is None
        qdb = server if server is not None else QuestDBServer(Path(tmp)).start()
        try:
            conf, http = qdb.client_conf, qdb.http_url
            runs = itertools.count()
            tables: list[str] = []

            def table() -> str:
                tables.append(f"bench_prices_{time.time_ns()}_{next(runs)}")
                return tables[-1]

            with warnings.catch_warnings():  # a sender per run is the point here, not a mistake
                warnings.filterwarnings("ignore", message="questdb.Sender: Detected a burst of reconnections")
                sink_samples, client_samples = alternate(  # the host's load drifts
                    lambda: rows / sink_run(conf, http, table(), updates),
                    lambda: rows / client_run(conf, http, table(), updates),
                    repeats,
                )
            _wait_counts(http, tables, rows)
            for name in tables:
                for made in (name, f"{name}_c"):  # init made the candle table too
                    exec_sql(http, f'DROP TABLE IF EXISTS "{made}"')
            startup = qdb.startup_seconds
        finally:
            if own:
                qdb.stop()
    extra = {
        "rows": rows, "transport": f"ILP/HTTP into QuestDB {qdb.version} on 127.0.0.1 (WAL, DEDUP UPSERT KEYS)",
        "client": questdb.__version__, "auto_flush_rows": FLUSH_ROWS,
        "server_startup_s": round(startup or 0.0, 2),
    }  # fmt: skip
    return Measurement(
        scenario="questdb",
        unit="rows/s",
        value=median(sink_samples),
        baseline_name="questdb Sender.row() directly (client auto-flush)",
        baseline=median(client_samples),
        samples=sink_samples,
        baseline_samples=client_samples,
        extra=extra,
    )
