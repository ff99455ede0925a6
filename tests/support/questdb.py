"""Reading a real QuestDB back: SQL over the PostgreSQL wire (psycopg), waiting until the
WAL is applied, and the sink's rows as ticktape records (nanosecond timestamps intact).

QuestDB's PG wire sends ``TIMESTAMP_NS`` values as PostgreSQL timestamps (microseconds),
so the readers here select ``ts::long`` (nanoseconds since the epoch) instead.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from ticktape.infra.devstack.questdb import QuestDBServer
from ticktape.schemas.records import Candle, PriceUpdate


@contextmanager
def connect(server: QuestDBServer) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit PG-wire connection (user ``admin``, database ``qdb``)."""
    with psycopg.connect(**server.pg_connect_kwargs(), autocommit=True) as conn:
        yield conn


def query(server: QuestDBServer, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Rows of ``sql`` (values bound by psycopg) as dicts by column name."""
    with connect(server) as conn:
        cur = conn.execute(sql, params)  # type: ignore[arg-type]
        names = [d.name for d in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def wait_applied(server: QuestDBServer, *tables: str, timeout: float = 60.0) -> None:
    """Until QuestDB applied every committed WAL transaction of ``tables`` (rows visible)."""
    deadline = time.monotonic() + timeout
    for table in tables:
        while True:
            rows = query(
                server, "SELECT suspended, writerTxn, sequencerTxn FROM wal_tables() WHERE name = %s", [table]
            )
            assert rows, f"table {table} not in wal_tables()"
            assert not rows[0]["suspended"], f"WAL apply of {table} is suspended"
            if rows[0]["writerTxn"] == rows[0]["sequencerTxn"]:
                break
            assert time.monotonic() < deadline, f"WAL of {table} not applied after {timeout}s"
            time.sleep(0.1)


def _ns(value: int | None) -> int:
    """A timestamp column read as ``::long``: NULL (no value) is 0, as in the records."""
    return 0 if value is None else int(value)


def price_rows(server: QuestDBServer, table: str) -> list[PriceUpdate]:
    """Every row of a price table as a PriceUpdate, ordered by ``(src, offset, symbol)``."""
    rows = query(
        server,
        f"SELECT venue, symbol, price, size, side, trade_id, ts::long AS ts, ts_kafka::long AS ts_kafka, "
        f'ts_recv::long AS ts_recv, ts_proc::long AS ts_proc, seq, src, "offset", tick_id FROM "{table}"',
    )
    out = []
    for r in rows:
        update = PriceUpdate(
            r["venue"], r["symbol"], r["price"], r["size"], r["side"], r["trade_id"] or "", _ns(r["ts"]),
            _ns(r["ts_kafka"]), _ns(r["ts_recv"]), _ns(r["ts_proc"]), r["seq"], r["src"], r["offset"],
        )  # fmt: skip
        assert r["tick_id"] == (update.trade_id or f"{update.src}@{update.offset}"), r
        out.append(update)
    return sorted(out, key=lambda u: (u.src, u.offset, u.symbol, u.trade_id))


def candle_rows(server: QuestDBServer, table: str) -> list[Candle]:
    """Every row of a candle table as a Candle, ordered by ``(venue, symbol, interval, start)``."""
    rows = query(
        server,
        f'SELECT venue, symbol, "interval", ts::long AS ts, open, high, low, close, volume, notional, vwap, '
        f"trades, buy_volume, sell_volume, first_trade_id, last_trade_id, revision, ts_final::long AS ts_final "
        f'FROM "{table}"',
    )
    out = [
        Candle(
            r["venue"],
            r["symbol"],
            r["interval"],
            r["ts"],
            r["ts"] + r["interval"] * 1_000_000_000,
            r["open"],
            r["high"],
            r["low"],
            r["close"],
            r["volume"],
            r["notional"],
            r["vwap"],
            r["trades"],
            r["buy_volume"],
            r["sell_volume"],
            r["first_trade_id"] or "",
            r["last_trade_id"] or "",
            r["revision"],
            _ns(r["ts_final"]),
        )
        for r in rows
    ]
    return sorted(out, key=lambda c: (c.venue, c.symbol, c.interval, c.start))


def count(server: QuestDBServer, table: str) -> int:
    """``count()`` of ``table``."""
    (row,) = query(server, f'SELECT count() AS n FROM "{table}"')
    return int(row["n"])
