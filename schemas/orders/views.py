"""Read models of orders and positions as pure folds of order events (plain Python).

* :class:`OrderView` — one order: status, filled quantity, average fill price, fees and
  every fill; :func:`fold_order` folds its event-log events in ``seq`` order.
* :class:`Position` — one account and symbol: signed quantity, cost basis, average cost
  and realized PnL (average-cost method, fees deducted), from its ``TradeExecuted``
  events; :func:`apply_fill` folds one execution. Positions fold executions in
  **canonical order** (event time, then order id and seq), so the result does not depend on the
  order in which the log's partitions are read.

Everything is exact: quantities, prices and fees are units of 1e-9, notionals, costs and
PnL units of 1e-18 (:mod:`ticktape.schemas.orders.fixed`); the only rounding is the cost
basis removed by a partial close (half to even). Views render as JSON-friendly dicts with
exact decimal text (:meth:`OrderView.as_dict`, :meth:`Position.as_dict`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from ticktape.schemas.orders import events as ev
from ticktape.schemas.orders import machine
from ticktape.schemas.orders.fixed import SCALE, SCALE2, div_round, format_fixed
from ticktape.schemas.records import Event


class Fill(msgspec.Struct, frozen=True, gc=False):
    trade_id: str
    ts: int
    quantity: int
    price: int
    fee: int
    liquidity: str


class OrderView(msgspec.Struct, kw_only=True, gc=False):
    order_id: str
    account: str = ""
    symbol: str = ""
    venue: str = ""
    side: str = ""
    order_type: str = ""
    time_in_force: str = ""
    client_order_id: str = ""
    quantity: int = 0
    price: int = 0
    status: str = ""
    filled: int = 0
    notional: int = 0  # sum of fill price x quantity, units of 1e-18
    fees: int = 0
    reason: str = ""
    created_ts: int = 0
    updated_ts: int = 0
    seq: int = 0
    fills: list[Fill] = msgspec.field(default_factory=list)

    @property
    def avg_price(self) -> int | None:
        """Average fill price (units of 1e-9, half to even), None before the first fill."""
        return div_round(self.notional, self.filled) if self.filled else None

    @property
    def open(self) -> bool:
        return self.status in machine.LIVE

    def as_dict(self) -> dict[str, Any]:
        avg = self.avg_price
        return {
            "order_id": self.order_id, "account": self.account, "symbol": self.symbol, "venue": self.venue,
            "side": self.side, "order_type": self.order_type, "time_in_force": self.time_in_force,
            "client_order_id": self.client_order_id, "quantity": format_fixed(self.quantity),
            "price": format_fixed(self.price) if self.order_type == ev.LIMIT else None, "status": self.status,
            "filled": format_fixed(self.filled), "remaining": format_fixed(self.quantity - self.filled),
            "avg_price": format_fixed(avg) if avg is not None else None, "fees": format_fixed(self.fees),
            "reason": self.reason, "created_ts": self.created_ts, "updated_ts": self.updated_ts, "seq": self.seq,
            "fills": [
                {"trade_id": f.trade_id, "ts": f.ts, "quantity": format_fixed(f.quantity),
                 "price": format_fixed(f.price), "fee": format_fixed(f.fee), "liquidity": f.liquidity}
                for f in self.fills
            ],
        }  # fmt: skip


def apply_order(view: OrderView, event: Event) -> ev.OrderEvent:
    """Fold one event of the order's aggregate into ``view`` (in ``seq`` order); returns
    the decoded event record."""
    rec = ev.event_record(event.payload)
    view.seq = event.seq
    view.updated_ts = rec.ts
    if isinstance(rec, ev.OrderSubmitted):
        view.account, view.symbol, view.venue, view.side = rec.account, rec.symbol, rec.venue, rec.side
        view.order_type, view.time_in_force, view.client_order_id = (
            rec.order_type,
            rec.time_in_force,
            rec.client_order_id,
        )
        view.quantity, view.price, view.created_ts = rec.quantity, rec.price, rec.ts
        view.status = machine.PENDING
    elif isinstance(rec, ev.OrderAccepted):
        view.status = machine.OPEN
    elif isinstance(rec, ev.OrderRejected):
        view.status, view.reason = machine.REJECTED, rec.reason
    elif isinstance(rec, ev.OrderCancelled):
        view.status, view.reason = machine.CANCELLED, rec.reason
    elif isinstance(rec, ev.OrderExpired):
        view.status = machine.EXPIRED
    elif isinstance(rec, ev.TradeExecuted):
        view.fills.append(Fill(rec.trade_id, rec.ts, rec.quantity, rec.price, rec.fee, rec.liquidity))
        view.filled += rec.quantity
        view.notional += rec.quantity * rec.price
        view.fees += rec.fee
    elif isinstance(rec, ev.OrderFilled):
        view.status = machine.FILLED
    elif isinstance(rec, ev.OrderPartiallyFilled):
        view.status = machine.PARTIAL
    return rec


def fold_order(order_id: str, events: Iterable[Event]) -> OrderView:
    """The view of ``order_id`` after ``events`` (its aggregate's events, ``seq`` order)."""
    view = OrderView(order_id=order_id)
    for e in events:
        apply_order(view, e)
    return view


class Position(msgspec.Struct, kw_only=True, gc=False):
    """One account's position in one symbol (see the module doc for units)."""

    account: str
    symbol: str
    venue: str = ""
    quantity: int = 0  # signed: > 0 long, < 0 short
    cost: int = 0  # signed cost basis of the open quantity, units of 1e-18
    realized: int = 0  # realized PnL net of fees, units of 1e-18
    fees: int = 0
    fills: int = 0
    bought: int = 0
    sold: int = 0
    last_ts: int = 0
    last_event: str = ""

    @property
    def avg_cost(self) -> int | None:
        return div_round(self.cost, self.quantity) if self.quantity else None

    def unrealized(self, mark: int) -> int:
        """PnL of the open quantity marked at ``mark`` (units of 1e-18)."""
        return self.quantity * mark - self.cost

    def as_dict(self) -> dict[str, Any]:
        avg = self.avg_cost
        return {
            "account": self.account, "symbol": self.symbol, "venue": self.venue,
            "quantity": format_fixed(self.quantity), "avg_cost": format_fixed(avg) if avg is not None else None,
            "cost": format_fixed(self.cost, SCALE2), "realized_pnl": format_fixed(self.realized, SCALE2),
            "fees": format_fixed(self.fees), "fills": self.fills, "bought": format_fixed(self.bought),
            "sold": format_fixed(self.sold), "last_ts": self.last_ts,
        }  # fmt: skip


def apply_fill(pos: Position, trade: ev.TradeExecuted, key: str) -> None:
    """Fold one execution into ``pos`` (average-cost method; the fee is deducted from
    realized PnL). Callers keep canonical order: ``(trade.ts, key)`` ascending (``key``: the
    execution's tie-break, see ``ticktape.sinks.projections.projector.fill_key``)."""
    qty = trade.quantity if trade.side == "buy" else -trade.quantity
    price = trade.price
    q, cost = pos.quantity, pos.cost
    if q == 0 or (q > 0) == (qty > 0):
        q, cost = q + qty, cost + qty * price
    else:
        closing = min(abs(qty), abs(q))
        removed = div_round(cost * closing, abs(q))  # the cost basis of the closed part
        sign = 1 if q > 0 else -1
        pos.realized += sign * closing * price - removed
        q, cost = q + sign * -closing, cost - removed
        rest = abs(qty) - closing
        if rest:  # the fill flips the position: the rest opens at this price
            opened = rest if qty > 0 else -rest
            q, cost = q + opened, cost + opened * price
    pos.quantity, pos.cost = q, cost
    pos.realized -= trade.fee * SCALE
    pos.fees += trade.fee
    pos.fills += 1
    if trade.side == "buy":
        pos.bought += trade.quantity
    else:
        pos.sold += trade.quantity
    if trade.venue:
        pos.venue = trade.venue
    pos.last_ts, pos.last_event = trade.ts, key


_pos_enc = msgspec.json.Encoder()
_pos_dec = msgspec.json.Decoder(Position)


def encode_position(pos: Position) -> bytes:
    return _pos_enc.encode(pos)


def decode_position(blob: bytes | str) -> Position:
    return _pos_dec.decode(blob)
