"""The keyed order step: accounting, dead letters with their rule, batching independence."""

from __future__ import annotations

import msgspec

from tests.support.orders import order_messages, process
from ticktape.schemas.records import DLCode, EventType


def test_every_message_is_accounted_for_and_illegal_ones_name_their_rule() -> None:
    raws = order_messages(400, seed=11, faults=0.3)
    events, outs, read = process(raws)
    accepted = sum(t.accepted for o in outs for t in o.counts.values())
    rejected = sum(t.rejected for o in outs for t in o.counts.values())
    duplicate = sum(t.duplicate for o in outs for t in o.counts.values())
    undecodable = sum(e.type == EventType.DEAD_LETTER and e.aggregate.startswith("source:") for e in events)
    assert read == accepted + rejected + duplicate + undecodable
    assert rejected
    assert duplicate
    assert undecodable
    dead = [d for o in outs for d in o.dead]
    assert len(dead) == rejected
    assert {d.code for d in dead} == {DLCode.ILLEGAL_TRANSITION}
    rules = {d.message.split("rule `")[1].split("`")[0] for d in dead}
    assert rules >= {"fill-exceeds-quantity", "order-not-submitted"}
    # the dead letters are events of the order's aggregate, with that aggregate's next seq
    order_dead = [e for e in events if e.type == EventType.DEAD_LETTER and e.aggregate.startswith("order:")]
    assert len(order_dead) == rejected
    seqs: dict[str, list[int]] = {}
    for e in events:
        seqs.setdefault(e.aggregate, []).append(e.seq)
    assert all(s == list(range(1, len(s) + 1)) for s in seqs.values())
    assert msgspec.json.decode(order_dead[0].payload)["code"] == DLCode.ILLEGAL_TRANSITION


def test_the_output_does_not_depend_on_batching() -> None:
    raws = order_messages(200, seed=2, faults=0.2)
    one, _, _ = process(raws, batch=1)
    big, _, _ = process(raws, batch=500)
    key = lambda e: (e.aggregate, e.seq)  # noqa: E731
    assert sorted(one, key=key) == sorted(big, key=key)  # the same events, each aggregate in the same order
    assert len({e.event_id for e in one}) == len(one)  # ids are unique
