"""The QuestDB sink against a real QuestDB: tables from ``init``, prices and two candle
revisions written, then the same input replayed; no duplicates, latest revision kept.

Runs only when ``QUESTDB_HTTP`` names a server (e.g. ``http://127.0.0.1:9000``);
otherwise ``tests/integration/conftest.py`` deselects this module (never a skip). For a
QuestDB before 9.1 (no ``TIMESTAMP_NS``) also set ``QUESTDB_TIMESTAMP_TYPE=TIMESTAMP``.
Credentials, if the server needs them, come from ``QDB_CLIENT_CONF`` as for the job.
"""

from __future__ import annotations

import os
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.ilp_wire import questdb_config, sample_candle, sample_price
from ticktape.sinks.questdb.config import resolve_conf
from ticktape.sinks.questdb.ddl import auth_headers, exec_sql
from ticktape.sinks.questdb.sink import QuestDBConfig, candles_sink, init_tables, prices_sink

pytestmark = pytest.mark.integration
HTTP = os.environ.get("QUESTDB_HTTP", "").rstrip("/")
HOSTILE = 'A B,C=D\\E"ü\n€'


def query(cfg: QuestDBConfig, sql: str) -> list[dict[str, Any]]:
    doc = exec_sql(HTTP, sql, headers=auth_headers(resolve_conf(cfg)))
    names = [c["name"] for c in doc.get("columns", [])]
    return [dict(zip(names, row, strict=True)) for row in doc.get("dataset", [])]


def wait_applied(cfg: QuestDBConfig, table: str, timeout: float = 60.0) -> None:
    """Until QuestDB applied every committed WAL transaction of ``table``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = query(
            cfg, f"SELECT suspended, writerTxn, sequencerTxn FROM wal_tables() WHERE name = '{table}'"
        )
        assert rows, f"table {table} not in wal_tables()"
        assert not rows[0]["suspended"], f"WAL apply of {table} is suspended"
        if rows[0]["writerTxn"] == rows[0]["sequencerTxn"]:
            return
        time.sleep(0.2)
    raise TimeoutError(f"WAL of {table} not applied after {timeout}s")


def ts_text(ns: int, ts_type: str) -> str:
    """How QuestDB's JSON shows a timestamp of ``ns``."""
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000))
    frac = ns % 1_000_000_000
    return f"{base}.{frac:09d}Z" if ts_type == "TIMESTAMP_NS" else f"{base}.{frac // 1000:06d}Z"


@pytest.fixture
def cfg() -> Iterator[QuestDBConfig]:
    url = urllib.parse.urlsplit(HTTP)
    suffix = uuid.uuid4().hex[:10]
    conf = "" if os.environ.get("QDB_CLIENT_CONF") else f"{url.scheme}::addr={url.netloc};"
    config: QuestDBConfig = questdb_config(
        conf=conf, prices_table=f"tt_prices_{suffix}", candles_table=f"tt_candles_{suffix}",
        timestamp_type=os.environ.get("QUESTDB_TIMESTAMP_TYPE", "TIMESTAMP_NS"), partitions=1,
    )  # fmt: skip
    yield config
    for table in (config.prices_table, config.candles_table):
        exec_sql(HTTP, f'DROP TABLE IF EXISTS "{table}"', headers=auth_headers(resolve_conf(config)))


def write(sink: Any, *batches: list[Any]) -> None:
    part = sink.build_part("questdb", "0", None)
    for batch in batches:
        part.write_batch([batch])
        part.snapshot()  # one commit per batch, as per Bytewax epoch
    part.close()


def test_replays_do_not_duplicate_and_revisions_upsert(cfg: QuestDBConfig) -> None:
    init_tables(cfg, HTTP)
    init_tables(cfg, HTTP)  # idempotent
    updates = [sample_price(i) for i in range(20)]
    updates[5] = sample_price(5, ts_event=updates[4].ts_event)  # same ns, another trade
    updates[6] = sample_price(6, trade_id="")  # no trade id: identity from src@offset
    updates[7] = sample_price(7, venue=HOSTILE, symbol=HOSTILE)
    candles = [sample_candle(0), sample_candle(1)]
    prices, candle_sink = prices_sink(cfg), candles_sink(cfg)
    assert prices is not None
    assert candle_sink is not None
    write(prices, updates[:12], updates[12:])
    write(candle_sink, candles[:1], candles[1:])
    write(prices, updates)  # the replay after a restart: same ticks, same order
    write(candle_sink, candles)
    wait_applied(cfg, cfg.prices_table)
    wait_applied(cfg, cfg.candles_table)

    rows = query(cfg, f'SELECT ts, venue, symbol, tick_id, price, seq FROM "{cfg.prices_table}" ORDER BY seq')
    assert len(rows) == len(updates)  # no duplicates
    for row, u in zip(rows, updates, strict=True):
        tick_id = u.trade_id or f"{u.src}@{u.offset}"
        assert (row["venue"], row["symbol"], row["tick_id"]) == (u.venue, u.symbol, tick_id)
        assert (row["price"], row["seq"]) == (u.price, u.seq)
        assert row["ts"] == ts_text(u.ts_event, cfg.timestamp_type)

    (candle,) = query(
        cfg, f'SELECT ts, "interval", revision, high, trades, last_trade_id FROM "{cfg.candles_table}"'
    )
    latest = candles[1]
    assert candle == {
        "ts": ts_text(latest.start, cfg.timestamp_type), "interval": 60, "revision": 1,
        "high": latest.high, "trades": latest.trades, "last_trade_id": latest.last_trade_id,
    }  # fmt: skip
