"""The event log's optional commit hook (``EventLogPartition.on_commit``): what the bench's
recv->durable latency is stamped with."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.records import T0, event
from ticktape.schemas.records import Event
from ticktape.sinks.eventlog.log import EventLogPartition


@pytest.mark.parametrize("background", [False, True])
def test_the_hook_sees_each_commit_with_the_events_it_stored(tmp_path: Path, background: bool) -> None:
    commits: list[tuple[list[str], int]] = []
    flushed: list[int] = []

    def hook(events: list[Event], committed_ns: int) -> None:
        commits.append(([e.event_id for e in events], committed_ns))

    log = EventLogPartition(tmp_path / "part-000.sqlite", background=background, on_commit=hook)
    first = [event(seq=i, ts_event=T0 + i) for i in (1, 2)]
    log.append(first)
    log.flush()
    flushed.append(len(commits))
    log.append([first[1], event(seq=3, ts_event=T0 + 3)])  # one already stored
    log.append(first)  # all stored: nothing committed, no call
    log.close()
    assert flushed == [1]  # the commit was reported before flush() returned
    assert [ids for ids, _ in commits] == [
        [first[0].event_id, first[1].event_id],
        [event(seq=3, ts_event=T0 + 3).event_id],
    ]
    assert all(ns > 0 for _, ns in commits)
    assert commits[0][1] <= commits[1][1]


def test_without_a_hook_nothing_changes(tmp_path: Path) -> None:
    log = EventLogPartition(tmp_path / "part-000.sqlite")
    assert log.on_commit is None
    log.append([event(seq=1)])
    log.close()
    assert log.rows_written == 1
