"""The archive protocol on a local object store: plan, PUT, HEAD, mark, retention; crashes
at every step; triggers; persistent failures; verification; compression of retained
bodies; the ``ticktape archive`` commands."""

from __future__ import annotations

import csv
import io
import logging
import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import records
from tests.support.archive import (
    HOUR,
    T0,
    Crash,
    S,
    archived_rows,
    bodies,
    config,
    make_log,
    same,
    tick,
)
from ticktape.infra.observability.metrics import RunStats
from ticktape.schemas.errors import ArchiveError
from ticktape.schemas.ids import event_id
from ticktape.schemas.records import Event, EventType
from ticktape.sinks.archive import format as fmt
from ticktape.sinks.archive.archiver import STEPS, Archiver, archive_all
from ticktape.sinks.archive.reader import KEY, ArchiveReader, unit_keys
from ticktape.sinks.archive.units import partition_lock
from ticktape.sinks.archive.verify import verify
from ticktape.sinks.eventlog.log import EventLogPartition, partition_path
from ticktape.sinks.eventlog.store import EventStore
from ticktape.sinks.objectstore.base import ObjectInfo, TransientStoreError, sha256_of
from ticktape.sinks.objectstore.local import LocalObjectStore


@pytest.fixture
def log(tmp_path: Path) -> tuple[Path, list[Event]]:
    path = partition_path(tmp_path / "data" / "events", 0)
    return path, make_log(path)


# -- format ------------------------------------------------------------------------------


def test_keys_hold_only_numbers_and_fixed_words():
    key = fmt.object_key("ticktape", "ticks", T0 // HOUR + 13, 7, 0, 99_999)
    assert key == "ticktape/stream=ticks/date=2024-01-01/hour=13/part=007/000000000000-000000099999.parquet"
    with pytest.raises(ArchiveError):
        fmt.object_key("ticktape", "../x", 0, 0, 0, 1)
    for bad in ("../up", "/abs", "a//b", "sp ace"):
        with pytest.raises(msgspec.ValidationError):
            config(Path("/tmp/x"), prefix=bad)


def test_tables_round_trip_every_event_exactly(log):
    _, events = log
    batches = [fmt.Batch(0, 123, events[:300]), fmt.Batch(300, 456, events[300:])]
    parts = fmt.build_parts(batches)
    assert {p.stream for p in parts} == {"ticks", "events"}
    assert len({(p.stream, p.hour) for p in parts}) == len(parts) > 2  # two hours of data: split by hour
    back = dict(row for p in parts for row in fmt.table_events(p.stream, p.table))
    assert sorted(back) == list(range(len(events)))
    assert all(
        back[i] == msgspec.structs.replace(e, ts_logged=123 if i < 300 else 456) for i, e in enumerate(events)
    )
    ticks = next(p.table for p in parts if p.stream == "ticks")
    assert ticks.schema == fmt.TICKS_SCHEMA
    keys = list(
        zip(ticks["symbol"].to_pylist(), ticks["ts_event"].cast(fmt.pa.int64()).to_pylist(), strict=True)
    )
    assert keys == sorted(keys)
    assert ticks["causation"].null_count == ticks.num_rows  # derivable: not stored


def test_price_updates_that_do_not_fit_the_ticks_schema_go_to_events_unchanged():
    good = tick("A-USD", 1, T0)
    odd = [
        msgspec.structs.replace(good, event_id="x1", aggregate="other@agg"),
        msgspec.structs.replace(good, event_id="x2", ts_event=T0 + 1),
        msgspec.structs.replace(
            good, event_id="x3", payload=b'["binance","A-USD",1.0,2.0,"buy","7",1,2,3,4,5,"s",6,"extra"]'
        ),
        msgspec.structs.replace(
            good, event_id="x4", payload=b'["binance","A-USD",1,2.0,"buy","7",1,2,3,4,5,"s",6]'
        ),
        msgspec.structs.replace(good, event_id="x5", causation="not-derived"),
    ]
    parts = fmt.build_parts([fmt.Batch(0, 9, [good, *odd])])
    streams = {p.stream: p.table for p in parts}
    assert sorted(streams["events"]["event_id"].to_pylist()) == ["x1", "x2", "x3", "x4"]
    assert sorted(streams["ticks"]["event_id"].to_pylist()) == sorted([good.event_id, "x5"])
    back = dict(r for p in parts for r in fmt.table_events(p.stream, p.table))
    assert [back[i] for i in range(6)] == [msgspec.structs.replace(e, ts_logged=9) for e in [good, *odd]]


_text = st.text(max_size=12) | st.sampled_from(
    ["../", "/", "a,b", '"', "[x]", "{}", "\\", "é€😀", "x" * 5000]
)
_int = st.integers(-(2**63), 2**63 - 1)
_float = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.1, -0.0, 5e-324, 1e300])
_update = st.builds(
    records.price_update, venue=_text, symbol=_text, price=_float, size=_float, side=_text, trade_id=_text,
    ts_event=_int, ts_kafka=_int, ts_recv=_int, ts_proc=_int, seq=_int, src=_text, offset=_int,
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_update, st.booleans()), min_size=1, max_size=30), st.booleans())
def test_any_price_update_round_trips_byte_for_byte(items, hostile_only):
    events = [
        records.event(event_id=f"id{i}", type=EventType.PRICE_UPDATED, aggregate=f"{u.symbol}@{u.venue}", seq=i,
                      ts_event=u.ts_event, ts_logged=0, payload=msgspec.json.encode(u),
                      causation=f"{u.src}@{u.offset}" if derived else "c")
        for i, (u, derived) in enumerate(items)
    ]  # fmt: skip
    if hostile_only:  # all on the fast path when no payload needs escapes
        events = [e for e in events if b"\\" not in e.payload] or events
    parts = fmt.build_parts([fmt.Batch(10, 5, events)])
    back = dict(r for p in parts for r in fmt.table_events(p.stream, p.table))
    assert [back[10 + i] for i in range(len(events))] == [
        msgspec.structs.replace(e, ts_logged=5) for e in events
    ]
    payloads = [e.payload for e in events]
    fast = fmt._fast_updates(payloads)
    slow, bad = fmt._slow_updates(payloads)
    assert not bad
    if fast is not None:
        assert fast.equals(slow)
    for p in parts:
        assert KEY.match(fmt.object_key("ticktape", p.stream, p.hour, 3, 10, 9 + len(events)))


# -- the protocol ------------------------------------------------------------------------


def test_archive_everything_then_every_row_is_in_the_store_exactly_once(log, tmp_path):
    path, events = log
    store = LocalObjectStore(tmp_path / "store")
    stats = RunStats()
    archiver = Archiver(path, 0, store, config(tmp_path / "store", compress_retained=False), stats)
    result = archiver.run_once(force=True)
    archiver.close()
    assert result.error is None
    assert result.rows == len(events)
    assert result.units == 3
    got = archived_rows(store)
    assert sorted(got) == list(range(len(events)))
    assert all(same(got[i], e) for i, e in enumerate(events))
    assert all(bodies(path).values())  # retention has not passed: nothing deleted
    report = verify(store, "ticktape", [path], deep=True)
    assert report.ok, report
    assert report.rows == len(events)
    text = "".join(str(m) for c in stats.collectors for m in c())
    for name in ("ticktape_archive_rows", "ticktape_archive_backlog_rows", "ticktape_archive_healthy"):
        assert name in text


@pytest.mark.parametrize("step", STEPS[:4])
@pytest.mark.parametrize("nth", [1, 3])
def test_crash_at_every_step_then_a_fresh_archiver_finishes(log, tmp_path, step, nth):
    path, events = log
    store = LocalObjectStore(tmp_path / "store")
    cfg = config(tmp_path / "store", retention="0s")
    seen: list[str] = []

    def fault(at: str, key: str) -> None:
        seen.append(at)
        if at == step and seen.count(step) == nth:
            raise Crash(f"{at} {key}")

    with pytest.raises(Crash):
        Archiver(path, 0, store, cfg, fault=fault).run_once(force=True)
    with sqlite3.connect(path) as conn:
        unverified = conn.execute(
            "SELECT count(*) FROM batches b WHERE body IS NULL AND NOT EXISTS (SELECT 1 FROM archive_units u"
            " WHERE b.id BETWEEN u.first_batch AND u.last_batch AND u.state = 'verified')"
        ).fetchone()[0]
    assert unverified == 0  # nothing local deleted unless verified
    fresh = Archiver(path, 0, store, cfg)
    assert fresh.run_once(force=True).error is None
    fresh.close()
    got = archived_rows(store)
    assert sorted(got) == list(range(len(events)))
    assert all(same(got[i], e) for i, e in enumerate(events))
    assert not any(bodies(path).values())  # retention 0: all verified, all deleted
    assert verify(store, "ticktape", [path], deep=True).ok


def test_new_events_inside_a_deleted_batchs_id_range_are_stored_repeats_are_not(log, tmp_path):
    """Issue 13 item 5: after retention deleted archived bodies, a new event whose id falls
    inside a deleted batch's id range (a CandleRevised of an old window, a late trade) was
    dropped as "already stored". The kept ids tell a repeat from a new event exactly."""
    path, events = log
    store = LocalObjectStore(tmp_path / "store")
    archiver = Archiver(path, 0, store, config(tmp_path / "store", retention="0s"))
    assert archiver.run_once(force=True).error is None
    archiver.close()
    assert not any(bodies(path).values())  # every body deleted
    agg = events[10].aggregate
    mine = [e for e in events if e.aggregate == agg]
    lo, hi = mine[0].ts_event, mine[-1].ts_event
    fresh = [  # new ids, times inside the deleted range of that aggregate
        Event(
            event_id(ts, "C", agg, ts), EventType.CANDLE_REVISED, agg, 10_000 + i, ts, 0, b"{}", "candle/60"
        )
        for i, ts in enumerate((lo + 1, (lo + hi) // 2, hi - 1))
    ]
    assert all(mine[0].event_id < e.event_id < mine[-1].event_id for e in fresh)
    part = EventLogPartition(path)
    part.append([*mine[:5], *fresh, *mine[-5:]])  # repeats of deleted events around new ones
    assert (part.rows_written, part.rows_ignored) == (3, 10)
    part.append(fresh)  # now stored: repeats
    assert (part.rows_written, part.rows_ignored) == (3, 13)
    part.close()
    got = EventStore(path.parent).query(type=EventType.CANDLE_REVISED)
    assert sorted(e.event_id for e in got.events) == sorted(e.event_id for e in fresh)


def test_keys_name_their_writer_and_keys_of_earlier_versions_stay_readable(log, tmp_path):
    """Issue 13 item 9: keys carry the writer (job, process id, a random id of the
    event-log file). An archive written before (keys without ``writer=``) is read,
    verified and served to the event store exactly as before."""
    path, events = log
    store = LocalObjectStore(tmp_path / "store")
    cfg = config(tmp_path / "store", retention="0s", job="desk1")
    archiver = Archiver(path, 0, store, cfg, process_id=3)
    assert archiver.run_once(force=True).error is None
    writer = archiver.writer
    archiver.close()
    assert writer.startswith("desk1-p3-")
    keys = [o.key for o in ArchiveReader(store).iter_keys()]
    assert keys
    assert all(f"/part=000/writer={writer}/" in k for k in keys)
    again = Archiver(path, 0, store, cfg, process_id=9)
    assert again.writer == writer  # fixed per file
    again.close()
    # the same archive as an earlier version wrote it: no writer segment
    with sqlite3.connect(path) as conn:
        for key in keys:
            legacy = key.replace(f"/writer={writer}", "")
            store.put(legacy, store.get(key), sha256_of(store.get(key)))
            store.delete(key)
            conn.execute("UPDATE archive_units SET key = ? WHERE key = ?", (legacy, key))
            conn.execute("UPDATE batches SET archived_key = ? WHERE archived_key = ?", (legacy, key))
    assert Archiver(path, 0, store, cfg).run_once().error is None  # retention: bodies deleted
    assert not any(bodies(path).values())
    assert verify(store, "ticktape", [path], deep=True).ok
    assert len(archived_rows(store)) == len(events)
    with EventStore(path.parent, ArchiveReader(store)) as es:
        back = list(es.iter_events())
    assert len(back) == len(events)
    assert all(same(a, b) for a, b in zip(back, events, strict=True))


def test_crash_before_delete_keeps_bodies_until_the_next_pass(log, tmp_path):
    path, events = log
    store = LocalObjectStore(tmp_path / "store")
    cfg = config(tmp_path / "store", retention="0s")

    def fault(at: str, key: str) -> None:
        if at == "before_delete":
            raise Crash(key)

    with pytest.raises(Crash):
        Archiver(path, 0, store, cfg, fault=fault).run_once(force=True)
    assert all(bodies(path).values())
    Archiver(path, 0, store, cfg).run_once()
    assert not any(bodies(path).values())
    with EventStore(path.parent) as es:
        assert list(es.iter_events()) == []  # bodies gone locally ...
    with sqlite3.connect(path) as conn:
        batches = conn.execute("SELECT first_row, rows, archived_key FROM batches ORDER BY id").fetchall()
        reader = ArchiveReader(store)
        back = [
            e for f, n, key in batches for e in reader.events_of_batches(unit_keys(conn, key), [(f, n)])[0]
        ]
    assert len(back) == len(events)
    assert all(same(a, b) for a, b in zip(back, events, strict=True))


def test_redo_of_a_unit_planned_under_other_keys_removes_the_stale_object(log, tmp_path):
    path, events = log
    store = LocalObjectStore(tmp_path / "store")
    cfg = config(tmp_path / "store")
    stale = "ticktape/stream=ticks/date=2024-01-01/hour=05/part=000/000000000000-000000000254.parquet"
    store.put(stale, b"old", sha256_of(b"old"))

    def fault(at: str, key: str) -> None:
        raise Crash(at)

    with pytest.raises(Crash):
        Archiver(path, 0, store, cfg, fault=fault).run_once(force=True)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE archive_units SET key = ? WHERE rowid = (SELECT min(rowid) FROM archive_units)", (stale,)
        )
    assert Archiver(path, 0, store, cfg).run_once(force=True).error is None
    assert store.head(stale) is None
    assert verify(store, "ticktape", [path], deep=True).ok
    assert sorted(archived_rows(store)) == list(range(len(events)))


# -- failures ----------------------------------------------------------------------------


class FlakyStore(LocalObjectStore):
    """Fails ``put`` with transient errors while ``down``; may lie in ``head``."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.down = False
        self.failures = 0
        self.transient = 0
        self.lie = False

    def put(self, key: str, data: bytes, sha256_hex: str) -> None:
        if self.down or self.transient:
            self.failures += 1
            self.transient = max(self.transient - 1, 0)
            raise TransientStoreError(f"put {key}: injected 503")
        super().put(key, data, sha256_hex)

    def head(self, key: str) -> ObjectInfo | None:
        info = super().head(key)
        return info._replace(sha256="0" * 64) if info is not None and self.lie else info


def test_transient_errors_are_retried_without_duplicates(log, tmp_path):
    path, events = log
    store = FlakyStore(tmp_path / "store")
    store.transient = 2
    archiver = Archiver(path, 0, store, config(tmp_path / "store"), sleep=lambda s: None)
    assert archiver.run_once(force=True).error is None
    assert archiver.metrics.value(0, "retries") == 2
    assert sorted(archived_rows(store)) == list(range(len(events)))


def test_persistent_outage_keeps_everything_local_and_reports_it(log, tmp_path, caplog):
    path, events = log
    store = FlakyStore(tmp_path / "store")
    store.down = True
    cfg = config(tmp_path / "store", retention="0s")
    archiver = Archiver(path, 0, store, cfg, sleep=lambda s: None)
    with caplog.at_level(logging.ERROR, logger="ticktape.sinks.archive"):
        first, second = archiver.run_once(force=True), archiver.run_once(force=True)
    assert first.error
    assert "gave up after 3 attempts" in first.error
    assert "part=000" in first.error
    assert second.error
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1  # once per failure streak
    assert archiver.metrics.value(0, "failures") == 2
    assert archiver.metrics.value(0, "healthy") == 0
    assert archiver.metrics.value(0, "backlog_rows") == len(events)
    assert all(bodies(path).values())
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM batches WHERE archived_key IS NOT NULL").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM archive_units WHERE state = 'verified'").fetchone()[0] == 0
    store.down = False
    assert archiver.run_once(force=True).error is None
    assert archiver.metrics.value(0, "healthy") == 1
    assert sorted(archived_rows(store)) == list(range(len(events)))


def test_a_head_that_does_not_match_marks_nothing(log, tmp_path):
    path, _ = log
    store = FlakyStore(tmp_path / "store")
    store.lie = True
    result = Archiver(path, 0, store, config(tmp_path / "store", retention="0s")).run_once(force=True)
    assert result.error
    assert "expected size" in result.error
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM archive_units WHERE state = 'verified'").fetchone()[0] == 0
    assert all(bodies(path).values())


# -- retention and triggers --------------------------------------------------------------


def test_retention_deletes_only_verified_aged_bodies_and_reuploads_a_lost_object(log, tmp_path):
    path, _ = log
    store = LocalObjectStore(tmp_path / "store")
    now = [T0 + 10 * HOUR]
    cfg = config(tmp_path / "store", retention="1h", batch_rows=400, batch_age="100d", max_age="100d")
    archiver = Archiver(path, 0, store, cfg, clock=lambda: now[0])
    assert archiver.run_once().units == 1  # 400 rows: one full unit, the rest waits
    assert all(bodies(path).values())
    now[0] += HOUR // 2
    assert archiver.run_once().deleted_batches == 0  # not aged yet
    lost = next(ArchiveReader(store).iter_keys()).key
    store.delete(lost)
    now[0] += HOUR
    result = archiver.run_once()
    assert result.deleted_batches == 0
    assert archiver.metrics.value(0, "verify_mismatches") == 1
    assert archiver.run_once().units == 1  # archived again from the kept bodies
    assert store.head(lost) is not None
    now[0] += 2 * HOUR
    assert archiver.run_once().deleted_batches > 0
    kept = bodies(path)
    with sqlite3.connect(path) as conn:
        pending = {
            i
            for (i,) in conn.execute(
                "SELECT id FROM batches WHERE id > (SELECT max(last_batch) FROM archive_units)"
            )
        }
    assert pending
    assert all(kept[i] for i in pending)


def test_triggers_rows_batch_age_and_max_age(tmp_path):
    path = partition_path(tmp_path / "events", 0)
    writer = EventLogPartition(path)
    writer.append([tick("A-USD", i, T0 + i * S) for i in range(1, 51)])
    writer.close()
    store = LocalObjectStore(tmp_path / "store")
    logged = sqlite3.connect(path).execute("SELECT ts_logged FROM batches").fetchone()[0]

    def units(now: int, **kw: Any) -> int:
        cfg = config(tmp_path / "store", **({"batch_rows": 100, "batch_age": "1h", "max_age": "1h"} | kw))
        a = Archiver(path, 0, store, cfg, clock=lambda: now)
        try:
            return a.run_once().units
        finally:
            a.close()

    assert units(logged, max_age="10000d") == 0  # 50 < 100 rows, young batch
    assert units(T0 + 30 * 60 * S, max_age="1h") == 0
    assert units(logged + 2 * HOUR, max_age="10000d") == 1  # batch_age
    writer = EventLogPartition(path)
    writer.append([tick("A-USD", i, T0 + i * S) for i in range(51, 101)])
    writer.close()
    assert units(T0 + 2 * HOUR, batch_age="10000d") == 1  # max_age: event time 2h old
    writer = EventLogPartition(path)
    for start in range(101, 301, 50):
        writer.append([tick("A-USD", i, T0 + i * S) for i in range(start, start + 50)])
    writer.append([tick("A-USD", 301, T0 + 301 * S)])
    writer.close()
    assert units(logged, batch_rows=100, max_age="10000d") == 2  # batch_rows: 2 full units, 1 row waits


def test_lock_keeps_two_archivers_apart_and_maybe_run_runs_in_background(log, tmp_path):
    path, events = log
    store = LocalObjectStore(tmp_path / "store")
    archiver = Archiver(path, 0, store, config(tmp_path / "store", batch_rows=100_000, batch_age="0s"))
    with partition_lock(path) as got:
        assert got
        assert archiver.run_once().skipped
    assert archiver.maybe_run()
    assert not archiver.maybe_run()  # check_interval not passed (or still running)
    archiver.close()
    assert archiver.last is not None
    assert archiver.last.rows == len(events)


def test_archiving_while_the_writer_appends_loses_and_duplicates_nothing(tmp_path):
    path = partition_path(tmp_path / "events", 0)
    store = LocalObjectStore(tmp_path / "store")
    writer = EventLogPartition(path, background=True)
    archiver = Archiver(path, 0, store, config(tmp_path / "store", batch_rows=300, retention="0s"))
    events = [tick(f"S{n % 7}-USD", n, T0 + n * S) for n in range(1, 6001)]
    errors = []
    for start in range(0, len(events), 200):
        writer.append(events[start : start + 200])
        if start % 1000 == 0:
            errors.append(archiver.run_once(force=True).error)
    writer.close()
    errors.append(archiver.run_once(force=True).error)
    archiver.close()
    assert errors == [None] * len(errors)
    got = archived_rows(store)
    assert sorted(got) == list(range(len(events)))
    assert all(same(got[i], e) for i, e in enumerate(events))
    assert verify(store, "ticktape", [path], deep=True).ok


def test_archive_all_covers_every_partition(tmp_path):
    data = tmp_path / "data"
    for p in range(3):
        make_log(partition_path(data / "events", p), batches=2)
    results = archive_all(data, config(tmp_path / "store"), force=True)
    assert sorted(results) == [0, 1, 2]
    assert all(r.error is None and r.rows == 102 for r in results.values())


# -- verify ------------------------------------------------------------------------------


def test_verify_finds_missing_changed_orphan_and_duplicate_objects(log, tmp_path):
    path, _ = log
    store = LocalObjectStore(tmp_path / "store")
    Archiver(path, 0, store, config(tmp_path / "store")).run_once(force=True)
    keys = [o.key for o in ArchiveReader(store).iter_keys()]
    store.delete(keys[0])
    data = store.get(keys[1])
    store.put(keys[1], data + b"x", sha256_of(data + b"x"))
    orphan = "ticktape/stream=events/date=2030-01-01/hour=00/part=000/000000000001-000000000002.parquet"
    store.put(orphan, b"o", sha256_of(b"o"))
    report = verify(store, "ticktape", [path])
    assert report.missing == [keys[0]]
    assert len(report.mismatched) == 1
    assert report.orphans == [orphan]
    assert report.duplicates
    assert not report.ok


# -- compression of retained bodies ------------------------------------------------------


@pytest.mark.parametrize(("per_batch", "dictionary"), [(8, True), (400, False)])
def test_retained_bodies_are_compressed_in_place_and_read_back(tmp_path, per_batch, dictionary):
    path = partition_path(tmp_path / "events", 0)
    events = make_log(path, batches=2400 // per_batch, per_batch=per_batch)
    store = LocalObjectStore(tmp_path / "store")
    archiver = Archiver(path, 0, store, config(tmp_path / "store", batch_rows=100_000))
    result = archiver.run_once(force=True)
    assert result.compressed_batches == 2400 // per_batch
    with sqlite3.connect(path) as conn:
        codecs = {c for (c,) in conn.execute("SELECT codec FROM batches")}
        stats = conn.execute(
            "SELECT raw_bytes, compressed_bytes, dictionary_gain FROM compression_stats"
        ).fetchone()
    assert all(c.startswith("zstd-dict:") if dictionary else c == "zstd" for c in codecs), codecs
    assert stats[0] > 2 * stats[1]
    if dictionary:
        assert stats[2] >= 0.10  # the dictionary paid at least dictionary_min_gain
    with EventStore(path.parent) as es:
        back = list(es.iter_events())
    assert sorted(key(e) for e in back) == sorted(key(e) for e in events)
    again = EventLogPartition(path)  # the writer's duplicate check decodes compressed bodies too
    again.append(events[:30])
    assert again.rows_ignored == 30
    again.close()


def key(e: Event) -> tuple[Any, ...]:
    return (e.event_id, e.type, e.aggregate, e.seq, e.ts_event, e.payload, e.causation)


# -- the command line --------------------------------------------------------------------


def cli(*args: str) -> Any:
    from ticktape.flows.cli.archive import archive

    return CliRunner().invoke(archive, list(args), catch_exceptions=False)


def test_cli_run_ls_read_verify_stats_compress(log, tmp_path):
    _path, events = log
    data, store = str(tmp_path / "data"), str(tmp_path / "store")
    common = ["--data-dir", data, "--store", store]
    run = cli("run", *common, "--force")
    assert run.exit_code == 0, run.output
    assert cli("ls", *common, "--json").output.count("\n") == 6
    out = cli(
        "read", "S1-USD", *common, "--from", str(T0 + 10 * 60 * S), "--to", str(T0 + HOUR + 60 * S), "--json"
    )
    rows = [msgspec.json.decode(line) for line in out.stdout.splitlines()]
    want = [e for e in events if e.aggregate == "S1-USD@binance" and e.type == EventType.PRICE_UPDATED
            and T0 + 10 * 60 * S <= e.ts_event < T0 + HOUR + 60 * S]  # fmt: skip
    assert [r["event_id"] for r in rows] == [e.event_id for e in want]
    assert want
    csv_out = cli("read", "S1-USD@binance", *common, "--stream", "events", "--csv").stdout
    got = list(csv.DictReader(io.StringIO(csv_out)))
    want = [e for e in events if e.aggregate == "S1-USD@binance" and e.type != EventType.PRICE_UPDATED]
    assert [(r["event_id"], r["payload"].encode()) for r in got] == [(e.event_id, e.payload) for e in want]
    assert cli("verify", *common, "--deep").exit_code == 0
    stats = msgspec.json.decode(cli("stats", *common, "--json").stdout)
    assert stats["partitions"][0]["archived_rows"] == len(events)
    assert "bodies" in cli("compress", *common).output
    LocalObjectStore(store).delete(next(ArchiveReader(LocalObjectStore(store)).iter_keys()).key)
    assert cli("verify", *common).exit_code == 1


def test_metrics_are_registered_once_per_run_stats(log, tmp_path):
    path, _ = log
    stats = RunStats()
    store = LocalObjectStore(tmp_path / "store")
    for _ in range(2):
        Archiver(path, 0, store, config(tmp_path / "store"), stats).close()
    assert len(stats.collectors) == 1
