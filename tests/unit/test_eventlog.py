"""ticktape.sinks.eventlog.log (writer: append-only batches indexed by SQLite) and ticktape.sinks.eventlog.store
(queries), on real SQLite files."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support import records
from ticktape.schemas.errors import InputError
from ticktape.schemas.ids import event_id, stable_bucket
from ticktape.schemas.records import Event, EventType
from ticktape.sinks.eventlog.log import EventLogPartition, decode_body, partition_of, partition_path
from ticktape.sinks.eventlog.store import EventPage, EventStore

S = 1_000_000_000
T0 = 1_700_000_000 * S
PARTS = 4


def ev(
    aggregate: str, seq: int, ts: int, typ: str = EventType.PRICE_UPDATED, payload: bytes = b"{}"
) -> Event:
    return records.event(
        event_id=event_id(ts, typ, aggregate, seq), type=typ, aggregate=aggregate, seq=seq, ts_event=ts,
        ts_logged=0, payload=payload, causation=f"src@{seq}",
    )  # fmt: skip


def key(e: Event) -> tuple[object, ...]:
    """An event without ``ts_logged`` (the writer's clock)."""
    return (e.event_id, e.type, e.aggregate, e.seq, e.ts_event, e.payload, e.causation)


def write(directory: Path, batches: list[list[Event]], parts: int = PARTS) -> None:
    """Append each batch to its aggregates' partitions (every partition file exists)."""
    writers = [EventLogPartition(partition_path(directory, i)) for i in range(parts)]
    try:
        for batch in batches:
            by_part: dict[int, list[Event]] = {}
            for e in batch:
                by_part.setdefault(partition_of(e.aggregate, parts), []).append(e)
            for i, events in by_part.items():
                writers[i].append(events)
    finally:
        for w in writers:
            w.close()


def stored(part: EventLogPartition) -> list[Event]:
    """Every event in the partition file, in log order."""
    rows = part.connection.execute("SELECT body FROM batches WHERE body IS NOT NULL ORDER BY id").fetchall()
    return [e for (body,) in rows for e in decode_body(body)]


# -- partitions ----------------------------------------------------------------------


def test_partition_path_and_partition_of() -> None:
    assert partition_path(Path("/d/events"), 7) == Path("/d/events/part-007.sqlite")
    for agg in ("BTC-USDT@binance", "source:trades/0", ""):
        assert partition_of(agg, 16) == stable_bucket(agg, 16)
        assert 0 <= partition_of(agg, 16) < 16
        assert partition_of(agg, 1) == 0
    assert {partition_of(f"S{i}@v", 8) for i in range(200)} == set(range(8))


def test_partition_of_is_stable_across_processes() -> None:
    aggs = ["BTC-USDT@binance", "ETH-USD@kraken", "source:trades/3"]
    here = [partition_of(a, 32) for a in aggs]
    code = f"from ticktape.sinks.eventlog.log import partition_of; print([partition_of(a, 32) for a in {aggs!r}])"
    for seed in ("1", "2"):
        env = os.environ | {"PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == str(here)


# -- writer --------------------------------------------------------------------------


@pytest.mark.parametrize("background", [False, True])
def test_insert_or_ignore_by_event_id(tmp_path: Path, background: bool) -> None:
    part = EventLogPartition(tmp_path / "p.sqlite", background=background)
    first = [ev("A@x", i, T0 + i) for i in range(1, 6)]
    part.append(first)
    part.flush()  # (background: keep the two appends in separate transactions)
    sixth = ev("A@x", 6, T0 + 6)
    part.append([*first[2:], sixth, first[0]])
    part.append([])
    part.flush()
    assert (part.rows_written, part.rows_ignored) == (6, 4)
    assert [key(e) for e in stored(part)] == [key(e) for e in [*first, sixth]]
    assert part.next_row == 6
    batches = part.connection.execute(
        "SELECT first_row, rows, min_ts, max_ts, ts_logged FROM batches ORDER BY id"
    ).fetchall()
    assert [(b[0], b[1], b[2], b[3]) for b in batches] == [(0, 5, T0 + 1, T0 + 5), (5, 1, T0 + 6, T0 + 6)]
    assert all(b[4] > 0 for b in batches), "ts_logged is stamped at write"
    part.close()


def test_replays_out_of_order_and_within_one_batch(tmp_path: Path) -> None:
    part = EventLogPartition(tmp_path / "p.sqlite")
    a = [ev("A@x", i, T0 + i) for i in range(1, 4)]
    part.append(a)
    late = ev("A@x", 4, T0 - S)  # new, but its id sorts below the aggregate's newest id
    b = ev("B@x", 1, T0)
    part.append([a[1], late, b, b, late, a[0]])
    assert (part.rows_written, part.rows_ignored) == (5, 4)
    assert [key(e) for e in stored(part)] == [key(e) for e in [*a, late, b]]
    part.close()


def test_reopen_keeps_rows_and_ignores_replays(tmp_path: Path) -> None:
    events = [ev("A@x", i, T0 + i) for i in range(1, 4)]
    first = EventLogPartition(tmp_path / "p.sqlite")
    first.append(events)
    first.close()
    again = EventLogPartition(tmp_path / "p.sqlite", synchronous="FULL")
    assert again.next_row == 3
    again.append([*events, ev("A@x", 4, T0 + 4)])
    assert (again.rows_written, again.rows_ignored) == (1, 3)
    assert [e.seq for e in stored(again)] == [1, 2, 3, 4]
    again.close()


def test_replay_of_archived_and_deleted_batches_is_recognized(tmp_path: Path) -> None:
    part = EventLogPartition(tmp_path / "p.sqlite")
    events = [ev("A@x", i, T0 + i) for i in range(1, 5)]
    part.append(events)
    with part.connection:  # what the archiver does after the retention period
        part.connection.execute("UPDATE batches SET body = NULL, archived_key = 'k'")
    part.close()
    again = EventLogPartition(tmp_path / "p.sqlite")
    again.append(events[1:3])
    assert (again.rows_written, again.rows_ignored) == (0, 2)
    again.close()


def test_background_writer_commits_everything_by_flush(tmp_path: Path) -> None:
    part = EventLogPartition(tmp_path / "p.sqlite", background=True, max_queue=2)
    for batch in range(50):  # more batches than the queue holds: append blocks, never drops
        part.append([ev(f"A{batch % 3}@x", batch * 10 + i, T0 + batch * 10 + i) for i in range(10)])
    part.flush()
    assert part.rows_written == 500
    events = stored(part)
    assert len(events) == 500
    assert [e.seq for e in events] == list(range(500)), "log order is append order"
    (batches,) = part.connection.execute("SELECT count(*) FROM batches").fetchone()
    assert 1 <= batches <= 50
    part.close()
    assert not any(t.name == "eventlog-p" for t in threading.enumerate()), "the writer thread stopped"


def bad_event(seq: int = 9) -> Event:
    """An event whose payload is not bytes: the log's writer fails to store it."""
    return records.event(
        event_id=event_id(T0 + seq, "X"), type="T", aggregate="A@x", seq=seq, ts_event=T0 + seq, ts_logged=0,
        payload=object(), causation="c",  # type: ignore[arg-type]
    )  # fmt: skip


def test_background_writer_error_is_raised_by_flush_append_and_close(tmp_path: Path) -> None:
    part = EventLogPartition(tmp_path / "p.sqlite", background=True)
    part.append([ev("A@x", 1, T0)])
    part.flush()
    part.append([bad_event()])
    with pytest.raises(TypeError) as info:
        part.flush()
    with pytest.raises(TypeError):
        part.flush()  # the failure is not forgotten
    with pytest.raises(TypeError):
        part.append([ev("A@x", 2, T0 + 1)])
    assert [e.seq for e in stored(part)] == [1]
    with pytest.raises(TypeError):
        part.close()  # close reports it too, and still releases the file and the thread
    assert "object" in str(info.value)
    with pytest.raises(sqlite3.ProgrammingError, match=r"closed database"):
        part.connection.execute("SELECT 1")
    assert not any(t.name == "eventlog-p" for t in threading.enumerate())


def test_foreground_writer_error_raises_at_once_and_loses_nothing(tmp_path: Path) -> None:
    part = EventLogPartition(tmp_path / "p.sqlite")
    good = ev("A@x", 1, T0)
    with pytest.raises(TypeError):
        part.append([good, bad_event()])
    assert stored(part) == [], "the batch is one transaction"
    part.append([good])  # the failed attempt must not make the event look stored
    assert part.rows_written == 1
    assert [key(e) for e in stored(part)] == [key(good)]
    part.close()


# -- store fixture -------------------------------------------------------------------

N_AGGS = 12


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    """Four partitions; 12 aggregates with 10 events each (seq 5 a SequenceGap), written
    in 3 rounds of batches (seqs 1-3 out of order, 4-7, 8-10), plus one dead letter."""
    rounds = [(3, 1, 2), (4, 5, 6, 7), (8, 9, 10)]
    batches = []
    for seqs in rounds:
        batch = []
        for a in range(N_AGGS):
            for seq in seqs:
                typ = EventType.SEQUENCE_GAP if seq == 5 else EventType.PRICE_UPDATED
                batch.append(ev(f"S{a}-USD@venue", seq, T0 + seq * S + a, typ))
        batches.append(batch)
    batches.append([ev("source:t/0", 1, T0 + 5 * S, EventType.DEAD_LETTER)])
    directory = tmp_path / "events"
    write(directory, batches)
    return directory


def everything(directory: Path, **flt: object) -> list[Event]:
    with EventStore(directory) as store:
        return list(store.iter_events(**flt))  # type: ignore[arg-type]


def pages(store: EventStore, limit: int, **flt: object) -> list[Event]:
    got: list[Event] = []
    cursor = None
    while True:
        page = store.query(cursor=cursor, limit=limit, **flt)  # type: ignore[arg-type]
        assert len(page.events) <= limit
        got += page.events
        if page.cursor is None:
            return got
        assert len(page.events) == limit, "only the last page is short"
        cursor = page.cursor


# -- store: by aggregate -------------------------------------------------------------


def test_query_by_aggregate_in_seq_order(store_dir: Path) -> None:
    with EventStore(store_dir) as store:
        page = store.query(aggregate="S3-USD@venue")
        assert isinstance(page, EventPage)
        assert [e.seq for e in page.events] == list(range(1, 11))
        assert all(e.aggregate == "S3-USD@venue" for e in page.events)
        assert all(e.ts_logged > 0 for e in page.events)
        assert page.events[0].event_id == event_id(T0 + S + 3, EventType.PRICE_UPDATED, "S3-USD@venue", 1)
        assert page.cursor is None
        assert store.query(aggregate="nope@venue") == EventPage([], None)


def test_aggregate_paging_with_cursor(store_dir: Path) -> None:
    with EventStore(store_dir) as store:
        assert [e.seq for e in pages(store, 3, aggregate="S7-USD@venue")] == list(range(1, 11))
        assert [e.seq for e in pages(store, 1, aggregate="S7-USD@venue")] == list(range(1, 11))
        assert store.query(aggregate="S7-USD@venue", limit=3).cursor == "s:3"
        # A page that ends exactly at the last event has no cursor.
        assert store.query(aggregate="S7-USD@venue", limit=10).cursor is None
        assert store.query(aggregate="S7-USD@venue", limit=9).cursor == "s:9"
        assert [e.seq for e in store.query(aggregate="S7-USD@venue", cursor="s:8").events] == [9, 10]


def test_aggregate_with_other_filters(store_dir: Path) -> None:
    with EventStore(store_dir) as store:
        gaps = store.query(aggregate="S2-USD@venue", type=EventType.SEQUENCE_GAP)
        assert [(e.seq, e.type) for e in gaps.events] == [(5, EventType.SEQUENCE_GAP)]
        window = store.query(aggregate="S2-USD@venue", since=T0 + 3 * S, until=T0 + 6 * S)
        assert [e.seq for e in window.events] == [3, 4, 5]  # since inclusive (3 s + 2 ns)
        assert [e.seq for e in pages(store, 2, aggregate="S2-USD@venue", type=EventType.PRICE_UPDATED)] == [
            1, 2, 3, 4, 6, 7, 8, 9, 10,
        ]  # fmt: skip


def test_aggregate_found_whatever_partition_files_exist(tmp_path: Path) -> None:
    """A worker's directory may hold only some partitions (one volume per pod), or also
    files of an older partition count: an aggregate query must still find its events."""
    directory = tmp_path / "events"
    aggs = [f"S{i}@v" for i in range(20)]
    mine = [a for a in aggs if partition_of(a, 4) in (1, 3)]
    assert mine
    for i in (1, 3):  # only the partitions this worker owns
        part = EventLogPartition(partition_path(directory, i))
        part.append([ev(a, 1, T0) for a in mine if partition_of(a, 4) == i])
        part.close()
    with EventStore(directory) as store:
        for a in mine:
            assert [e.aggregate for e in store.query(aggregate=a).events] == [a]


# -- store: by type and time, across partitions ----------------------------------------


def test_query_everything_once_in_log_order_per_partition(store_dir: Path) -> None:
    events = everything(store_dir)
    assert len(events) == N_AGGS * 10 + 1
    assert len({e.event_id for e in events}) == len(events)
    with EventStore(store_dir) as store:
        for path in store.paths:
            index = int(path.stem.split("-")[1])
            mine = [e for e in events if partition_of(e.aggregate, PARTS) == index]
            conn = store.connection(path)
            log = [
                e.event_id
                for (body,) in conn.execute("SELECT body FROM batches ORDER BY id")
                for e in decode_body(body)
            ]
            assert [e.event_id for e in mine] == log


def test_query_by_type(store_dir: Path) -> None:
    with EventStore(store_dir) as store:
        gaps = store.query(type=EventType.SEQUENCE_GAP, limit=1000).events
        assert len(gaps) == N_AGGS
        assert {e.seq for e in gaps} == {5}
        assert all(e.type == EventType.SEQUENCE_GAP for e in gaps)
        (dl,) = store.query(type=EventType.DEAD_LETTER).events
        assert dl.aggregate == "source:t/0"
        assert dl.ts_logged > 0
        prices = store.query(type=EventType.PRICE_UPDATED, limit=1000).events
        assert len(prices) == N_AGGS * 9
        assert {e.type for e in prices} == {EventType.PRICE_UPDATED}
        assert store.query(type="NoSuchType").events == []


@pytest.mark.parametrize("typ", [None, EventType.PRICE_UPDATED, EventType.SEQUENCE_GAP])
def test_time_range_since_inclusive_until_exclusive(store_dir: Path, typ: str | None) -> None:
    alls = everything(store_dir)
    since, until = T0 + 3 * S, T0 + 5 * S + 5
    with EventStore(store_dir) as store:
        got = store.query(since=since, until=until, type=typ, limit=1000).events
    want = [e for e in alls if since <= e.ts_event < until and typ in (None, e.type)]
    assert sorted(key(e) for e in got) == sorted(key(e) for e in want)
    assert want, "the range is not empty"
    if typ is None:
        assert min(e.ts_event for e in got) == since  # S0's seq 3 sits exactly on `since`
        assert any(e.ts_event == until for e in alls)  # S5's seq 5 sits on `until`: excluded
    assert all(e.ts_event != until for e in got)


def test_time_range_outside_the_data(store_dir: Path) -> None:
    with EventStore(store_dir) as store:
        assert store.query(since=T0 + 100 * S) == EventPage([], None)
        assert store.query(until=T0) == EventPage([], None)
        assert store.query(since=T0 + 2 * S, until=T0 + 2 * S) == EventPage([], None)


@pytest.mark.parametrize("limit", [1, 2, 7, 12, 120, 121, 122, 1000])
@pytest.mark.parametrize(
    "flt",
    [
        {},
        {"type": EventType.PRICE_UPDATED},
        {"type": EventType.SEQUENCE_GAP},
        {"since": T0 + 2 * S, "until": T0 + 9 * S},
    ],
)
def test_paging_across_partitions_without_gaps_or_repeats(
    store_dir: Path, limit: int, flt: dict[str, object]
) -> None:
    with EventStore(store_dir) as store:
        full = store.query(limit=10_000, **flt)  # type: ignore[arg-type]
        assert full.cursor is None
        got = pages(store, limit, **flt)
    assert [key(e) for e in got] == [key(e) for e in full.events]
    assert len({e.event_id for e in got}) == len(got)


def test_paging_while_the_log_grows(tmp_path: Path) -> None:
    directory = tmp_path / "events"
    write(directory, [[ev(f"A{i}@v", 1, T0 + i) for i in range(10)]], parts=2)
    with EventStore(directory) as store:
        first = store.query(limit=6)
        write(directory, [[ev(f"A{i}@v", 2, T0 + S + i) for i in range(10)]], parts=2)
        rest = pages_from(store, first.cursor, 4)
    events = first.events + rest
    assert sorted((e.aggregate, e.seq) for e in events) == sorted(
        (f"A{i}@v", s) for i in range(10) for s in (1, 2)
    )


def pages_from(store: EventStore, cursor: str | None, limit: int) -> list[Event]:
    got: list[Event] = []
    while cursor is not None:
        page = store.query(cursor=cursor, limit=limit)
        got += page.events
        cursor = page.cursor
    return got


@given(
    st.lists(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 30)), max_size=12), max_size=8),
    st.integers(1, 9),
    st.integers(1, 5),
)
def test_property_paging_over_any_layout(
    batches: list[list[tuple[int, int]]], limit: int, parts: int
) -> None:
    seen: set[tuple[int, int]] = set()
    events: list[list[Event]] = []
    for batch in batches:
        fresh = []
        for a, n in batch:
            if (a, n) not in seen:
                seen.add((a, n))
                fresh.append(ev(f"A{a}@v", n, T0 + n * S))
        events.append(fresh)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        write(directory, events, parts)
        with EventStore(directory) as store:
            got = pages(store, limit)
            full = store.query(limit=10_000).events
            for a in {a for a, _ in seen}:
                seqs = [e.seq for e in pages(store, limit, aggregate=f"A{a}@v")]
                assert seqs == sorted(n for b, n in seen if b == a)
    assert [key(e) for e in got] == [key(e) for e in full]
    assert sorted(e.event_id for e in got) == sorted(e.event_id for batch in events for e in batch)


def test_iter_events_covers_more_than_one_page(tmp_path: Path) -> None:
    write(tmp_path, [[ev(f"A{i % 3}@v", i, T0 + i) for i in range(1, 12_001)]], 2)
    with EventStore(tmp_path) as store:
        assert sum(1 for _ in store.iter_events()) == 12_000
        assert [e.seq for e in store.iter_events(aggregate="A1@v")] == list(range(1, 12_001, 3))


# -- store: errors, latest, stats -------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "cursor"),
    [
        ({}, "s:5"),  # an aggregate cursor on a global query
        ({}, "p:"),
        ({}, "p:1.2"),  # one position for four partitions
        ({}, "p:1.2,3.4,5.6,7"),
        ({}, "p:a.b,1.1,1.1,1.1"),
        ({}, "garbage"),
        ({"aggregate": "S1-USD@venue"}, "p:1.2,1.2,1.2,1.2"),
        ({"aggregate": "S1-USD@venue"}, "s:"),
        ({"aggregate": "S1-USD@venue"}, "s:abc"),
        ({"type": EventType.PRICE_UPDATED}, "x:1"),
    ],
)
def test_invalid_cursor_is_an_input_error(store_dir: Path, query: dict[str, str], cursor: str) -> None:
    with EventStore(store_dir) as store, pytest.raises(InputError, match="invalid cursor"):
        store.query(cursor=cursor, **query)  # type: ignore[arg-type]


def test_cursor_of_one_query_is_valid_for_the_same_query_only(store_dir: Path) -> None:
    with EventStore(store_dir) as store:
        cursor = store.query(limit=5).cursor
        assert cursor is not None
        assert cursor.startswith("p:")
        with pytest.raises(InputError, match="invalid cursor"):
            store.query(aggregate="S1-USD@venue", cursor=cursor)


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
            assert store.stats() == {
                "partitions": [], "events": 0, "types": {},
                "aggregates": 0, "first_ts": None, "last_ts": None, "snapshots": 0, "bytes": 0,
            }  # fmt: skip


def test_latest_per_aggregate(store_dir: Path) -> None:
    with EventStore(store_dir) as store:
        latest = {e.aggregate: e for e in store.latest_per_aggregate(EventType.PRICE_UPDATED)}
        assert set(latest) == {f"S{a}-USD@venue" for a in range(N_AGGS)}
        assert all(e.seq == 10 and e.type == EventType.PRICE_UPDATED for e in latest.values())
        gaps = list(store.latest_per_aggregate(EventType.SEQUENCE_GAP))
        assert len(gaps) == N_AGGS
        assert {e.seq for e in gaps} == {5}
        assert list(store.latest_per_aggregate("NoSuchType")) == []


def test_latest_per_aggregate_looks_past_batches_without_that_type(tmp_path: Path) -> None:
    """The newest batch of a symbol often has no PriceUpdated (a SymbolStale from a scan,
    a CandleClosed): the cache warm-up must still find the symbol's last price."""
    write(
        tmp_path,
        [
            [ev("A@v", 1, T0), ev("B@v", 1, T0)],
            [ev("A@v", 2, T0 + S), ev("B@v", 2, T0 + S)],
            [ev("A@v", 3, T0 + 2 * S, EventType.SYMBOL_STALE)],
        ],
        parts=1,
    )
    with EventStore(tmp_path) as store:
        latest = {e.aggregate: e.seq for e in store.latest_per_aggregate(EventType.PRICE_UPDATED)}
        stale = {e.aggregate: e.seq for e in store.latest_per_aggregate(EventType.SYMBOL_STALE)}
    assert latest == {"A@v": 2, "B@v": 2}
    assert stale == {"A@v": 3}


def test_stats(store_dir: Path) -> None:
    with EventStore(store_dir) as store:
        stats = store.stats()
    assert stats["events"] == N_AGGS * 10 + 1
    assert stats["types"] == {
        EventType.PRICE_UPDATED: N_AGGS * 9, EventType.SEQUENCE_GAP: N_AGGS, EventType.DEAD_LETTER: 1,
    }  # fmt: skip
    parts = stats["partitions"]
    assert isinstance(parts, list)
    assert len(parts) == PARTS
    assert sum(p["events"] for p in parts) == N_AGGS * 10 + 1
    assert sum(p["aggregates"] for p in parts) == N_AGGS + 1
    non_empty = [p for p in parts if p["events"]]
    assert all(1 <= p["batches"] <= 4 for p in non_empty)
    assert min(p["min_ts"] for p in non_empty) == T0 + S
    assert max(p["max_ts"] for p in non_empty) == T0 + 10 * S + N_AGGS - 1
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
        assert [e.seq for e in store.query().events] == [1, 2]
    part.close()
