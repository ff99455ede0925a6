"""Order lifecycle events: the records, their JSON form, and decoding an order message.

The seven lifecycle events and ``TradeExecuted`` are frozen msgspec records with int-ns
times and fixed-point quantities, prices and fees (:mod:`ticktape.schemas.orders.fixed`).
Their JSON form (the orders Kafka topic, order files and the event-log payloads alike)
is one object per event::

    {"type": "OrderSubmitted", "order_id": "o-1", "ts": 1700000000000000000,
     "account": "acct-1", "symbol": "BTC-USDT", "venue": "binance", "side": "buy",
     "order_type": "limit", "quantity": "0.5", "price": "43000.1", "time_in_force": "GTC"}
    {"type": "OrderAccepted", "order_id": "o-1", "ts": ...}
    {"type": "TradeExecuted", "order_id": "o-1", "ts": ..., "trade_id": "t-9",
     "quantity": "0.2", "price": "43000", "fee": "0.86", "liquidity": "maker"}
    {"type": "OrderCancelled", "order_id": "o-1", "ts": ..., "reason": "user"}

``ts`` is int nanoseconds or RFC 3339 text; quantities, prices and fees are decimal text
or JSON numbers with at most nine decimals (more is an error, never a rounding). The full
schema is in the README ("Orders JSON schema"). :func:`decode_order` turns one message
into a record or raises :class:`~ticktape.schemas.errors.DataError` naming the field
(a dead letter); :func:`payload_of` / :func:`event_record` are the event-log payload and
its inverse.
"""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec

from ticktape.schemas.errors import DataError, DecodeError, RejectError
from ticktape.schemas.orders.fixed import SCALE, format_fixed, parse_fixed
from ticktape.schemas.records import DLCode
from ticktape.schemas.timeparse import rfc3339_to_ns
from ticktape.schemas.validation import ValidationRules
from ticktape.schemas.venues._errors import map_decode_error, short_repr

SUBMITTED: Final = "OrderSubmitted"
ACCEPTED: Final = "OrderAccepted"
REJECTED: Final = "OrderRejected"
PARTIALLY_FILLED: Final = "OrderPartiallyFilled"
FILLED: Final = "OrderFilled"
CANCELLED: Final = "OrderCancelled"
EXPIRED: Final = "OrderExpired"
TRADE: Final = "TradeExecuted"
#: Every order event type, in lifecycle order.
TYPES: Final = (SUBMITTED, ACCEPTED, REJECTED, TRADE, PARTIALLY_FILLED, FILLED, CANCELLED, EXPIRED)
FILL_TYPES: Final = frozenset((PARTIALLY_FILLED, FILLED, TRADE))

MARKET: Final = "market"
LIMIT: Final = "limit"
ORDER_TYPES: Final = (MARKET, LIMIT)
TIME_IN_FORCE: Final = ("GTC", "IOC", "FOK", "DAY")
LIQUIDITY: Final = ("maker", "taker")

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,63}")
_TEXT_MAX = 200
_SYMBOL = re.compile(ValidationRules().symbol_pattern)


def order_aggregate(order_id: str) -> str:
    """The event-log aggregate of an order: ``order:<order_id>``."""
    return f"order:{order_id}"


class OrderSubmitted(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    order_id: str
    ts: int
    account: str
    symbol: str
    side: str
    order_type: str
    quantity: int
    price: int = 0  # 0 for market orders
    venue: str = ""
    time_in_force: str = "GTC"
    client_order_id: str = ""


class OrderAccepted(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    order_id: str
    ts: int
    venue_order_id: str = ""


class OrderRejected(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    order_id: str
    ts: int
    reason: str = ""


class TradeExecuted(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One execution of an order. ``account``/``symbol``/``side``/``venue`` are copied
    from the order by the state machine, so a position can be built from trades alone."""

    order_id: str
    ts: int
    trade_id: str
    quantity: int
    price: int
    fee: int = 0
    liquidity: str = "taker"
    account: str = ""
    symbol: str = ""
    side: str = ""
    venue: str = ""


class OrderPartiallyFilled(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The order's state after a fill that left quantity open (``remaining > 0``)."""

    order_id: str
    ts: int
    trade_id: str
    quantity: int
    price: int
    fee: int = 0
    liquidity: str = "taker"
    cumulative: int = 0
    remaining: int = 0


class OrderFilled(OrderPartiallyFilled, frozen=True, kw_only=True, gc=False):
    """The order's state after the fill that completed it (``remaining == 0``)."""


class OrderCancelled(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    order_id: str
    ts: int
    reason: str = ""


class OrderExpired(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    order_id: str
    ts: int


OrderEvent = (
    OrderSubmitted
    | OrderAccepted
    | OrderRejected
    | TradeExecuted
    | OrderPartiallyFilled
    | OrderFilled
    | OrderCancelled
    | OrderExpired
)
RECORD_TYPES: Final[dict[str, type[Any]]] = {
    SUBMITTED: OrderSubmitted, ACCEPTED: OrderAccepted, REJECTED: OrderRejected, TRADE: TradeExecuted,
    PARTIALLY_FILLED: OrderPartiallyFilled, FILLED: OrderFilled, CANCELLED: OrderCancelled, EXPIRED: OrderExpired,
}  # fmt: skip
_FIXED = ("quantity", "price", "fee", "cumulative", "remaining")


def type_of(record: OrderEvent) -> str:
    """The event type name of ``record``."""
    return type(record).__name__


# -- the wire: every field optional, checked per type -----------------------------------
Num = str | int | float


class _Wire(msgspec.Struct, forbid_unknown_fields=True):
    type: str
    order_id: str | None = None
    ts: int | str | None = None
    account: str | None = None
    symbol: str | None = None
    venue: str | None = None
    side: str | None = None
    order_type: str | None = None
    quantity: Num | None = None
    price: Num | None = None
    time_in_force: str | None = None
    client_order_id: str | None = None
    venue_order_id: str | None = None
    reason: str | None = None
    trade_id: str | None = None
    fee: Num | None = None
    liquidity: str | None = None
    cumulative: Num | None = None
    remaining: Num | None = None


_wire = msgspec.json.Decoder(_Wire)
_REQUIRED: dict[str, tuple[str, ...]] = {
    SUBMITTED: ("account", "symbol", "side", "order_type", "quantity"),
    ACCEPTED: (),
    REJECTED: (),
    TRADE: ("trade_id", "quantity", "price"),
    PARTIALLY_FILLED: ("trade_id", "quantity", "price"),
    FILLED: ("trade_id", "quantity", "price"),
    CANCELLED: (),
    EXPIRED: (),
}


def _missing(name: str) -> DecodeError:
    return DecodeError(DLCode.MISSING_FIELD, f"$.{name}", "a value", "field absent")


def _ident(w: _Wire, name: str, code: str = DLCode.BAD_ORDER) -> str:
    value = getattr(w, name)
    if value is None:
        raise _missing(name)
    if not _ID.fullmatch(value):
        raise RejectError(
            code, name, "1-64 characters of A-Z a-z 0-9 . _ : @ / - (starting alphanumeric)", value
        )
    return str(value)


def _text(w: _Wire, name: str) -> str:
    value = getattr(w, name) or ""
    if len(value) > _TEXT_MAX or not value.isprintable():
        raise RejectError(DLCode.BAD_ORDER, name, f"printable text of at most {_TEXT_MAX} characters", value)
    return str(value)


def _choice(
    w: _Wire, name: str, allowed: tuple[str, ...], default: str | None, code: str = DLCode.BAD_ORDER
) -> str:
    value = getattr(w, name)
    if value is None:
        if default is None:
            raise _missing(name)
        return default
    if value not in allowed:
        raise RejectError(code, name, " or ".join(allowed), value)
    return str(value)


def _fixed(w: _Wire, name: str, code: str, *, positive: bool = True, default: int | None = None) -> int:
    value = getattr(w, name)
    if value is None:
        if default is None:
            raise _missing(name)
        return default
    try:
        units = parse_fixed(value)
    except ValueError as exc:
        raise RejectError(
            code, name, "a finite decimal number with at most 9 decimals", f"{value!r} ({exc})"
        ) from None
    if positive and units <= 0:
        raise RejectError(code, name, "a number > 0", value)
    return units


def _ts(w: _Wire) -> int:
    value = w.ts
    if value is None:
        raise _missing("ts")
    if isinstance(value, str):
        try:
            value = rfc3339_to_ns(value)
        except ValueError as exc:
            raise DecodeError(
                DLCode.DECODE_ERROR, "ts", "int ns or an RFC 3339 time", f"{w.ts!r} ({exc})"
            ) from None
    if value <= 0 or value >= 1 << 63:
        raise RejectError(DLCode.BAD_ORDER, "ts", "ns since the epoch, > 0", value)
    return value


def _build(w: _Wire) -> OrderEvent:
    typ = w.type
    if typ not in RECORD_TYPES:
        raise DecodeError(DLCode.UNSUPPORTED, "$.type", "an order event type (" + ", ".join(TYPES) + ")", typ)
    for name in _REQUIRED[typ]:
        if getattr(w, name) is None:
            raise _missing(name)
    oid, ts = _ident(w, "order_id"), _ts(w)
    if typ == SUBMITTED:
        symbol = w.symbol or ""
        if not _SYMBOL.fullmatch(symbol):
            raise RejectError(DLCode.BAD_SYMBOL, "symbol", "a symbol like BTC-USDT", symbol)
        order_type = _choice(w, "order_type", ORDER_TYPES, None)
        if order_type == LIMIT:
            price = _fixed(w, "price", DLCode.BAD_PRICE)
        elif w.price is not None and _fixed(w, "price", DLCode.BAD_PRICE, positive=False) != 0:
            raise RejectError(DLCode.BAD_PRICE, "price", "no price for a market order", w.price)
        else:
            price = 0
        return OrderSubmitted(
            order_id=oid, ts=ts, account=_ident(w, "account"), symbol=symbol,
            venue=_ident(w, "venue") if w.venue else "", side=_choice(w, "side", ("buy", "sell"), None, DLCode.BAD_SIDE),
            order_type=order_type, quantity=_fixed(w, "quantity", DLCode.BAD_SIZE), price=price,
            time_in_force=_choice(w, "time_in_force", TIME_IN_FORCE, "GTC"),
            client_order_id=_ident(w, "client_order_id") if w.client_order_id else "",
        )  # fmt: skip
    if typ == ACCEPTED:
        return OrderAccepted(
            order_id=oid, ts=ts, venue_order_id=_ident(w, "venue_order_id") if w.venue_order_id else ""
        )
    if typ == REJECTED:
        return OrderRejected(order_id=oid, ts=ts, reason=_text(w, "reason"))
    if typ == CANCELLED:
        return OrderCancelled(order_id=oid, ts=ts, reason=_text(w, "reason"))
    if typ == EXPIRED:
        return OrderExpired(order_id=oid, ts=ts)
    trade_id = _ident(w, "trade_id")
    qty = _fixed(w, "quantity", DLCode.BAD_SIZE)
    price = _fixed(w, "price", DLCode.BAD_PRICE)
    fee = _fixed(w, "fee", DLCode.BAD_ORDER, positive=False, default=0)
    liquidity = _choice(w, "liquidity", LIQUIDITY, "taker")
    if typ == TRADE:
        return TradeExecuted(
            order_id=oid, ts=ts, trade_id=trade_id, quantity=qty, price=price, fee=fee, liquidity=liquidity
        )
    cumulative = _fixed(w, "cumulative", DLCode.BAD_SIZE, positive=False, default=-1)
    remaining = _fixed(w, "remaining", DLCode.BAD_SIZE, positive=False, default=-1)
    cls = OrderFilled if typ == FILLED else OrderPartiallyFilled
    return cls(
        order_id=oid, ts=ts, trade_id=trade_id, quantity=qty, price=price, fee=fee, liquidity=liquidity,
        cumulative=cumulative, remaining=remaining,
    )  # fmt: skip


def decode_order(raw: bytes | bytearray | memoryview) -> OrderEvent:
    """One order message (JSON object) as a record; :class:`DataError` (with a dead-letter
    code and the field) when it cannot be used. A fill message's ``cumulative`` /
    ``remaining`` are -1 when absent (the state machine fills them in)."""
    try:
        wire = _wire.decode(raw)
    except msgspec.DecodeError as exc:
        raise map_decode_error(exc, raw) from None
    try:
        return _build(wire)
    except DataError:
        raise
    except (TypeError, ValueError) as exc:  # defensive: a value the checks above let through
        raise DecodeError(
            DLCode.DECODE_ERROR, "$", "an order message", f"{short_repr(raw)} ({exc})"
        ) from None


_LAYOUT: Final = {
    cls: (cls.__name__, tuple((name, name in _FIXED) for name in cls.__struct_fields__))
    for cls in RECORD_TYPES.values()
}


def payload_of(record: OrderEvent) -> dict[str, Any]:
    """The JSON object of ``record`` (``type`` first; fixed-point fields as exact decimal
    text; empty optional text fields left out)."""
    name_of, layout = _LAYOUT[type(record)]
    doc: dict[str, Any] = {"type": name_of}
    for (name, fixed), value in zip(layout, msgspec.structs.astuple(record), strict=True):
        if fixed:
            doc[name] = format_fixed(value, SCALE)
        elif value != "":
            doc[name] = value
    return doc


_enc = msgspec.json.Encoder()


def encode_payload(record: OrderEvent) -> bytes:
    """:func:`payload_of` as JSON bytes (what the event log stores)."""
    return _enc.encode(payload_of(record))


def event_record(payload: bytes) -> OrderEvent:
    """The record stored in an event-log payload (:func:`encode_payload` reversed).
    ``TradeExecuted`` keeps its order fields (account, symbol, side, venue). Payloads the
    log wrote take a fast path; anything else is decoded and checked like a message
    (:class:`DataError` when it cannot be used)."""
    try:
        wire = _wire.decode(payload)
        name, layout = _LAYOUT[RECORD_TYPES[wire.type]]
        if type(wire.ts) is not int:
            raise TypeError("ts is not ns")
        kwargs = {}
        for field, fixed in layout:
            value = getattr(wire, field)
            if value is not None:
                kwargs[field] = parse_fixed(value) if fixed else value
        rec: OrderEvent = RECORD_TYPES[name](**kwargs)
        return rec
    except (KeyError, TypeError, ValueError, msgspec.DecodeError):
        pass
    record = decode_order(payload)
    if isinstance(record, TradeExecuted):
        doc = msgspec.json.decode(payload)
        record = msgspec.structs.replace(
            record, account=doc.get("account", ""), symbol=doc.get("symbol", ""),
            side=doc.get("side", ""), venue=doc.get("venue", ""),
        )  # fmt: skip
    return record
