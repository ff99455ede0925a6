"""The paced synthetic source's schedule and backlog metrics, and LatencyBook's windows."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime

import numpy as np

from tests.support.clock import FakeClock
from ticktape.connectors.synthetic.feed import SyntheticConfig, SyntheticSource
from ticktape.connectors.synthetic.pacing import MAX_WAIT_S, Pacer
from ticktape.infra.observability.latency import LatencyBook
from ticktape.infra.observability.metrics import RunStats
from ticktape.schemas.durations import Duration

MS = 1_000_000


def test_pacer_emits_what_is_due_and_counts_the_rest_as_backlog() -> None:
    pacer = Pacer(step_ns=MS, max_batch=50)  # 1000 msgs/s
    pacer.next_at -= 0.2  # 200 ms behind schedule: ~200 messages due
    n, first_due_ns = pacer.take()
    assert n == 50  # at most one batch per poll
    assert 195 * MS <= time.time_ns() - first_due_ns < 1000 * MS  # due ~200 ms ago
    assert 140 <= pacer.backlog(left=10_000) <= 160
    assert pacer.backlog(left=7) == 7  # never more than the feed still has
    assert pacer.batches == 1
    assert pacer.offered_rate == 1000.0
    assert pacer.wake_at() <= datetime.now(UTC)  # behind: poll again at once


def test_pacer_waits_for_the_next_due_message() -> None:
    pacer = Pacer(step_ns=10 * MS, max_batch=50)
    n, _ = pacer.take()
    assert n == 1  # the first message is due now
    assert pacer.backlog(left=100) == 0
    wait = (pacer.wake_at() - datetime.now(UTC)).total_seconds()
    assert 0.0 < wait <= 0.011  # when the next one is due
    slow = Pacer(step_ns=10_000 * MS, max_batch=50)  # 0.1 msgs/s
    slow.take()
    assert (slow.wake_at() - datetime.now(UTC)).total_seconds() <= MAX_WAIT_S


def _source(stats: RunStats | None, pace: bool = True, clock: FakeClock | None = None) -> SyntheticSource:
    cfg = SyntheticConfig(symbols=4, rate=1000.0, duration=Duration.parse("10s"), partitions=2)
    return SyntheticSource(cfg, pace=pace, batch_size=100, stats=stats, clock=clock or FakeClock())


def test_paced_source_exports_backlog_and_offered_rate() -> None:
    stats = RunStats()
    source = _source(stats)  # its clock stands still: only the schedule moves
    parts = [source.build_part("source", p, None) for p in source.list_parts()]
    parts[0].pacer.next_at -= 0.1  # type: ignore[attr-defined]  # partition 0 is 100 ms behind
    families = {f.name: f for collect in stats.collectors for f in collect()}
    backlog = {s.labels["partition"]: s.value for s in families["ticktape_source_backlog_messages"].samples}
    offered = {s.labels["partition"]: s.value for s in families["ticktape_source_offered_rate"].samples}
    assert offered == {"synthetic/0": 500.0, "synthetic/1": 500.0}
    assert backlog["synthetic/0"] == 50
    assert backlog["synthetic/1"] == 0
    assert source.backlog() == {"synthetic/0": 50, "synthetic/1": 0}
    (batch,) = parts[0].next_batch()
    assert batch.n_read == 51  # what was due, and the next one (less than a step away)
    ticks = sorted(batch.ticks, key=lambda t: t.ts_event)
    gaps = {b.ts_event - a.ts_event for a, b in itertools.pairwise(ticks)}
    assert gaps <= {2 * MS}  # event times are the due times, 1/500 s apart
    assert 95 * MS <= ticks[-1].ts_recv - ticks[0].ts_event < 1000 * MS


def test_unpaced_source_registers_no_metrics() -> None:
    stats = RunStats()
    source = _source(stats, pace=False)
    source.build_part("source", "synthetic/0", None)
    assert stats.collectors == []
    assert source.backlog() == {}


def test_latency_window_reset_keeps_every_sample_of_the_interval() -> None:
    book = LatencyBook(window=10)
    book.record("recv_to_sink", np.arange(5) + 100, np.zeros(5))
    book.reset_window()
    book.record("recv_to_sink", np.arange(8), np.zeros(8))
    data, lost = book.window("recv_to_sink")
    assert data.tolist() == list(range(8))
    assert lost == 0
    book.record("recv_to_sink", np.arange(8, 12), np.zeros(4))  # 12 samples > ring of 10
    data, lost = book.window("recv_to_sink")
    assert data.tolist() == list(range(2, 12))  # oldest first
    assert lost == 2
    assert book.stages["recv_to_sink"].n == 17  # Prometheus counts are not reset
