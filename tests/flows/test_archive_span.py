"""The live flow's event log, archived and deleted locally: queries still see every event
(through the archive), and a backfill from the archive rebuilds the same candles and
cache state as the live run."""

from __future__ import annotations

import msgspec

from tests.support import outputs
from tests.support.flows import config
from ticktape.connectors.memory.messages import MemorySource
from ticktape.connectors.synthetic.feed import SyntheticGenerator
from ticktape.flows import wiring
from ticktape.flows.backfill.run import backfill
from ticktape.flows.live.dataflow import build_flow
from ticktape.flows.runner import run as run_flow
from ticktape.infra.observability.metrics import RunStats
from ticktape.sinks.archive.archiver import archive_all
from ticktape.sinks.cache import embedded as cache_mod
from ticktape.sinks.eventlog.store import EventStore


def live_run(data_dir):
    """A recorded stream with duplicates, out-of-order and late trades, through the live
    flow with the embedded outputs."""
    cfg = config(data_dir, archive={"enabled": False, "store": str(data_dir / "archive"), "retention": "0s"})
    gen = SyntheticGenerator(
        0, 1, 20, 100.0, 20_000, seed=9, duplicate_rate=0.01, out_of_order_rate=0.02, malformed_rate=0.002
    )
    msgs = gen.take(20_000)
    for i in range(400, len(msgs) - 1000, 400):  # late trades: arrive 10 s (1,000 trades) late
        msgs.insert(i + 1000, msgs.pop(i))
    stats = RunStats()
    source = MemorySource({"rec/0": msgs}, batch_size=500)
    run_flow(cfg, source=source, outputs=wiring.make_outputs(cfg, stats), stats=stats, serve=False)
    cache_mod.release(wiring.cache_path(cfg))
    return cfg


def test_queries_span_local_and_archived_events(tmp_path):
    cfg = live_run(tmp_path / "live")
    with EventStore(wiring.events_dir(cfg)) as store:
        before = [msgspec.structs.asdict(e) for e in store.iter_events()]
        agg = before[0]["aggregate"]
        agg_before = [e.event_id for e in store.replay(agg)]
    archive = wiring.archive_config(cfg)
    archive_all(cfg.data_path, archive, force=True)
    archive_all(cfg.data_path, archive, force=True)  # retention 0: the next pass deletes bodies
    with EventStore(wiring.events_dir(cfg)) as local_only:
        assert list(local_only.iter_events()) == []  # every body is gone locally
    enabled = msgspec.structs.replace(cfg, archive=msgspec.structs.replace(cfg.archive, enabled=True))
    with wiring.open_event_store(enabled) as store:
        after = [msgspec.structs.asdict(e) for e in store.iter_events()]
        assert after == before
        assert [e.event_id for e in store.replay(agg)] == agg_before
        page = store.query(type="DeadLettered", limit=1000)
        assert page.events
        assert {e.event_id for e in page.events} == {
            e["event_id"] for e in before if e["type"] == "DeadLettered"
        }


def test_backfill_from_the_archive_equals_the_live_run(tmp_path):
    cfg = live_run(tmp_path / "live")
    archive = wiring.archive_config(cfg)
    archive_all(cfg.data_path, archive, force=True)
    live = outputs.all_outputs(cfg.data_path)
    assert any(c[17] > 0 for c in live["candles"])  # the recorded stream has revisions
    rebuilt = config(tmp_path / "rebuilt", archive={"prefix": archive.prefix})
    report = backfill(rebuilt, archive=archive.store)
    assert report.rows > 15_000
    got = outputs.all_outputs(rebuilt.data_path)
    assert got["candles"] == live["candles"]  # incl. revision numbers: same arrival order
    candle_keys = {k: v for k, v in live["cache"].items() if k.startswith("history/")}
    assert {k: v for k, v in got["cache"].items() if k.startswith("history/")} == candle_keys
    assert report.path == "fast"


def test_flow_building_reads_archive_config(tmp_path):
    cfg = config(tmp_path, archive={"enabled": True})
    outs = wiring.make_outputs(cfg, RunStats())
    archiver = outs.events[0].maintainer(tmp_path / "events" / "part-000.sqlite", 0)  # type: ignore[attr-defined]
    assert archiver.cfg.store == str(tmp_path / "archive")
    archiver.close()
    assert build_flow(cfg, source=MemorySource({"x/0": []}), outputs=outs) is not None


def test_a_backtest_replays_exactly_the_archived_accepted_trades(tmp_path):
    from ticktape.flows.backtest.run import run_backtest

    cfg = live_run(tmp_path / "live")
    with EventStore(wiring.events_dir(cfg)) as store:
        accepted = sum(1 for _ in store.iter_events(type="PriceUpdated"))
    archive = wiring.archive_config(cfg)
    archive_all(cfg.data_path, archive, force=True)
    bt = config(
        cfg.data_path,
        archive={"store": archive.store, "prefix": archive.prefix},
        backtest={"archive": True, "strategy": "ticktape.flows.backtest.examples:ZScoreMeanReversion",
                  "params": {"window": 50, "quantity": 1}},
    )  # fmt: skip
    report = run_backtest(bt, tmp_path / "bt", chart=False).report
    assert report["inputs"]["events"] == accepted > 15_000
    assert len(report["inputs"]["symbols"]) == 20
    assert report["fills"] > 0
    assert report["order_dead_letters"] == 0
