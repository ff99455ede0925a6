"""The strategy API of the backtester.

A strategy subclasses :class:`Strategy` and overrides any of :meth:`Strategy.on_trade`,
:meth:`Strategy.on_candle`, :meth:`Strategy.on_quote` (a method it does not override is
never called, and the data it would need is not built), plus optionally
:meth:`Strategy.on_start`, :meth:`Strategy.on_fill` and :meth:`Strategy.on_end`.
Parameters arrive as keyword arguments of ``__init__`` (from ``-p name=value`` or the
``[backtest.params]`` TOML table); inside the callbacks it acts through
:meth:`Strategy.submit` and :meth:`Strategy.cancel` and reads :meth:`Strategy.position`,
:attr:`Strategy.cash`, :attr:`Strategy.equity` and :attr:`Strategy.now`.

The objects passed to the callbacks (:class:`TradeTick`, :class:`Bar`, :class:`QuoteTick`)
are reused for every event (no per-tick allocation): read what you need during the call,
never keep the object itself. Prices and sizes are floats as the venues sent them; the
broker converts what you submit into exact fixed-point quantities.

Load a strategy by name with :func:`load_strategy` (``"package.module:ClassName"``).
"""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING, Any, Protocol

from ticktape.schemas.errors import InputError

if TYPE_CHECKING:
    from ticktape.flows.backtest.broker import FillReport


class TradeTick:
    """One trade: ``ts`` (ns), ``symbol``, ``price``, ``size``, ``side`` (buy/sell/unknown)."""

    __slots__ = ("price", "side", "size", "symbol", "ts")

    def __init__(self) -> None:
        self.ts, self.symbol, self.price, self.size, self.side = 0, "", 0.0, 0.0, ""


class Bar:
    """One candle of ``[start, start + interval)``, delivered at its end (``ts``)."""

    __slots__ = ("close", "high", "interval", "low", "open", "start", "symbol", "trades", "ts", "volume")

    def __init__(self) -> None:
        self.ts, self.symbol, self.interval, self.start = 0, "", 0, 0
        self.open = self.high = self.low = self.close = self.volume = 0.0
        self.trades = 0


class QuoteTick:
    """Top of book: ``bid``/``ask`` prices and sizes at ``ts``."""

    __slots__ = ("ask", "ask_size", "bid", "bid_size", "symbol", "ts")

    def __init__(self) -> None:
        self.ts, self.symbol = 0, ""
        self.bid = self.ask = self.bid_size = self.ask_size = 0.0


class Broker(Protocol):
    """What a strategy can ask of the simulated venue (:class:`~ticktape.flows.backtest.broker.SimBroker`)."""

    now: int

    def submit(self, symbol: str, side: str, quantity: Any, price: Any | None, tif: str) -> str: ...
    def cancel(self, order_id: str) -> bool: ...
    def position(self, symbol: str) -> float: ...
    def position_units(self, symbol: str) -> int: ...
    def cash(self) -> float: ...
    def equity(self) -> float: ...
    def is_open(self, order_id: str) -> bool: ...
    def open_orders(self, symbol: str | None) -> list[str]: ...


class Strategy:
    """Base class of strategies (see the module doc)."""

    _broker: Broker

    def __init__(self, **params: Any) -> None:
        self.params = params

    # -- callbacks (override what you need) -------------------------------------------
    def on_start(self) -> None:
        """Before the first event."""

    def on_trade(self, trade: TradeTick) -> None:
        """Every trade of the replayed symbols, in event-time order."""

    def on_candle(self, bar: Bar) -> None:
        """Every candle, at the end of its window."""

    def on_quote(self, quote: QuoteTick) -> None:
        """Every top-of-book change."""

    def on_fill(self, fill: FillReport) -> None:
        """After each execution of one of this strategy's orders."""

    def on_end(self) -> None:
        """After the last event (open orders are then cancelled, positions marked)."""

    # -- actions ------------------------------------------------------------------------
    def submit(
        self, symbol: str, side: str, quantity: Any, price: Any | None = None, *, tif: str = "GTC"
    ) -> str:
        """Send an order: market without ``price``, limit with it; ``tif`` GTC, IOC, FOK or
        DAY (see :mod:`ticktape.flows.backtest.broker`). Returns the order id.
        It reaches the simulated venue after the configured latency; a refused order
        gets ``OrderRejected`` there (it never raises for market reasons)."""
        return self._broker.submit(symbol, side, quantity, price, tif)

    def buy(self, symbol: str, quantity: Any, price: Any | None = None) -> str:
        return self.submit(symbol, "buy", quantity, price)

    def sell(self, symbol: str, quantity: Any, price: Any | None = None) -> str:
        return self.submit(symbol, "sell", quantity, price)

    def close(self, symbol: str) -> str | None:
        """Send a market order that flattens the position in ``symbol`` exactly (None when
        flat)."""
        units = self._broker.position_units(symbol)
        if not units:
            return None
        from ticktape.schemas.orders.fixed import format_fixed

        return self.submit(symbol, "sell" if units > 0 else "buy", format_fixed(abs(units)))

    def cancel(self, order_id: str) -> bool:
        """Ask to cancel ``order_id`` (effective after the latency, if still open then)."""
        return self._broker.cancel(order_id)

    def position(self, symbol: str) -> float:
        """The signed position in ``symbol`` (units)."""
        return self._broker.position(symbol)

    def is_open(self, order_id: str) -> bool:
        """Whether order ``order_id`` is not yet filled, cancelled or rejected."""
        return self._broker.is_open(order_id)

    def open_orders(self, symbol: str | None = None) -> list[str]:
        """Ids of orders not yet filled, cancelled or rejected."""
        return self._broker.open_orders(symbol)

    @property
    def cash(self) -> float:
        return self._broker.cash()

    @property
    def equity(self) -> float:
        """Cash plus positions marked at the last price."""
        return self._broker.equity()

    @property
    def now(self) -> int:
        """The current event time (ns)."""
        return self._broker.now


def overrides(strategy: Strategy, name: str) -> bool:
    """True when ``strategy``'s class overrides callback ``name``."""
    return getattr(type(strategy), name) is not getattr(Strategy, name)


def load_strategy(spec: str, params: dict[str, Any]) -> Strategy:
    """``"module:Class"`` with ``params`` as keyword arguments; :class:`InputError` when the
    module, the class or a parameter is wrong."""
    module_name, sep, class_name = spec.partition(":")
    if not sep or not module_name or not class_name:
        raise InputError(f"strategy: expected module:Class, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(f"strategy: cannot import module {module_name!r}: {exc}") from None
    cls = getattr(module, class_name, None)
    if not (inspect.isclass(cls) and issubclass(cls, Strategy)):
        raise InputError(f"strategy: {spec!r} is not a subclass of ticktape.flows.backtest.strategy.Strategy")
    try:
        inspect.signature(cls).bind(**params)
    except TypeError as exc:
        raise InputError(f"strategy {class_name}: bad parameters {sorted(params)}: {exc}") from None
    try:
        strategy: Strategy = cls(**params)
    except (TypeError, ValueError) as exc:
        raise InputError(f"strategy {class_name}: {exc}") from None
    return strategy
