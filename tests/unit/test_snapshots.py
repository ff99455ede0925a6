"""ticktape.sinks.eventlog.snapshots (the snapshotter) and EventStore.replay/state_at (ticktape.sinks.eventlog.pointintime)."""

from __future__ import annotations

import random
import sqlite3
import tempfile
from pathlib import Path

import msgspec
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.events import T0, S, aggregate_events, make_log, price, write_log
from ticktape.schemas.records import Event
from ticktape.sinks.eventlog.log import EventLogPartition, partition_path
from ticktape.sinks.eventlog.pointintime import full_fold
from ticktape.sinks.eventlog.snapshots import Snapshotter, snapshot_all
from ticktape.sinks.eventlog.state import AggregateState, decode_state, fold
from ticktape.sinks.eventlog.store import EventStore

SIZES = {"A-USD@v": 530, "B-USD@v": 260, "C-USD@w": 45, "source:trades/0": 120}


def by_agg(events: list[Event]) -> dict[str, list[Event]]:
    out: dict[str, list[Event]] = {}
    for e in events:
        out.setdefault(e.aggregate, []).append(e)
    return out


def expected_at(events: list[Event], agg: str, at: int) -> AggregateState:
    return fold((e for e in events if e.ts_event <= at), AggregateState(aggregate=agg))


def snapshot_rows(directory: Path) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for path in sorted(directory.glob("part-*.sqlite")):
        with sqlite3.connect(path) as conn:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'snapshots'").fetchone():
                rows += conn.execute("SELECT * FROM snapshots ORDER BY aggregate, seq").fetchall()
    return rows


def instants(events: list[Event], directory: Path, rng: random.Random) -> list[int]:
    """Before the first event, at/around every snapshot's time, random times, the end."""
    times = sorted(e.ts_event for e in events)
    out = [0, times[0] - 1, times[0], times[-1], times[-1] + 1, 2**62]
    for row in snapshot_rows(directory):
        ts = int(str(row[2]))
        out += [ts - 1, ts, ts + 1]
    out += rng.sample(times, min(40, len(times)))
    return out


@pytest.fixture
def log(tmp_path: Path) -> tuple[Path, list[Event]]:
    return tmp_path, make_log(tmp_path, 7, SIZES, batch=37)


def test_snapshot_every_n_events_of_each_aggregate(log: tuple[Path, list[Event]]) -> None:
    directory, events = log
    results = snapshot_all(directory, every=50)
    assert sum(r.events for r in results.values()) == len(events)
    streams = by_agg(events)
    rows = snapshot_rows(directory)
    assert len(rows) == sum(len(s) // 50 for s in streams.values())
    for agg, seq, ts, _batch, blob, seg_min in rows:
        assert isinstance(agg, str)
        assert isinstance(blob, bytes)
        prefix = [e for e in streams[agg] if e.seq <= int(str(seq))]
        assert len(prefix) % 50 == 0
        assert decode_state(blob) == fold(prefix)
        assert ts == max(e.ts_event for e in prefix)  # the largest event time folded in
        assert seg_min == min(e.ts_event for e in prefix[-50:])


def test_state_at_equals_full_fold_at_many_instants(log: tuple[Path, list[Event]]) -> None:
    directory, events = log
    snapshot_all(directory, every=40)
    rng = random.Random(3)
    with EventStore(directory) as store:
        for agg, stream in by_agg(events).items():
            for at in instants(stream, directory, rng):
                want = expected_at(stream, agg, at)
                assert store.state_at(agg, at) == want, (agg, at)
                assert full_fold(store, agg, at) == want
        assert store.state_at("nobody@nowhere", T0) == AggregateState(aggregate="nobody@nowhere")


def test_before_the_first_event_and_after_the_last(log: tuple[Path, list[Event]]) -> None:
    directory, events = log
    snapshot_all(directory, every=10)
    with EventStore(directory) as store:
        empty = store.state_at("A-USD@v", T0 - 10**12)
        assert empty == AggregateState(aggregate="A-USD@v")
        assert store.state_at("A-USD@v", 2**62) == fold(by_agg(events)["A-USD@v"])


def test_snapshots_are_used_and_read_fewer_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    agg = "A-USD@v"
    events = [price(agg, seq, T0 + seq * S, 100.0, 1.0, seq) for seq in range(1, 2001)]
    write_log(tmp_path, events, parts=1, batch=20)
    snapshot_all(tmp_path, every=100)
    with EventStore(tmp_path) as store:
        reads: list[int] = []
        batch = store.batch_events
        monkeypatch.setattr(
            store, "batch_events", lambda path, batch_id: reads.append(batch_id) or batch(path, batch_id)
        )
        at = T0 + 1234 * S
        assert store.state_at(agg, at) == expected_at(events, agg, at)
        assert sorted(reads) == [60, 61, 62]  # from the snapshot at seq 1200 (batch 60) on
        reads.clear()
        assert store.state_at(agg, T0) == AggregateState(aggregate=agg)
        assert reads == []  # nothing before the first event: no batch is read
        reads.clear()
        assert full_fold(store, agg, at) == expected_at(events, agg, at)
        assert len(reads) == 100


def test_restart_mid_pass_redoes_it_without_duplicates(
    log: tuple[Path, list[Event]], tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, events = log
    clean = tmp_path_factory.mktemp("clean")
    write_log(clean, events, batch=37)
    snapshot_all(clean, every=25)
    path = partition_path(directory, 0)
    snap = Snapshotter(path, every=25, max_events=60)
    assert snap.run_once().batches > 0
    calls = {"n": 0}
    original = Snapshotter._head_row

    def crash_once(self: Snapshotter, agg: str) -> tuple[object, ...]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("disk on fire")
        return original(self, agg)

    monkeypatch.setattr(Snapshotter, "_head_row", crash_once)
    with pytest.raises(OSError, match="disk on fire"):
        snap.run_once()
    snap.run_once()  # the same object carries on (it reloaded from the file)
    snap.close()
    monkeypatch.undo()
    again = Snapshotter(path, every=25, max_events=60)  # a new process resumes from the file
    again.run()
    assert again.run() == again.run_once()  # nothing left: empty passes
    again.close()
    snapshot_all(directory, every=25)
    assert snapshot_rows(directory) == snapshot_rows(clean)


def test_incremental_passes_equal_one_pass(tmp_path: Path) -> None:
    rng = random.Random(11)
    events = aggregate_events("A-USD@v", 900, rng)
    one, inc = tmp_path / "one", tmp_path / "inc"
    write_log(one, events, parts=1, batch=50)
    snapshot_all(one, every=30)
    for start in range(0, len(events), 200):  # the log grows between passes
        write_log(inc, events[start : start + 200], parts=1, batch=50)
        snap = Snapshotter(partition_path(inc, 0), every=30, max_events=rng.randint(1, 300))
        snap.run()
        snap.close()
    assert snapshot_rows(inc) == snapshot_rows(one)
    with EventStore(inc) as store:
        assert store.state_at("A-USD@v", 2**62) == fold(events)


def test_maybe_run_is_bounded_and_paced(log: tuple[Path, list[Event]]) -> None:
    directory, _ = log
    snap = Snapshotter(partition_path(directory, 0), every=20, max_events=100, min_interval_s=1.0)
    first = snap.maybe_run(now=0)
    assert 100 <= first.events < 100 + 37  # whole batches, until the budget is reached
    assert snap.maybe_run(now=1).events > 0  # behind: runs again at once
    while snap.maybe_run(now=2).events:
        pass
    assert snap.maybe_run(now=3).batches == 0  # caught up and paced: nothing until 1s later
    snap.close()


def test_two_snapshotters_on_one_file(log: tuple[Path, list[Event]]) -> None:
    directory, events = log
    path = partition_path(directory, 1)
    a, b = Snapshotter(path, every=15, max_events=80), Snapshotter(path, every=15, max_events=80)
    while (a.run_once().batches, b.run_once().batches) != (0, 0):
        pass
    a.close()
    b.close()
    rows = snapshot_rows(directory)
    assert len(rows) == len({(r[0], r[1]) for r in rows})
    for agg, stream in by_agg(events).items():
        with EventStore(directory) as store:
            assert store.state_at(agg, 2**62) == fold(stream)


def test_out_of_order_seq_taints_the_aggregate(tmp_path: Path) -> None:
    agg = "A-USD@v"
    events = [price(agg, seq, T0 + seq * S, 100.0 + seq, 1.0, seq) for seq in range(1, 101)]
    write_log(tmp_path, events[:60], parts=1, batch=10)
    snapshot_all(tmp_path, every=10)
    replayed = price(agg, 30, T0 + 70 * S, 1.0, 1.0, 10_000)  # a different event with a taken seq
    write_log(tmp_path, [replayed, *events[60:]], parts=1, batch=10)
    with EventStore(tmp_path) as store:  # before the snapshotter sees it: no snapshot is used
        got = store.state_at(agg, 2**62)
        assert got == fold(store.replay(agg))
        assert got.price_updates == 101
    snapshot_all(tmp_path, every=10)
    assert snapshot_rows(tmp_path) == []
    with EventStore(tmp_path) as store:
        assert store.stats()["partitions"][0]["tainted"] == 1
        for at in (T0, T0 + 35 * S, T0 + 70 * S, 2**62):
            assert store.state_at(agg, at) == full_fold(store, agg, at)


def test_bodies_compressed_in_place_are_read(tmp_path: Path) -> None:
    events = aggregate_events("A-USD@v", 80, random.Random(3))
    write_log(tmp_path, events, parts=1, batch=10)
    with sqlite3.connect(partition_path(tmp_path, 0)) as conn:
        body = conn.execute("SELECT body FROM batches WHERE id = 2").fetchone()[0]
        packed = zstandard.ZstdCompressor().compress(body)
        conn.execute("UPDATE batches SET body = ?, codec = 'zstd' WHERE id = 2", (packed,))
    snapshot_all(tmp_path, every=5)
    assert len(snapshot_rows(tmp_path)) == 16
    with EventStore(tmp_path) as store:
        assert store.state_at("A-USD@v", 2**62) == fold(events)


def test_unreadable_batch_taints_its_aggregates(tmp_path: Path) -> None:
    events = aggregate_events("A-USD@v", 80, random.Random(2))
    write_log(tmp_path, events, parts=1, batch=10)
    with sqlite3.connect(partition_path(tmp_path, 0)) as conn:
        conn.execute("UPDATE batches SET body = NULL WHERE id = 3")  # archived and deleted
    snapshot_all(tmp_path, every=5)
    assert snapshot_rows(tmp_path) == []
    with EventStore(tmp_path) as store:
        assert store.state_at("A-USD@v", 2**62) == full_fold(store, "A-USD@v", 2**62)


def test_reads_work_on_a_log_that_never_had_a_snapshotter(log: tuple[Path, list[Event]]) -> None:
    directory, events = log
    with EventStore(directory) as store:
        assert store.stats()["snapshots"] == 0
        assert store.state_at("B-USD@v", 2**62) == fold(by_agg(events)["B-USD@v"])
    assert snapshot_rows(directory) == []  # the tables now exist, empty


def test_aggregate_in_several_files_is_folded_from_the_beginning(tmp_path: Path) -> None:
    events = aggregate_events("A-USD@v", 120, random.Random(5))
    for i, chunk in enumerate((events[:70], events[70:])):  # e.g. the partition count changed
        part = EventLogPartition(partition_path(tmp_path, i))
        part.append(chunk)
        part.close()
    snapshot_all(tmp_path, every=10)
    with EventStore(tmp_path) as store:
        assert [e.seq for e in store.replay("A-USD@v")] == list(range(1, 121))
        for at in (T0, T0 + 20 * S, 2**62):
            assert store.state_at("A-USD@v", at) == expected_at(events, "A-USD@v", at)


def test_replay_since_seq_and_until(log: tuple[Path, list[Event]]) -> None:
    directory, events = log
    stream = by_agg(events)["A-USD@v"]
    cut = T0 + 60 * S
    with EventStore(directory) as store:
        got = [msgspec.structs.replace(e, ts_logged=0) for e in store.replay("A-USD@v")]
        assert got == stream
        assert all(e.ts_logged > 0 for e in store.replay("A-USD@v", since_seq=520))
        assert [e.seq for e in store.replay("A-USD@v", since_seq=500)] == list(range(500, 531))
        assert [e.event_id for e in store.replay("A-USD@v", until=cut)] == [
            e.event_id for e in stream if e.ts_event < cut
        ]
        assert list(store.replay("nobody@nowhere")) == []


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    sizes=st.lists(st.integers(1, 150), min_size=1, max_size=3),
    every=st.integers(1, 60),
    batch=st.integers(1, 80),
    budget=st.integers(1, 200),
    probes=st.lists(st.integers(-5 * S, 400 * S), min_size=1, max_size=8),
)
def test_property_state_at_equals_full_fold(
    seed: int, sizes: list[int], every: int, batch: int, budget: int, probes: list[int]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        events = make_log(directory, seed, {f"S{i}-USD@v": n for i, n in enumerate(sizes)}, batch=batch)
        for path in sorted(directory.glob("part-*.sqlite")):
            snap = Snapshotter(path, every=every, max_events=budget)
            snap.run_once()  # partly snapshotted: the rest is an unprocessed tail
            snap.run_once()
            snap.close()
        streams = by_agg(events)
        with EventStore(directory) as store:
            for agg, stream in streams.items():
                for offset in probes:
                    at = T0 + offset
                    assert store.state_at(agg, at) == expected_at(stream, agg, at)
