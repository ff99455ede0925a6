"""The CQRS read models in SQL: embedded SQLite (default) or PostgreSQL (production).

Tables (one schema, two dialects; values are exact decimal text in SQLite and
``NUMERIC`` in PostgreSQL; ``doc`` columns hold the full view as JSON with exact
integers and are what the reader rebuilds views from)::

    proj_orders              one row per order: status, filled, avg price, fees, fills (doc)
    proj_positions           one row per (account, symbol): quantity, avg cost, realized PnL
    proj_fills               every execution per (account, symbol), keyed (ts, fill_key)
    proj_position_snapshots  a position's state every N fills, keyed like the fills
    proj_checkpoints         per event-log partition file: the last batch id applied

A :class:`ProjectionStore` is used in transactions (:meth:`transaction`): the projector
applies a run of event-log batches and moves the checkpoint in the same transaction, so
a crash leaves the projections at a batch boundary and the projector redoes the rest.
Input never reaches SQL text: every value is a bound parameter.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import msgspec

from ticktape.schemas.orders.fixed import SCALE, SCALE2, format_fixed
from ticktape.schemas.orders.machine import LIVE
from ticktape.schemas.orders.views import OrderView, Position, decode_position, encode_position
from ticktape.sinks.base.sqlite import connect
from ticktape.sinks.projections.schema import TABLES, ddl


class Dialect(Protocol):
    """What differs between SQLite and PostgreSQL."""

    name: str

    def connection(self) -> Any:
        """A DB-API connection (autocommit off)."""
        ...

    def sql(self, text: str) -> str:
        """``text`` written with ``?`` placeholders, in this dialect's paramstyle."""
        ...

    def num(self, units: int | None, scale: int) -> Any:
        """A numeric column value."""
        ...

    def lock(self, cur: Any) -> None:
        """Take the store-wide write lock for the current transaction."""
        ...


class SqliteDialect:
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path

    def connection(self) -> sqlite3.Connection:
        conn = connect(self.path)
        conn.isolation_level = "DEFERRED"
        return conn

    def sql(self, text: str) -> str:
        return text

    def num(self, units: int | None, scale: int) -> Any:
        return None if units is None else format_fixed(units, scale)

    def lock(self, cur: Any) -> None:
        """Take the database's write lock now (writers serialize, readers are not blocked)."""
        cur.execute("BEGIN IMMEDIATE")

    def ddl(self) -> tuple[str, ...]:
        return ddl("TEXT", "INTEGER")


_orders_enc = msgspec.json.Encoder()
_orders_dec = msgspec.json.Decoder(OrderView)
_locks: dict[str, threading.RLock] = {}
_locks_guard = threading.Lock()


def _lock_for(target: str) -> threading.RLock:
    with _locks_guard:
        return _locks.setdefault(target, threading.RLock())


class ProjectionStore:
    """Read and write the projection tables through one connection (see the module doc).

    Thread-safe within a process: transactions on one target are serialized by a lock.
    """

    def __init__(self, dialect: Any, target: str) -> None:
        self.dialect = dialect
        self.target = target
        self._conn = dialect.connection()
        self._lock = _lock_for(target)
        with self.transaction() as cur:
            for ddl in dialect.ddl():
                cur.execute(ddl)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ProjectionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[Any]:
        """A cursor inside one transaction (committed on success, rolled back on error).
        ``write``: take the store's write lock first, so projectors in other processes
        (a rebuild while the flow runs) serialize instead of losing updates."""
        with self._lock:
            cur = self._conn.cursor()
            try:
                if write:
                    self.dialect.lock(cur)
                yield cur
                self._conn.commit()
            except BaseException:
                self._conn.rollback()
                raise
            finally:
                cur.close()

    def _x(self, cur: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        cur.execute(self.dialect.sql(sql), tuple(params))
        return cur

    # -- writes (inside a transaction) ---------------------------------------------------
    def checkpoint(self, cur: Any, log: str) -> int:
        row = self._x(cur, "SELECT batch_id FROM proj_checkpoints WHERE log = ?", (log,)).fetchone()
        return int(row[0]) if row else 0

    def set_checkpoint(self, cur: Any, log: str, batch_id: int) -> None:
        self._x(
            cur,
            "INSERT INTO proj_checkpoints(log, batch_id) VALUES (?, ?)"
            " ON CONFLICT(log) DO UPDATE SET batch_id = excluded.batch_id",
            (log, batch_id),
        )

    def load_order(self, cur: Any, order_id: str) -> OrderView | None:
        row = self._x(cur, "SELECT doc FROM proj_orders WHERE order_id = ?", (order_id,)).fetchone()
        return _orders_dec.decode(row[0]) if row else None

    def save_order(self, cur: Any, v: OrderView) -> None:
        n = self.dialect.num
        avg = v.avg_price
        self._x(
            cur,
            "INSERT INTO proj_orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(order_id) DO UPDATE SET account = excluded.account, symbol = excluded.symbol,"
            " venue = excluded.venue, side = excluded.side, order_type = excluded.order_type,"
            " status = excluded.status, quantity = excluded.quantity, price = excluded.price,"
            " filled = excluded.filled, avg_price = excluded.avg_price, fees = excluded.fees,"
            " created_ts = excluded.created_ts, updated_ts = excluded.updated_ts, seq = excluded.seq,"
            " doc = excluded.doc",
            (
                v.order_id, v.account, v.symbol, v.venue, v.side, v.order_type, v.status, n(v.quantity, SCALE),
                n(v.price, SCALE), n(v.filled, SCALE), n(avg, SCALE), n(v.fees, SCALE), v.created_ts,
                v.updated_ts, v.seq, _orders_enc.encode(v).decode(),
            ),
        )  # fmt: skip

    def load_position(self, cur: Any, account: str, symbol: str) -> Position | None:
        row = self._x(
            cur, "SELECT doc FROM proj_positions WHERE account = ? AND symbol = ?", (account, symbol)
        ).fetchone()
        return decode_position(row[0]) if row else None

    def save_position(self, cur: Any, p: Position) -> None:
        n = self.dialect.num
        self._x(
            cur,
            "INSERT INTO proj_positions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(account, symbol) DO UPDATE SET venue = excluded.venue, quantity = excluded.quantity,"
            " avg_cost = excluded.avg_cost, realized_pnl = excluded.realized_pnl, fees = excluded.fees,"
            " fills = excluded.fills, last_ts = excluded.last_ts, last_event = excluded.last_event,"
            " doc = excluded.doc",
            (
                p.account, p.symbol, p.venue, n(p.quantity, SCALE), n(p.avg_cost, SCALE), n(p.realized, SCALE2),
                n(p.fees, SCALE), p.fills, p.last_ts, p.last_event, encode_position(p).decode(),
            ),
        )  # fmt: skip

    def add_fill(self, cur: Any, account: str, symbol: str, ts: int, fill_key: str, doc: str) -> bool:
        """Store one execution; False when it was already stored."""
        self._x(
            cur,
            "INSERT INTO proj_fills VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (account, symbol, ts, fill_key, doc),
        )
        return bool(cur.rowcount == 1)

    def fills(
        self,
        cur: Any,
        account: str,
        symbol: str,
        after: tuple[int, str] | None = None,
        until: int | None = None,
    ) -> list[tuple[int, str, str]]:
        """``(ts, fill_key, doc)`` of a position's executions in canonical order, after
        the key ``after`` and with ``ts <= until`` when given."""
        sql = "SELECT ts, fill_key, doc FROM proj_fills WHERE account = ? AND symbol = ?"
        params: list[Any] = [account, symbol]
        if after is not None:
            sql += " AND (ts > ? OR (ts = ? AND fill_key > ?))"
            params += [after[0], after[0], after[1]]
        if until is not None:
            sql += " AND ts <= ?"
            params.append(until)
        return [
            (int(r[0]), str(r[1]), str(r[2])) for r in self._x(cur, sql + " ORDER BY ts, fill_key", params)
        ]

    def add_snapshot(self, cur: Any, p: Position) -> None:
        self._x(
            cur,
            "INSERT INTO proj_position_snapshots VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (p.account, p.symbol, p.last_ts, p.last_event, encode_position(p).decode()),
        )

    def drop_snapshots_after(self, cur: Any, account: str, symbol: str, key: tuple[int, str] | None) -> None:
        """Delete a position's snapshots taken after execution ``key`` (all when None)."""
        sql = "DELETE FROM proj_position_snapshots WHERE account = ? AND symbol = ?"
        params: list[Any] = [account, symbol]
        if key is not None:
            sql += " AND (ts > ? OR (ts = ? AND fill_key > ?))"
            params += [key[0], key[0], key[1]]
        self._x(cur, sql, params)

    def snapshot_below(self, cur: Any, account: str, symbol: str, key: tuple[int, str]) -> Position | None:
        """The newest snapshot taken at an execution before ``key`` (canonical order)."""
        row = self._x(
            cur,
            "SELECT doc FROM proj_position_snapshots WHERE account = ? AND symbol = ?"
            " AND (ts < ? OR (ts = ? AND fill_key < ?)) ORDER BY ts DESC, fill_key DESC LIMIT 1",
            (account, symbol, key[0], key[0], key[1]),
        ).fetchone()
        return decode_position(row[0]) if row else None

    def reset(self) -> None:
        """Empty every projection table (a rebuild starts here)."""
        with self.transaction(write=True) as cur:
            for table in TABLES:
                self._x(cur, f"DELETE FROM {table}")

    # -- reads ------------------------------------------------------------------------
    def get_order(self, order_id: str) -> OrderView | None:
        with self.transaction() as cur:
            return self.load_order(cur, order_id)

    def list_orders(
        self,
        *,
        account: str | None = None,
        symbol: str | None = None,
        status: Sequence[str] | None = None,
        limit: int = 1000,
    ) -> list[OrderView]:
        """Orders matching every filter, oldest first (by creation time, then id)."""
        sql, params = "SELECT doc FROM proj_orders WHERE 1 = 1", list[Any]()
        if account is not None:
            sql += " AND account = ?"
            params.append(account)
        if symbol is not None:
            sql += " AND symbol = ?"
            params.append(symbol)
        if status:
            sql += " AND status IN (" + ", ".join("?" * len(status)) + ")"
            params += list(status)
        sql += " ORDER BY created_ts, order_id LIMIT ?"
        params.append(limit)
        with self.transaction() as cur:
            return [_orders_dec.decode(r[0]) for r in self._x(cur, sql, params).fetchall()]

    def count_orders(self) -> int:
        """How many orders the projections hold."""
        with self.transaction() as cur:
            return int(self._x(cur, "SELECT count(*) FROM proj_orders", []).fetchone()[0])

    def open_orders(self, symbol: str | None = None) -> list[OrderView]:
        """Orders not yet in a terminal state (optionally of one symbol)."""
        return self.list_orders(symbol=symbol, status=sorted(LIVE), limit=1_000_000)

    def positions(self, *, account: str | None = None, symbol: str | None = None) -> list[Position]:
        sql, params = "SELECT doc FROM proj_positions WHERE 1 = 1", []
        if account is not None:
            sql += " AND account = ?"
            params.append(account)
        if symbol is not None:
            sql += " AND symbol = ?"
            params.append(symbol)
        with self.transaction() as cur:
            rows = self._x(cur, sql + " ORDER BY account, symbol", params).fetchall()
        return [decode_position(r[0]) for r in rows]

    def position_keys(self) -> list[tuple[str, str]]:
        with self.transaction() as cur:
            rows = self._x(
                cur, "SELECT account, symbol FROM proj_positions ORDER BY account, symbol"
            ).fetchall()
        return [(str(a), str(s)) for a, s in rows]

    def snapshot_before(self, cur: Any, account: str, symbol: str, at: int) -> Position | None:
        """The newest position snapshot taken at a fill with ``ts <= at``."""
        row = self._x(
            cur,
            "SELECT doc FROM proj_position_snapshots WHERE account = ? AND symbol = ? AND ts <= ?"
            " ORDER BY ts DESC, fill_key DESC LIMIT 1",
            (account, symbol, at),
        ).fetchone()
        return decode_position(row[0]) if row else None

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table as plain values (for comparisons across stores)."""
        out: dict[str, list[tuple[Any, ...]]] = {}
        with self.transaction() as cur:
            for table, key in (
                ("proj_orders", "order_id"), ("proj_positions", "account, symbol"),
                ("proj_fills", "account, symbol, ts, fill_key"),
                ("proj_position_snapshots", "account, symbol, ts, fill_key"), ("proj_checkpoints", "log"),
            ):  # fmt: skip
                rows = self._x(cur, f"SELECT * FROM {table} ORDER BY {key}").fetchall()
                out[table] = [tuple(_plain(v) for v in row) for row in rows]
        return out


def _plain(value: Any) -> Any:
    """A column value as comparable text (NUMERIC -> normalized decimal text)."""
    from decimal import Decimal

    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        return "0" if text in ("-0", "") else text
    return value
