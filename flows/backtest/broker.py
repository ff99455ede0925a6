"""The simulated venue: order handling, latency, matching, fees and the account.

Every order a strategy sends becomes the same order events as a live order
(``OrderSubmitted`` when sent, ``OrderAccepted`` or ``OrderRejected`` when it reaches the
venue after ``latency``, ``TradeExecuted`` + ``OrderPartiallyFilled``/``OrderFilled`` per
execution, ``OrderCancelled``), and each goes through the order state machine
(:class:`~ticktape.flows.steps.orders.OrderProcessor`) into :attr:`SimBroker.events`,
which the engine appends to the backtest's event log.

Execution model (documented in the README, "Backtesting"):

* an order is *working* from ``submit time + latency``; it never fills on the event that
  triggered it;
* against **trades**: a market order fills at the trade price moved by ``slippage_bps``
  against it (taker); a limit order fills as maker at its limit when a trade goes
  strictly through it, or as taker at the trade price (capped at the limit) when it was
  marketable on arrival (buy limit >= last price); fills per trade are bounded by
  ``participation`` x the trade's size, shared by the working orders in arrival order,
  so large orders fill partially over several trades;
* against **candles** (when a symbol is replayed from candles): orders working at the
  candle's start fill at its open (market, or a marketable limit: taker) or at the limit
  when the low (buy) / high (sell) goes through it (maker), bounded by ``participation``
  x the candle's volume, at the candle's start time;
* against **quotes**: a market buy fills at the ask (sell: bid) with slippage, a limit
  buy when the ask is at or below the limit, bounded by ``participation`` x the size
  (a symbol replayed with quotes and trades matches against both, in merge order);
* fees: ``maker_fee_bps`` / ``taker_fee_bps`` of the fill's notional, in quote currency;
* time in force: ``GTC`` works until filled or cancelled; ``IOC`` trades what it can on
  its first event after arriving and cancels the rest; ``FOK`` fills in full on that event
  or is cancelled; ``DAY`` expires (``OrderExpired``) at the end of its UTC day.

Everything is exact: quantities and prices are fixed-point ints (market floats are read
at 1e-9), the cash is kept in units of 1e-18.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

import msgspec

from ticktape.flows.steps.orders import OrderProcessor
from ticktape.schemas.errors import TicktapeError
from ticktape.schemas.orders import events as ev
from ticktape.schemas.orders.decoding import OrderInput
from ticktape.schemas.orders.fixed import SCALE, SCALE2, div_round, from_float, parse_fixed
from ticktape.schemas.records import DeadLetter, Event

_NEVER = 1 << 62
_DAY = 86_400_000_000_000
_IMMEDIATE = frozenset(("IOC", "FOK"))
_BPS = 10_000 * SCALE


class StrategyError(TicktapeError):
    """A strategy asked for something impossible (unknown side, quantity <= 0, ...)."""


def fx(price: float) -> int:
    """A market float as units of 1e-9 (exact for prices under 1e6 with <= 9 decimals)."""
    if -1e6 < price < 1e6:
        return round(price * 1e9)
    return from_float(price)


class FillReport(msgspec.Struct, frozen=True):
    """One execution, as :meth:`Strategy.on_fill` sees it (floats for convenience)."""

    order_id: str
    ts: int
    symbol: str
    side: str
    quantity: float
    price: float
    fee: float
    liquidity: str


class Execution(msgspec.Struct, frozen=True):
    """Execution settings (from ``[backtest]``), exact: bps and fractions in 1e-9 units."""

    latency_ns: int = 0
    slippage_bps: int = 0
    maker_fee_bps: int = 0
    taker_fee_bps: int = 0
    participation: int = SCALE
    account: str = "backtest"
    venue: str = "backtest"


class SimOrder:
    __slots__ = (
        "active_at",
        "done",
        "fills",
        "id",
        "limit",
        "market",
        "remaining",
        "side",
        "sym",
        "taker",
        "tif",
    )

    def __init__(
        self, oid: str, sym: int, side: int, qty: int, limit: int, active_at: int, tif: str = "GTC"
    ) -> None:
        self.id, self.sym, self.side, self.remaining, self.limit = oid, sym, side, qty, limit
        self.market = limit == 0
        self.active_at = active_at
        self.taker = self.market
        self.done = False
        self.fills = 0
        self.tif = tif


class SimBroker:
    """The venue and account of one backtest (see the module doc)."""

    def __init__(
        self,
        names: list[str],
        execution: Execution,
        cash: int,
        *,
        on_fill: Callable[[FillReport], Any] | None = None,
    ) -> None:
        self.names = names
        self.index = {n: i for i, n in enumerate(names)}
        self.ex = execution
        self.cash18 = cash * SCALE
        self.initial_cash = cash
        self.pos = [0] * len(names)
        #: How many symbols have a position (kept by every fill: equity needs no scan when 0).
        self.open_positions = 0
        self.last = [0.0] * len(names)
        self.working: list[list[SimOrder]] = [[] for _ in names]
        self.orders: dict[str, SimOrder] = {}
        self.now = 0
        self.next_at = _NEVER
        self._heap: list[tuple[int, int, int, SimOrder]] = []  # (time, seq, kind 0=activate 1=cancel, order)
        self._seq = 0
        self._n = 0
        self.proc = OrderProcessor()
        self.events: list[Event] = []
        self.dead: list[DeadLetter] = []
        self.fills: list[
            tuple[int, int, int, int, int, int, str, str]
        ] = []  # ts, sym, side, qty, price, fee, liq, id
        self.on_fill = on_fill
        #: Called when :attr:`events` holds many events (the runner appends them to the log).
        self.drain: Callable[[], None] | None = None
        self._inputs = 0

    # -- the strategy's side ----------------------------------------------------------
    def submit(self, symbol: str, side: str, quantity: Any, price: Any | None, tif: str = "GTC") -> str:
        if side not in ("buy", "sell"):
            raise StrategyError(f"submit: side must be buy or sell, got {side!r}")
        if tif not in ev.TIME_IN_FORCE:
            raise StrategyError(f"submit: tif must be one of {', '.join(ev.TIME_IN_FORCE)}, got {tif!r}")
        try:
            qty = parse_fixed(quantity)
            limit = parse_fixed(price) if price is not None else 0
        except ValueError as exc:
            raise StrategyError(f"submit: {exc}") from None
        if qty <= 0 or (price is not None and limit <= 0):
            raise StrategyError(f"submit: quantity and price must be > 0, got {quantity!r} / {price!r}")
        self._n += 1
        oid = f"bt-{self._n:08d}"
        sym = self.index.get(symbol, -1)
        self._emit(ev.OrderSubmitted(
            order_id=oid, ts=self.now, account=self.ex.account, symbol=symbol, side=side,
            order_type=ev.LIMIT if limit else ev.MARKET, quantity=qty, price=limit, venue=self.ex.venue,
            time_in_force=tif,
        ))  # fmt: skip
        order = SimOrder(oid, sym, 1 if side == "buy" else -1, qty, limit, self.now + self.ex.latency_ns, tif)
        self.orders[oid] = order
        self._schedule(order.active_at, 0, order)
        if tif == "DAY":  # expires at the end of the UTC day it reaches the venue
            self._schedule((order.active_at // _DAY + 1) * _DAY, 2, order)
        return oid

    def cancel(self, order_id: str) -> bool:
        order = self.orders.get(order_id)
        if order is None or order.done:
            return False
        self._schedule(self.now + self.ex.latency_ns, 1, order)
        return True

    def position(self, symbol: str) -> float:
        sym = self.index.get(symbol)
        return self.pos[sym] / SCALE if sym is not None else 0.0

    def position_units(self, symbol: str) -> int:
        """The signed position in ``symbol`` in units of 1e-9 (exact)."""
        sym = self.index.get(symbol)
        return self.pos[sym] if sym is not None else 0

    def cash(self) -> float:
        return self.cash18 / SCALE2

    def equity18(self) -> int:
        """Cash plus positions marked at their last price, units of 1e-18."""
        total = self.cash18
        if self.open_positions:
            for i, q in enumerate(self.pos):
                if q:
                    total += q * fx(self.last[i])
        return total

    def equity(self) -> float:
        return self.equity18() / SCALE2

    def is_open(self, order_id: str) -> bool:
        order = self.orders.get(order_id)
        return order is not None and not order.done

    def open_orders(self, symbol: str | None = None) -> list[str]:
        return [
            o.id
            for o in self.orders.values()
            if not o.done and (symbol is None or self.names[o.sym] == symbol)
        ]

    # -- the venue's side -------------------------------------------------------------
    def _schedule(self, at: int, kind: int, order: SimOrder) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, kind, order))
        if at < self.next_at:
            self.next_at = at

    def advance(self, ts: int) -> None:
        """Activate and cancel what is due at or before ``ts``."""
        heap = self._heap
        while heap and heap[0][0] <= ts:
            at, _, kind, order = heapq.heappop(heap)
            if order.done:
                continue
            if kind == 0:
                if order.sym < 0:
                    order.done = True
                    self._emit(ev.OrderRejected(order_id=order.id, ts=at, reason="symbol not replayed"))
                    continue
                self._emit(ev.OrderAccepted(order_id=order.id, ts=at))
                last = self.last[order.sym]
                if not order.market and last > 0.0:
                    p = fx(last)
                    order.taker = order.limit >= p if order.side > 0 else order.limit <= p
                self.working[order.sym].append(order)
            elif kind == 1:
                self._close(order, at, "cancel")
            else:
                self._close(order, at, "day", expired=True)
        self.next_at = heap[0][0] if heap else _NEVER

    def _close(self, order: SimOrder, at: int, reason: str, *, expired: bool = False) -> None:
        order.done = True
        if order.sym >= 0 and order in self.working[order.sym]:
            self.working[order.sym].remove(order)
        if expired:
            self._emit(ev.OrderExpired(order_id=order.id, ts=at))
        else:
            self._emit(ev.OrderCancelled(order_id=order.id, ts=at, reason=reason))

    def _take(self, o: SimOrder, ts: int, avail: int, px: int, liq: str) -> int:
        """Fill ``o`` from ``avail`` at ``px`` under its time in force; what it took."""
        q = min(o.remaining, avail)
        if o.tif == "FOK" and q < o.remaining:
            self._close(o, ts, "FOK: not fillable in full")
            return 0
        if q > 0:
            self._fill(o, ts, q, px, liq)
        if o.tif == "IOC" and not o.done:
            self._close(o, ts, "IOC: remainder")
        return q

    def _missed(self, o: SimOrder, ts: int) -> None:
        """``o`` could not trade on its first chance: IOC and FOK end there."""
        if o.tif in _IMMEDIATE:
            self._close(o, ts, f"{o.tif}: nothing to trade with")

    def _slip(self, side: int, price: int) -> int:
        return price + side * div_round(price * self.ex.slippage_bps, _BPS) if self.ex.slippage_bps else price

    def on_trade(self, ts: int, sym: int, price: float, size: float) -> None:
        p = fx(price)
        avail = div_round(fx(size) * self.ex.participation, SCALE)
        for o in list(self.working[sym]):
            if avail <= 0:
                self._missed(o, ts)
                continue
            if o.market:
                px, liq = self._slip(o.side, p), "taker"
            elif o.side > 0:
                if o.taker and p <= o.limit:
                    px, liq = min(self._slip(1, p), o.limit), "taker"
                elif p < o.limit:
                    px, liq = o.limit, "maker"
                else:
                    self._missed(o, ts)
                    continue
            elif o.taker and p >= o.limit:
                px, liq = max(self._slip(-1, p), o.limit), "taker"
            elif p > o.limit:
                px, liq = o.limit, "maker"
            else:
                self._missed(o, ts)
                continue
            avail -= self._take(o, ts, avail, px, liq)

    def on_candle(self, sym: int, start: int, open_: float, high: float, low: float, volume: float) -> None:
        avail = div_round(fx(volume) * self.ex.participation, SCALE)
        op = fx(open_)
        for o in list(self.working[sym]):
            if o.active_at > start:
                continue
            if avail <= 0:
                self._missed(o, start)
                continue
            if o.market:
                px, liq = self._slip(o.side, op), "taker"
            elif o.side > 0:
                if op <= o.limit:
                    px, liq = min(self._slip(1, op), o.limit), "taker"
                elif fx(low) < o.limit:
                    px, liq = o.limit, "maker"
                else:
                    self._missed(o, start)
                    continue
            elif op >= o.limit:
                px, liq = max(self._slip(-1, op), o.limit), "taker"
            elif fx(high) > o.limit:
                px, liq = o.limit, "maker"
            else:
                self._missed(o, start)
                continue
            avail -= self._take(o, start, avail, px, liq)

    def on_quote(self, ts: int, sym: int, bid: float, ask: float, bid_size: float, ask_size: float) -> None:
        for o in list(self.working[sym]):
            touch, size = (fx(ask), ask_size) if o.side > 0 else (fx(bid), bid_size)
            if touch <= 0 or not (o.market or (touch <= o.limit if o.side > 0 else touch >= o.limit)):
                self._missed(o, ts)
                continue
            px = self._slip(o.side, touch)
            if not o.market:
                px = min(px, o.limit) if o.side > 0 else max(px, o.limit)
            self._take(o, ts, div_round(fx(size) * self.ex.participation, SCALE), px, "taker")

    def _fill(self, o: SimOrder, ts: int, q: int, price: int, liq: str) -> None:
        bps = self.ex.maker_fee_bps if liq == "maker" else self.ex.taker_fee_bps
        fee = div_round(q * price * bps, _BPS * SCALE) if bps else 0
        o.remaining -= q
        o.fills += 1
        self._emit(ev.TradeExecuted(
            order_id=o.id, ts=ts, trade_id=f"{o.id}-{o.fills}", quantity=q, price=price, fee=fee, liquidity=liq,
        ))  # fmt: skip
        signed = q if o.side > 0 else -q
        before = self.pos[o.sym]
        self.pos[o.sym] = after = before + signed
        self.open_positions += (after != 0) - (before != 0)
        self.cash18 -= signed * price + fee * SCALE
        self.fills.append((ts, o.sym, o.side, q, price, fee, liq, o.id))
        if o.remaining == 0:
            o.done = True
            self.working[o.sym].remove(o)
        if self.on_fill is not None:
            self.on_fill(FillReport(
                o.id, ts, self.names[o.sym], "buy" if o.side > 0 else "sell", q / SCALE, price / SCALE, fee / SCALE, liq,
            ))  # fmt: skip

    def finish(self, ts: int) -> None:
        """End of the replay: what is due now happens, then every open order is cancelled."""
        self.now = ts
        self.advance(ts)
        for order in list(self.orders.values()):
            if not order.done:
                self._close(order, max(ts, order.active_at), "end of backtest")

    def _emit(self, record: ev.OrderEvent) -> None:
        self._inputs += 1
        item = OrderInput(record, "backtest", self._inputs, b"")
        out = self.proc.process([item])
        self.events.extend(out.events)
        self.dead.extend(out.dead)
        if self.drain is not None and len(self.events) >= 50_000:
            self.drain()
