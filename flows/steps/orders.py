"""The keyed order step: every order's state machine, events with per-order seq.

Unit of parallelism: a *shard* of order ids (``stable_bucket(order_id, shards)``); one
:class:`OrderProcessor` owns the state of every order of its shard. For each input it
applies :func:`ticktape.schemas.orders.machine.step` and returns:

* the events to append to the order's aggregate (``order:<id>``, seq from 1);
* a dead letter (code ``ILLEGAL_TRANSITION`` naming the rule) plus a ``DeadLettered``
  event on the order's aggregate for an illegal event;
* nothing for a duplicate (counted).

The accounting per source partition is ``read = accepted + rejected + duplicate``
(``rejected`` here are illegal transitions; undecodable messages were counted by the
source). Everything is a pure function of the order of inputs per order, so replays,
batch sizes and worker counts do not change the output. Resume state: the processor
pickles itself (``OrderState`` records).
"""

from __future__ import annotations

import msgspec

from ticktape.schemas.decoding import dead_letter_event
from ticktape.schemas.errors import DataError
from ticktape.schemas.ids import event_id
from ticktape.schemas.orders.decoding import OrderInput
from ticktape.schemas.orders.events import encode_payload
from ticktape.schemas.orders.machine import Duplicate, OrderState, step, to_events
from ticktape.schemas.records import DeadLetter, Event, Tally


class OrderOut(msgspec.Struct, gc=False):
    """Everything one batch of one order shard produced."""

    events: list[Event]
    dead: list[DeadLetter]
    counts: dict[str, Tally]

    def is_empty(self) -> bool:
        return not (self.events or self.dead or self.counts)


class OrderProcessor:
    """Per-shard order state machines; :meth:`process` handles inputs in order."""

    def __init__(self) -> None:
        self.orders: dict[str, OrderState] = {}

    def process(self, inputs: list[OrderInput]) -> OrderOut:
        orders = self.orders
        events: list[Event] = []
        dead: list[DeadLetter] = []
        counts: dict[str, Tally] = {}
        for item in inputs:
            rec = item.record
            cnt = counts.get(item.src) or counts.setdefault(item.src, Tally())
            state = orders.get(rec.order_id)
            try:
                state, out = step(state if state is not None and state.status else None, rec)
            except Duplicate:
                cnt.duplicate += 1
                continue
            except DataError as exc:
                dead.append(self._dead(item, exc, events))
                cnt.rejected += 1
                continue
            prior = orders.get(rec.order_id)
            if prior is not None and prior is not state:  # dead letters came first: keep their seq
                state.seq = prior.seq
            orders[rec.order_id] = state
            events.extend(to_events(state, out, f"{item.src}@{item.offset}"))
            cnt.accepted += 1
        return OrderOut(events, dead, counts)

    def _dead(self, item: OrderInput, exc: DataError, events: list[Event]) -> DeadLetter:
        rec = item.record
        dl = DeadLetter(
            event_id(rec.ts, "OX", item.src, item.offset, rec.order_id), exc.code, exc.describe(),
            item.raw or encode_payload(rec),
            item.src, item.offset, item.ts_recv, symbol=getattr(rec, "symbol", ""), ts_kafka=item.ts_kafka,
        )  # fmt: skip
        state = self.orders.get(rec.order_id)
        if state is None:  # an unknown order: its aggregate holds the dead letter (and its seq)
            state = self.orders[rec.order_id] = OrderState(order_id=rec.order_id)
        state.seq += 1
        events.append(dead_letter_event(dl, state.aggregate, state.seq, rec.ts))
        return dl

    def state_of(self, order_id: str) -> OrderState | None:
        state = self.orders.get(order_id)
        return state if state is not None and state.status else None
