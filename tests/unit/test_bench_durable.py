"""recv->durable samples of the latency bench (:mod:`ticktape.infra.bench.durable`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.support.records import T0, event, payload, price_update
from ticktape.infra.bench.durable import DurableLatency, stamped
from ticktape.schemas.records import Event, EventType
from ticktape.sinks.eventlog.sink import EventLogSink


def priced(seq: int, ts_recv: int) -> Event:
    return event(
        type=EventType.PRICE_UPDATED, seq=seq, ts_event=T0 + seq,
        payload=payload(price_update(ts_event=T0 + seq, ts_recv=ts_recv, seq=seq)),
    )  # fmt: skip


def test_one_sample_per_price_update_committed_since_the_reset() -> None:
    durable = DurableLatency()
    durable.on_commit([priced(1, T0 + 100)], T0 + 1_000)  # warm-up
    durable.reset_window()
    durable.on_commit([priced(2, T0 + 200), event(seq=3), priced(4, T0 + 400)], T0 + 2_000)
    durable.on_commit([event(seq=5)], T0 + 3_000)  # no price update: no sample
    durable.on_commit([priced(6, T0 + 600)], T0 + 4_000)
    assert durable.window().tolist() == [1_800, 1_600, 3_400]
    assert durable.undecodable == 0


def test_an_unreadable_payload_is_counted_not_sampled() -> None:
    durable = DurableLatency()
    bad = event(type=EventType.PRICE_UPDATED, seq=1, payload=b"not json")
    durable.on_commit([bad, priced(2, T0)], T0 + 5)
    assert durable.window().tolist() == [5]
    assert durable.undecodable == 1
    assert DurableLatency().window().dtype == np.int64  # empty


def test_the_stamped_sink_is_the_wired_sink_with_the_hook(tmp_path: Path) -> None:
    durable = DurableLatency()
    base = EventLogSink(tmp_path, 4, synchronous="FULL", snapshot_every=7, durable_snapshots=False)
    sink = stamped(base, durable)
    assert (sink.directory, sink.partitions, sink.synchronous, sink.snapshot_every) == (
        tmp_path,
        4,
        "FULL",
        7,
    )
    part = sink.build_part("events", "1", None)
    part.write_batch([[priced(1, T0)]])
    part.close()  # flushed: committed
    assert durable.window().size == 1
    assert durable.window()[0] > 0
