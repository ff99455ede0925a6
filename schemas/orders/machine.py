"""The order state machine: which order event may follow which (plain Python).

:func:`step` takes an order's state (``None`` before its first event) and one incoming
record, and returns the events to append to the order's aggregate, or raises:

* :class:`Duplicate` when the record was already applied (same identity, same content):
  the identity is the event type, or ``fill:<trade_id>`` for an execution, so a
  ``TradeExecuted`` and an ``OrderFilled`` reporting the same trade are one fill;
* :class:`TransitionError` (a dead letter, code ``ILLEGAL_TRANSITION``) naming the rule
  it broke, one of :data:`RULES`.

Lifecycle::

    (none) --OrderSubmitted--> pending --OrderAccepted--> accepted --fill--> partially_filled
    pending --OrderRejected--> rejected                    accepted|partially_filled --fill--> filled
    pending|accepted|partially_filled --OrderCancelled--> cancelled / --OrderExpired--> expired

A fill (``TradeExecuted``, ``OrderPartiallyFilled`` or ``OrderFilled`` in) always becomes
two events: ``TradeExecuted`` (the execution, with the order's account, symbol, side and
venue) then ``OrderPartiallyFilled`` or ``OrderFilled`` (the order's cumulative and
remaining quantity), whichever the arithmetic says. Guarantee: the state after a
sequence of records depends only on that sequence; :meth:`OrderState.snapshot` /
:meth:`OrderState.restore` round-trip it exactly.
"""

from __future__ import annotations

from typing import Final
from zlib import crc32

import msgspec

from ticktape.schemas.errors import RejectError
from ticktape.schemas.ids import event_id
from ticktape.schemas.orders import events as ev
from ticktape.schemas.orders.events import OrderEvent
from ticktape.schemas.orders.fixed import format_fixed
from ticktape.schemas.records import DLCode, Event

PENDING: Final = "pending"
OPEN: Final = "accepted"
PARTIAL: Final = "partially_filled"
FILLED: Final = "filled"
CANCELLED: Final = "cancelled"
EXPIRED: Final = "expired"
REJECTED: Final = "rejected"
TERMINAL: Final = frozenset((FILLED, CANCELLED, EXPIRED, REJECTED))
LIVE: Final = frozenset((PENDING, OPEN, PARTIAL))

#: The rules an illegal event can break (stable names: they appear in dead letters).
RULES: Final = {
    "order-not-submitted": "the first event of an order must be OrderSubmitted",
    "after-terminal": "nothing may follow a terminal state (filled, cancelled, expired, rejected)",
    "accept-not-pending": "OrderAccepted only follows OrderSubmitted",
    "reject-not-pending": "OrderRejected only follows OrderSubmitted (before OrderAccepted)",
    "fill-before-accept": "a fill needs an accepted order",
    "fill-exceeds-quantity": "fills never exceed the order quantity",
    "fill-beyond-limit": "a limit order fills at its limit price or better",
    "filled-not-complete": "OrderFilled must complete the order quantity",
    "partial-fill-completes": "OrderPartiallyFilled must leave quantity open",
    "fill-arithmetic": "cumulative/remaining must equal the order's filled and open quantity",
    "time-goes-back": "an order's events never go back in event time",
    "conflicting-duplicate": "an event with the identity of an applied one must have its content",
}


_msgpack = msgspec.msgpack.Encoder().encode


class TransitionError(RejectError):
    """An event the order's state does not allow; ``rule`` is a key of :data:`RULES`."""

    def __init__(self, rule: str, got: object) -> None:
        self.rule = rule
        super().__init__(DLCode.ILLEGAL_TRANSITION, "type", f"rule `{rule}`: {RULES[rule]}", got)


class Duplicate(Exception):  # noqa: N818 - an outcome, not a failure
    """The record was already applied to this order (at-least-once input)."""


class OrderState(msgspec.Struct, gc=False):
    """What the state machine keeps per order (also the keyed step's resume state)."""

    order_id: str
    account: str = ""
    symbol: str = ""
    venue: str = ""
    side: str = ""
    order_type: str = ""
    quantity: int = 0
    price: int = 0
    status: str = ""
    filled: int = 0
    seq: int = 0
    last_ts: int = 0
    seen: dict[str, int] = msgspec.field(default_factory=dict)

    @property
    def aggregate(self) -> str:
        return ev.order_aggregate(self.order_id)


def _identity(record: OrderEvent) -> tuple[str, int]:
    """(identity, content digest) of ``record``: fills by trade id, others by type."""
    if isinstance(record, (ev.TradeExecuted, ev.OrderPartiallyFilled)):
        body = f"{record.ts}|{record.quantity}|{record.price}|{record.fee}|{record.liquidity}".encode()
        return f"fill:{record.trade_id}", crc32(body)
    return type(record).__name__, crc32(_msgpack(record))


def step(state: OrderState | None, record: OrderEvent) -> tuple[OrderState, list[OrderEvent]]:
    """Apply ``record``; the new state and the events to append (see the module doc).
    ``state`` is updated in place when given."""
    key, digest = _identity(record)
    if state is None:
        if not isinstance(record, ev.OrderSubmitted):
            raise TransitionError(
                "order-not-submitted", f"{ev.type_of(record)} of unknown order {record.order_id!r}"
            )
        state = OrderState(
            order_id=record.order_id, account=record.account, symbol=record.symbol, venue=record.venue,
            side=record.side, order_type=record.order_type, quantity=record.quantity, price=record.price,
        )  # fmt: skip
    else:
        seen = state.seen.get(key)
        if seen is not None:
            if seen == digest:
                raise Duplicate(key)
            raise TransitionError(
                "conflicting-duplicate", f"{key} of order {state.order_id!r} with other content"
            )
        if state.status in TERMINAL:
            raise TransitionError(
                "after-terminal", f"{ev.type_of(record)} after the order was {state.status}"
            )
    if record.ts < state.last_ts:
        raise TransitionError("time-goes-back", f"ts {record.ts} < the order's last event at {state.last_ts}")
    out = _apply(state, record)
    state.seen[key] = digest
    state.last_ts = record.ts
    return state, out


def _apply(state: OrderState, record: OrderEvent) -> list[OrderEvent]:
    status = state.status
    if isinstance(record, ev.OrderSubmitted):
        state.status = PENDING
        return [record]
    if isinstance(record, ev.OrderAccepted):
        if status != PENDING:
            raise TransitionError("accept-not-pending", f"OrderAccepted when the order is {status}")
        state.status = OPEN
        return [record]
    if isinstance(record, ev.OrderRejected):
        if status != PENDING:
            raise TransitionError("reject-not-pending", f"OrderRejected when the order is {status}")
        state.status = REJECTED
        return [record]
    if isinstance(record, (ev.OrderCancelled, ev.OrderExpired)):
        state.status = CANCELLED if isinstance(record, ev.OrderCancelled) else EXPIRED
        return [record]
    return _fill(state, record)


def _fill(state: OrderState, record: ev.TradeExecuted | ev.OrderPartiallyFilled) -> list[OrderEvent]:
    if state.status == PENDING:
        raise TransitionError(
            "fill-before-accept", f"a fill of {format_fixed(record.quantity)} before OrderAccepted"
        )
    filled = state.filled + record.quantity
    if filled > state.quantity:
        raise TransitionError(
            "fill-exceeds-quantity",
            f"a fill of {format_fixed(record.quantity)} would make {format_fixed(filled)} of {format_fixed(state.quantity)}",
        )
    if state.order_type == ev.LIMIT and (
        (state.side == "buy" and record.price > state.price)
        or (state.side == "sell" and record.price < state.price)
    ):
        raise TransitionError(
            "fill-beyond-limit",
            f"{state.side} fill at {format_fixed(record.price)}, limit {format_fixed(state.price)}",
        )
    remaining = state.quantity - filled
    if isinstance(record, ev.OrderFilled) and remaining:
        raise TransitionError("filled-not-complete", f"OrderFilled leaves {format_fixed(remaining)} open")
    if (
        isinstance(record, ev.OrderPartiallyFilled)
        and not isinstance(record, ev.OrderFilled)
        and not remaining
    ):
        raise TransitionError("partial-fill-completes", "OrderPartiallyFilled leaves nothing open")
    if isinstance(record, ev.OrderPartiallyFilled) and (
        (record.cumulative >= 0 and record.cumulative != filled)
        or (record.remaining >= 0 and record.remaining != remaining)
    ):
        raise TransitionError(
            "fill-arithmetic",
            f"cumulative {format_fixed(record.cumulative)} / remaining {format_fixed(record.remaining)}, "
            f"expected {format_fixed(filled)} / {format_fixed(remaining)}",
        )
    state.filled = filled
    state.status = PARTIAL if remaining else FILLED
    trade = ev.TradeExecuted(
        order_id=state.order_id, ts=record.ts, trade_id=record.trade_id, quantity=record.quantity,
        price=record.price, fee=record.fee, liquidity=record.liquidity, account=state.account,
        symbol=state.symbol, side=state.side, venue=state.venue,
    )  # fmt: skip
    cls = ev.OrderPartiallyFilled if remaining else ev.OrderFilled
    after = cls(
        order_id=state.order_id, ts=record.ts, trade_id=record.trade_id, quantity=record.quantity,
        price=record.price, fee=record.fee, liquidity=record.liquidity, cumulative=filled, remaining=remaining,
    )  # fmt: skip
    return [trade, after]


def to_events(state: OrderState, records: list[OrderEvent], causation: str) -> list[Event]:
    """Event-log envelopes of ``records`` (just returned by :func:`step` for ``state``):
    the next seqs of the order's aggregate and deterministic ids
    (``event_id(ts, "O", type, order_id, trade_id)``)."""
    out: list[Event] = []
    agg = state.aggregate
    first = state.seq + 1
    for i, rec in enumerate(records):
        typ = ev.type_of(rec)
        trade = getattr(rec, "trade_id", "")
        out.append(
            Event(
                event_id(rec.ts, "O", typ, state.order_id, trade),
                typ,
                agg,
                first + i,
                rec.ts,
                0,
                ev.encode_payload(rec),
                causation,
            )
        )
    state.seq += len(records)
    return out
