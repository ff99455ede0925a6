"""The orders flow on Bytewax: files in, event log, dead letters and projections out."""

from __future__ import annotations

from pathlib import Path

from tests.support import outputs
from tests.support.flows import config
from tests.support.orders import order_messages, order_outputs, process, write_messages
from ticktape.flows.orders.run import run_orders
from ticktape.sinks.projections.open import open_store
from ticktape.sinks.projections.projector import Projector


def test_the_flow_logs_exactly_what_the_state_machine_decides_and_projects_it(tmp_path: Path) -> None:
    raws = order_messages(500, seed=8, faults=0.2)
    path = write_messages(tmp_path / "orders.jsonl", raws)
    cfg = config(tmp_path / "one", orders={"shards": 4, "eventlog_partitions": 2})
    result = run_orders(cfg, files=[path])
    acc = result.stats.accounting()
    assert acc["balanced"]
    assert acc["total"]["read"] == len(raws)
    assert acc["total"]["rejected"] > 0
    assert acc["total"]["duplicate"] > 0
    got = order_outputs(tmp_path / "one")
    # the same events as the state machine alone produces (ids, seqs, payloads)
    events, _outs, _ = process(raws, src="file:orders.jsonl")
    assert len(got["events"]) == len(events)
    assert {row[0] for row in got["events"]} == {e.event_id for e in events}
    assert len(got["dead_letters"]) == acc["total"]["rejected"]
    # projections maintained while the flow ran equal a rebuild from the log
    with open_store(str(tmp_path / "rebuilt.sqlite"), tmp_path) as store:
        Projector(store).rebuild(tmp_path / "one" / "orders" / "events")
        from tests.support.orders import projections

        assert projections(store.dump()) == got["projections"]
    assert len(got["projections"]["proj_orders"]) == len(
        {e.aggregate for e in events if e.type == "OrderSubmitted"}
    )


def test_two_workers_and_a_rerun_give_the_same_outputs(tmp_path: Path) -> None:
    raws = order_messages(300, seed=9, faults=0.2)
    path = write_messages(tmp_path / "orders.jsonl", raws)
    run_orders(config(tmp_path / "one", orders={"shards": 4}), files=[path])
    served = config(tmp_path / "two", orders={"shards": 4}, metrics={"enabled": True, "port": 0})
    run_orders(served, files=[path], workers=2)  # with its metrics endpoint up
    one, two = order_outputs(tmp_path / "one"), order_outputs(tmp_path / "two")
    assert one == two, outputs.diff_summary(one, two)
    run_orders(config(tmp_path / "one", orders={"shards": 4}), files=[path])  # a replay into the same outputs
    assert order_outputs(tmp_path / "one") == one
