"""The backtest report: round-trip trades from the executions, metrics, JSON.

A **round trip** of a symbol starts when its position leaves zero and ends when it is
back at zero (a fill that flips the position ends one and starts the next). Its PnL is
the realized PnL of the average-cost method over its fills, fees included (the same
fold as the positions projection, :func:`ticktape.schemas.orders.views.apply_fill`);
entry and exit prices are the quantity-weighted averages of the fills that grew and
shrank the position. A trip still open at the end is listed with ``exit_ts: null`` and
left out of win rate and profit factor.

The report holds no wall-clock value and no absolute path, so the same inputs and
settings give the same JSON, bit for bit.
"""

from __future__ import annotations

import json
from typing import Any

from ticktape.schemas.orders import events as ev
from ticktape.schemas.orders.fixed import SCALE2, div_round, format_fixed
from ticktape.schemas.orders.views import Position, apply_fill


class _Trip:
    __slots__ = (
        "entry_qty",
        "entry_ts",
        "entry_value",
        "exit_qty",
        "exit_ts",
        "exit_value",
        "fills",
        "pnl",
        "side",
    )

    def __init__(self, side: int, ts: int) -> None:
        self.side, self.entry_ts = side, ts
        self.exit_ts: int | None = None
        self.entry_qty = self.entry_value = self.exit_qty = self.exit_value = self.pnl = 0
        self.fills = 0


def round_trips(
    fills: list[tuple[int, int, int, int, int, int, str, str]], names: list[str]
) -> list[dict[str, Any]]:
    """Round trips from ``(ts, sym, side, qty, price, fee, liquidity, order id)`` fills (in
    execution order)."""
    trips: list[tuple[str, _Trip]] = []
    open_: dict[int, _Trip] = {}
    pos: dict[int, Position] = {}
    for n, (ts, sym, side, qty, price, fee, _liq, oid) in enumerate(fills):
        p = pos.setdefault(sym, Position(account="", symbol=names[sym]))
        before, realized0 = p.quantity, p.realized
        trade = ev.TradeExecuted(order_id=oid, ts=ts, trade_id=str(n), quantity=qty, price=price, fee=fee,
                                 side="buy" if side > 0 else "sell")  # fmt: skip
        apply_fill(p, trade, f"{ts:020d}{n:010d}")
        signed = qty if side > 0 else -qty
        trip = open_.get(sym)
        if trip is None:
            trip = open_[sym] = _Trip(side, ts)
            trips.append((names[sym], trip))
        trip.fills += 1
        trip.pnl += p.realized - realized0
        if before == 0 or (before > 0) == (signed > 0):
            grow, shrink = qty, 0
        else:
            grow, shrink = 0, min(qty, abs(before))
        trip.entry_qty += grow
        trip.entry_value += grow * price
        trip.exit_qty += shrink
        trip.exit_value += shrink * price
        if p.quantity == 0 or (before != 0 and (p.quantity > 0) != (before > 0)):
            trip.exit_ts = ts
            del open_[sym]
            if p.quantity != 0:  # flipped: the rest opens the next trip
                nxt = open_[sym] = _Trip(side, ts)
                rest = abs(p.quantity)
                nxt.entry_qty, nxt.entry_value, nxt.fills = rest, rest * price, 1
                trips.append((names[sym], nxt))
    return [_trip_doc(sym, t) for sym, t in trips]


def _trip_doc(symbol: str, t: _Trip) -> dict[str, Any]:
    entry = div_round(t.entry_value, t.entry_qty) if t.entry_qty else None
    exit_ = div_round(t.exit_value, t.exit_qty) if t.exit_qty else None
    basis = t.entry_value  # units of 1e-18
    return {
        "symbol": symbol, "direction": "long" if t.side > 0 else "short", "entry_ts": t.entry_ts,
        "exit_ts": t.exit_ts, "quantity": format_fixed(t.entry_qty),
        "entry_price": format_fixed(entry) if entry is not None else None,
        "exit_price": format_fixed(exit_) if exit_ is not None else None, "fills": t.fills,
        "pnl": format_fixed(t.pnl, SCALE2), "pnl_value": t.pnl / SCALE2,
        "return": (t.pnl / basis) if basis and t.exit_ts is not None else None,
    }  # fmt: skip


def closed_pnls(trips: list[dict[str, Any]]) -> list[float]:
    return [float(t["pnl_value"]) for t in trips if t["exit_ts"] is not None]


def to_json(doc: dict[str, Any]) -> str:
    """Deterministic JSON (sorted keys, floats by repr)."""
    return json.dumps(doc, indent=2, sort_keys=True, allow_nan=False, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, float):
        return None
    raise TypeError(f"not JSON: {type(value).__name__}")
