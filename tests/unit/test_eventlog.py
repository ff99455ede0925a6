"""sinks.eventlog (writer) and sinks.eventstore (queries) on real SQLite files."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.errors import InputError
from schemas.ids import event_id, stable_bucket
from schemas.records import Event, EventType
from sinks.eventlog import EventLogPartition, partition_of, partition_path
from sinks.eventstore import EventPage, EventStore

S = 1_000_000_000
T0 = 1_700_000_000 * S
PARTS = 4


def ev(aggregate: str, seq: int, ts: int, typ: str = EventType.PRICE_UPDATED, payload: bytes = b"{}") -> Event:
    return Event(event_id(ts, typ, aggregate, seq), typ, aggregate, seq, ts, 0, payload, f"src@{seq}")


def write(directory: Path, events: list[Event], parts: int = PARTS) -> None:
    """Append ``events`` to their aggregates' partitions (every partition file exists)."""
    writers = [EventLogPartition(partition_path(directory, i)) for i in range(parts)]
    try:
        for e in events:
            writers[partition_of(e.aggregate, parts)].append([e])
    finally:
        for w in writers:
            w.close()


def key(e: Event) -> tuple[object, ...]:
    return (e.event_id, e.type, e.aggregate, e.seq, e.ts_event, e.payload, e.causation)


# -- partitions ----------------------------------------------------------------------


def test_partition_path_and_partition_of() -> None:
    assert partition_path(Path("/d/events"), 7) == Path("/d/events/part-007.sqlite")
    for agg in ("BTC-USDT@binance", "source:trades/0", ""):
        assert partition_of(agg, 16) == stable_bucket(agg, 16)
        assert 0 <= partition_of(agg, 16) < 16
        assert partition_of(agg, 1) == 0
    spread = {partition_of(f"S{i}@v", 8) for i in range(200)}
    assert spread == set(range(8))


def test_partition_of_is_stable_across_processes() -> None:
    aggs = ["BTC-USDT@binance", "ETH-USD@kraken", "source:trades/3"]
    here = [partition_of(a, 32) for a in aggs]
    code = f"from sinks.eventlog import partition_of; print([partition_of(a, 32) for a in {aggs!r}])"
    for seed in ("1", "2"):
        env = os.environ | {"PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == str(here)


# -- writer --------------------------------------------------------------------------


@pytest.mark.parametrize("background", [False, True])
def test_insert_or_ignore_by_event_id(tmp_path: Path, background: bool) -> None:
    part = EventLogPartition(tmp_path / "p.sqlite", background=background)
    first = [ev("A@x", i, T0 + i) for i in range(1, 6)]
    part.append(first)
    part.append(first[2:] + [ev("A@x", 6, T0 + 6)])
    part.append([])
    part.flush()
    assert (part.rows_written, part.rows_ignored) == (6, 3)
    rows = part.connection.execute("SELECT id, event_id, seq, ts_logged FROM events ORDER BY id").fetchall()
    assert [r[2] for r in rows] == [1, 2, 3, 4, 5, 6], "rows keep their append order"
    assert [r[1] for r in rows] == [e.event_id for e in first] + [ev("A@x", 6, T0 + 6).event_id]
    assert all(r[3] > 0 for r in rows), "ts_logged is stamped at write"
    part.close()


def test_background_writer_commits_everything_by_flush(tmp_path: Path) -> None:
    part = EventLogPartition(tmp_path / "p.sqlite", background=True, max_queue=2)
    for batch in range(50):  # more batches than the queue holds: append blocks, never drops
        part.append([ev("A@x", batch * 10 + i, T0 + batch * 10 + i) for i in range(10)])
    part.flush()
    assert part.connection.execute("SELECT count(*) FROM events").fetchone() == (500,)
    assert part.rows_written == 500
    part.close()
    assert not any(t.name == "eventlog-p" for t in threading.enumerate()), "the writer thread stopped"


def test_background_writer_error_is_raised_by_flush_and_append(tmp_path: Path) -> None:
    part = EventLogPartition(tmp_path / "p.sqlite", background=True)
    bad = Event("id-bad", "T", "A@x", 1, T0, 0, object(), "c")  # type: ignore[arg-type]
    part.append([ev("A@x", 1, T0)])
    part.append([bad])
    with pytest.raises(Exception, match="(?i)bind|type|support") as info:
        part.flush()
    assert isinstance(info.value, Exception)
    with pytest.raises(type(info.value)):
        part.flush()  # the failure is not forgotten
    with pytest.raises(type(info.value)):
        part.append([ev("A@x", 2, T0 + 1)])
    assert part.connection.execute("SELECT seq FROM events").fetchall() == [(1,)]
    with pytest.raises(type(info.value)):
        part.close()  # close reports it too, and still releases the file
    with pytest.raises(Exception, match="(?i)closed"):
        part.connection.execute("SELECT 1")


def test_foreground_writer_error_raises_at_once(tmp_path: Path) -> None:
    part = EventLogPartition(tmp_path / "p.sqlite")
    bad = Event("id-bad", "T", "A@x", 1, T0, 0, object(), "c")  # type: ignore[arg-type]
    with pytest.raises(Exception, match="(?i)bind|type|support"):
        part.append([ev("A@x", 1, T0), bad])
    # The batch is one transaction: nothing of it landed.
    assert part.connection.execute("SELECT count(*) FROM events").fetchone() == (0,)
    part.append([ev("A@x", 1, T0)])
    assert part.rows_written == 1
    part.close()


def test_reopen_keeps_rows_and_ignores_replays(tmp_path: Path) -> None:
    events = [ev("A@x", i, T0 + i) for i in range(1, 4)]
    first = EventLogPartition(tmp_path / "p.sqlite")
    first.append(events)
    first.close()
    again = EventLogPartition(tmp_path / "p.sqlite", synchronous="FULL")
    again.append(events)
    assert (again.rows_written, again.rows_ignored) == (0, 3)
    again.close()


# -- store: by aggregate -------------------------------------------------------------


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    """Four partitions; 12 aggregates of 10 events each, written out of seq order, plus
    rarer event types."""
    events = []
    for a in range(12):
        agg = f"S{a}-USD@venue"
        for seq in (3, 1, 2, *range(4, 11)):
            typ = EventType.SEQUENCE_GAP if seq == 5 else EventType.PRICE_UPDATED
            events.append(ev(agg, seq, T0 + seq * S + a, typ))
    events.append(ev("source:t/0", 1, T0 + 5 * S, EventType.DEAD_LETTER))
    directory = tmp_path / "events"
    write(directory, events)
    return directory


def all_events(directory: Path) -> list[Event]:
    with EventStore(directory) as store:
        return list(store.iter_events())


def test_query_by_aggregate_in_seq_order(store_dir: Path) -> None:
    with EventStore(store_dir) as store:
        page = store.query(aggregate="S3-USD@venue")
        assert isinstance(page, EventPage)
        assert [e.seq for e in page.events] == list(range(1, 11))
        assert all(e.aggregate == "S3-USD@venue" for e in page.events)
        assert page.cursor is None
        assert store.query(aggregate="nope@venue") == EventPage([], None)


def test_aggregate_paging_with_cursor(store_dir: Path) -> None:
    with EventStore(store_dir) as store:
        seqs: list[int] = []
        cursor = None
        pages = 0
        while True:
            page = store.query(aggregate="S7-USD@venue", cursor=cursor, limit=3)
            pages += 1
            seqs += [e.seq for e in page.events]
            if page.cursor is None:
                break
            assert page.cursor == f"s:{page.events[-1].seq}"
            cursor = page.cursor
        assert seqs == list(range(1, 11))
        assert pages == 4
        # A page that ends exactly at the last event has no cursor.
        assert store.query(aggregate="S7-USD@venue", limit=10).cursor is None
        assert store.query(aggregate="S7-USD@venue", limit=9).cursor == "s:9"


def test_aggregate_with_other_filters(store_dir: Path) -> None:
    with EventStore(store_dir) as store:
        gaps = store.query(aggregate="S2-USD@venue", type=EventType.SEQUENCE_GAP)
        assert [(e.seq, e.type) for e in gaps.events] == [(5, EventType.SEQUENCE_GAP)]
        window = store.query(aggregate="S2-USD@venue", since=T0 + 3 * S, until=T0 + 6 * S)
        assert [e.seq for e in window.events] == [3, 4, 5]


def test_aggregate_found_whatever_partition_files_exist(tmp_path: Path) -> None:
    """A worker's directory may hold only some partitions (one volume per pod), or files
    of an older partition count: an aggregate query must still find its events."""
    directory = tmp_path / "events"
    aggs = [f"S{i}@v" for i in range(20)]
    # Only the partitions this "worker" owns: 1 and 3 of 4.
    mine = [a for a in aggs if partition_of(a, 4) in (1, 3)]
    for i in (1, 3):
        part = EventLogPartition(partition_path(directory, i))
        part.append([ev(a, 1, T0) for a in mine if partition_of(a, 4) == i])
        part.close()
    with EventStore(directory) as store:
        for a in mine:
            assert [e.aggregate for e in store.query(aggregate=a).events] == [a]


# -- store: by type and time, across partitions ----------------------------------------


def test_query_everything_in_event_id_order(store_dir: Path) -> None:
    events = all_events(store_dir)
    assert len(events) == 121
    ids = [e.event_id for e in events]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert [e.ts_event for e in events] == sorted(e.ts_event for e in events), "ids sort by time"


def test_query_by_type(store_dir: Path) -> None:
    with EventStore(store_dir) as store:
        gaps = store.query(type=EventType.SEQUENCE_GAP, limit=1000).events
        assert len(gaps) == 12 and {e.seq for e in gaps} == {5}
        (dl,) = store.query(type=EventType.DEAD_LETTER).events
        assert dl.aggregate == "source:t/0"
        assert store.query(type="NoSuchType").events == []


def test_time_range_since_inclusive_until_exclusive(store_dir: Path) -> None:
    everything = all_events(store_dir)
    with EventStore(store_dir) as store:
        since, until = T0 + 3 * S, T0 + 5 * S + 5
        got = store.query(since=since, until=until, limit=1000).events
        want = [e for e in everything if since <= e.ts_event < until]
        assert [e.event_id for e in got] == [e.event_id for e in want]
        assert min(e.ts_event for e in got) == since  # S0's seq 3 sits exactly on `since`
        assert all(e.ts_event != until for e in got)
        assert any(e.ts_event == until for e in everything)
        assert store.query(since=T0 + 100 * S).events == []
        assert store.query(until=T0).events == []


@pytest.mark.parametrize("limit", [1, 2, 7, 12, 120, 121, 122, 1000])
@pytest.mark.parametrize("flt", [{}, {"type": EventType.PRICE_UPDATED}, {"since": T0 + 2 * S, "until": T0 + 9 * S}])
def test_paging_across_partitions_without_gaps_or_repeats(store_dir: Path, limit: int, flt: dict[str, object]) -> None:
    with EventStore(store_dir) as store:
        full = store.query(limit=10_000, **flt).events  # type: ignore[arg-type]
        assert store.query(limit=10_000, **flt).cursor is None  # type: ignore[arg-type]
        got: list[Event] = []
        cursor = None
        while True:
            page = store.query(cursor=cursor, limit=limit, **flt)  # type: ignore[arg-type]
            assert len(page.events) <= limit
            got += page.events
            if page.cursor is None:
                break
            assert len(page.events) == limit
            cursor = page.cursor
    assert [key(e) for e in got] == [key(e) for e in full]
    assert len({e.event_id for e in got}) == len(got)


@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 30)), max_size=80, unique=True), st.integers(1, 9), st.integers(1, 6))
def test_property_paging_over_any_layout(rows: list[tuple[int, int]], limit: int, parts: int) -> None:
    import tempfile

    events = [ev(f"A{a}@v", seq, T0 + seq * S) for a, seq in rows]
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        write(directory, events, parts)
        with EventStore(directory) as store:
            got: list[Event] = []
            cursor = None
            while True:
                page = store.query(cursor=cursor, limit=limit)
                got += page.events
                if page.cursor is None:
                    break
                cursor = page.cursor
            for a in {a for a, _ in rows}:
                agg = [e.seq for e in store.iter_events(aggregate=f"A{a}@v")]
                assert agg == sorted(seq for b, seq in rows if b == a)
    assert [e.event_id for e in got] == sorted(e.event_id for e in events)


def test_iter_events_covers_more_than_one_page(tmp_path: Path) -> None:
    events = [ev(f"A{i % 3}@v", i, T0 + i) for i in range(1, 12_001)]
    write(tmp_path, events, 2)
    with EventStore(tmp_path) as store:
        assert sum(1 for _ in store.iter_events()) == 12_000
        assert [e.seq for e in store.iter_events(aggregate="A1@v")] == list(range(1, 12_001, 3))


# -- store: errors, latest, stats -------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "cursor"),
    [
        ({}, "s:5"),  # an aggregate cursor on a global query
        ({}, "e:"),
        ({}, "garbage"),
        ({"aggregate": "S1-USD@venue"}, "e:0000"),
        ({"aggregate": "S1-USD@venue"}, "s:"),
        ({"aggregate": "S1-USD@venue"}, "s:abc"),
        ({"type": EventType.PRICE_UPDATED}, "x:1"),
    ],
)
def test_invalid_cursor_is_an_input_error(store_dir: Path, query: dict[str, str], cursor: str) -> None:
    with EventStore(store_dir) as store, pytest.raises(InputError, match="invalid cursor"):
        store.query(cursor=cursor, **query)  # type: ignore[arg-type]


def test_invalid_limit(store_dir: Path) -> None:
    with EventStore(store_dir) as store, pytest.raises(InputError, match="limit must be >= 1, got 0"):
        store.query(limit=0)


def test_missing_or_empty_directory(tmp_path: Path) -> None:
    for directory in (tmp_path / "absent", tmp_path):
        with EventStore(directory) as store:
            assert store.paths == []
            assert store.query() == EventPage([], None)
            assert store.query(aggregate="A@v") == EventPage([], None)
            assert list(store.latest_per_aggregate(EventType.PRICE_UPDATED)) == []
            assert store.stats() == {"partitions": [], "rows": 0, "types": {}}


def test_latest_per_aggregate(store_dir: Path) -> None:
    with EventStore(store_dir) as store:
        latest = {e.aggregate: e for e in store.latest_per_aggregate(EventType.PRICE_UPDATED)}
        assert set(latest) == {f"S{a}-USD@venue" for a in range(12)}
        assert all(e.seq == 10 and e.type == EventType.PRICE_UPDATED for e in latest.values())
        gaps = list(store.latest_per_aggregate(EventType.SEQUENCE_GAP))
        assert len(gaps) == 12 and {e.seq for e in gaps} == {5}


def test_stats(store_dir: Path) -> None:
    with EventStore(store_dir) as store:
        stats = store.stats()
    assert stats["rows"] == 121
    assert stats["types"] == {EventType.PRICE_UPDATED: 108, EventType.SEQUENCE_GAP: 12, EventType.DEAD_LETTER: 1}
    parts = stats["partitions"]
    assert isinstance(parts, list) and len(parts) == PARTS
    assert sum(p["rows"] for p in parts) == 121
    assert sum(p["aggregates"] for p in parts) == 13
    non_empty = [p for p in parts if p["rows"]]
    assert min(p["min_ts"] for p in non_empty) == T0 + S
    assert max(p["max_ts"] for p in non_empty) == T0 + 10 * S + 11
    assert all(p["bytes"] > 0 and p["path"].endswith(".sqlite") for p in parts)


def test_store_reads_while_a_writer_appends(tmp_path: Path) -> None:
    part = EventLogPartition(partition_path(tmp_path, 0), background=True)
    part.append([ev("A@v", 1, T0)])
    part.flush()
    with EventStore(tmp_path) as store:
        assert [e.seq for e in store.query(aggregate="A@v").events] == [1]
        part.append([ev("A@v", 2, T0 + 1)])
        part.flush()
        assert [e.seq for e in store.query(aggregate="A@v").events] == [1, 2]
    part.close()
