"""Event logs and store checks shared by the archive tests (unit and integration)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from tests.support import records
from ticktape.schemas.durations import dec_hook
from ticktape.schemas.ids import event_id
from ticktape.schemas.records import Event, EventType, aggregate_of
from ticktape.sinks.archive import format as fmt
from ticktape.sinks.archive.config import ArchiveConfig
from ticktape.sinks.archive.reader import KEY, ArchiveReader
from ticktape.sinks.eventlog.log import EventLogPartition
from ticktape.sinks.objectstore.base import ObjectStore

S = 1_000_000_000
T0 = 1_704_067_200 * S  # 2024-01-01T00:00:00Z
HOUR = 3600 * S


class Crash(BaseException):
    """A simulated process crash (not an ArchiveError: nothing may catch it)."""


def tick(symbol: str, n: int, ts: int, venue: str = "binance", src: str = "trades/0") -> Event:
    u = records.price_update(
        venue=venue, symbol=symbol, price=100.0 + n % 7 / 8, size=0.5 + n % 3, side="buy" if n % 2 else "sell",
        trade_id=str(n), ts_event=ts, ts_kafka=ts - 5, ts_recv=ts + 10, ts_proc=ts + 20, seq=n, src=src, offset=n,
    )  # fmt: skip
    return records.event(
        event_id=event_id(ts, "P", venue, symbol, str(n)), type=EventType.PRICE_UPDATED,
        aggregate=aggregate_of(venue, symbol), seq=n, ts_event=ts, ts_logged=0, payload=records.payload(u),
        causation=f"{src}@{n}",
    )  # fmt: skip


def other(aggregate: str, n: int, ts: int, typ: str = EventType.SYMBOL_STALE) -> Event:
    return records.event(
        event_id=event_id(ts, typ, aggregate, n), type=typ, aggregate=aggregate, seq=n, ts_event=ts,
        ts_logged=0, payload=records.payload({"n": n, "note": 'q"uo\\te'}), causation=f"cause-{n}",
    )  # fmt: skip


def make_log(
    path: Path, batches: int = 12, per_batch: int = 50, symbols: int = 5, step: int = 600 * S
) -> list[Event]:
    """A partition file with ticks over two hours plus rare events; returns the events in row order."""
    writer = EventLogPartition(path)
    events: list[Event] = []
    n = 0
    for b in range(batches):
        batch = []
        for i in range(per_batch):
            n += 1
            batch.append(tick(f"S{n % symbols}-USD", n, T0 + n * step // per_batch))
            if i == per_batch - 1:
                batch.append(other(f"S{b % symbols}-USD@binance", n, T0 + n * step // per_batch))
        writer.append(batch)
        events += batch
    writer.close()
    return events


def config(store: Path, **kw: Any) -> ArchiveConfig:
    base: dict[str, Any] = {
        "store": str(store),
        "batch_rows": 200,
        "retry": {"attempts": 3, "base": "1ms", "cap": "2ms"},
    }
    return msgspec.convert(base | kw, ArchiveConfig, dec_hook=dec_hook)


def archived_rows(store: ObjectStore, prefix: str = "ticktape") -> dict[int, Event]:
    """Every row of every object in the store; fails on a row present twice."""
    out: dict[int, Event] = {}
    for info in ArchiveReader(store, prefix).iter_keys():
        table = pq.read_table(pa.BufferReader(store.get(info.key)))
        match = KEY.match(info.key)
        assert match is not None
        for row, e in fmt.table_events(match["stream"], table):
            assert row not in out, f"row {row} archived twice"
            out[row] = e
    return out


def same(a: Event, b: Event) -> bool:
    return msgspec.structs.replace(a, ts_logged=0) == msgspec.structs.replace(b, ts_logged=0)


def bodies(path: Path) -> dict[int, bool]:
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT id, body IS NOT NULL FROM batches"))
