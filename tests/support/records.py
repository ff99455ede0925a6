"""One keyword-only factory per record of :mod:`ticktape.schemas.records`, plus the
generic JSON trade message (:mod:`ticktape.schemas.venues.generic`) that sources decode.

Every test builds its records here, so there is one definition of how a record is
built. Each factory takes every field of its record as a keyword (none positional) and
fills the ones a test does not name with the defaults below: one BTC-USDT trade on
binance at :data:`T0`, read from ``trades/0`` offset 0. A few defaults follow from other
fields, as the job itself would set them; each factory's docstring says which. A test
that depends on a value names it, even when it equals the default.

A file that builds hundreds of records with its own positional shorthand keeps it as a
one-line wrapper over these factories (see ``tests/unit/test_shard.py``).
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from ticktape.schemas.ids import event_id as make_event_id
from ticktape.schemas.records import (
    BUY,
    Candle,
    DeadLetter,
    DLCode,
    Event,
    EventType,
    PriceUpdate,
    Tick,
    TickBatch,
    aggregate_of,
)
from ticktape.schemas.venues import trade_no_of

S = 1_000_000_000
MS = 1_000_000
#: The default event time: 2023-11-14T22:13:20Z, in ns.
T0 = 1_700_000_000 * S
VENUE = "binance"
SYMBOL = "BTC-USDT"
SRC = "trades/0"


def tick(
    *,
    venue: str = VENUE,
    symbol: str = SYMBOL,
    price: float = 100.0,
    size: float = 1.0,
    side: str = BUY,
    trade_id: str = "1",
    ts_event: int = T0,
    ts_recv: int | None = None,
    src: str = SRC,
    offset: int = 0,
    ts_kafka: int = 0,
    trade_no: int | None = None,
    wmark: int = 0,
    instrument_id: str = "",
) -> Tick:
    """A :class:`Tick`. Derived defaults: ``ts_recv`` = ``ts_event`` (received at once)
    and ``trade_no`` = the numeric value of ``trade_id`` (-1 when it is not all digits),
    as the venue decoders set it. ``wmark`` stays 0 (only a source's batch decoder sets
    it)."""
    return Tick(
        venue=venue,
        symbol=symbol,
        price=price,
        size=size,
        side=side,
        trade_id=trade_id,
        ts_event=ts_event,
        ts_recv=ts_event if ts_recv is None else ts_recv,
        src=src,
        offset=offset,
        ts_kafka=ts_kafka,
        trade_no=trade_no_of(trade_id) if trade_no is None else trade_no,
        wmark=wmark,
        instrument_id=instrument_id,
    )


def price_update(
    *,
    venue: str = VENUE,
    symbol: str = SYMBOL,
    price: float = 100.0,
    size: float = 1.0,
    side: str = BUY,
    trade_id: str = "1",
    ts_event: int = T0,
    ts_kafka: int = 0,
    ts_recv: int | None = None,
    ts_proc: int | None = None,
    seq: int = 1,
    src: str = SRC,
    offset: int = 0,
) -> PriceUpdate:
    """A :class:`PriceUpdate`. Derived defaults: ``ts_recv`` = ``ts_event`` and
    ``ts_proc`` = ``ts_recv`` (no time spent in the pipeline)."""
    recv = ts_event if ts_recv is None else ts_recv
    return PriceUpdate(
        venue=venue,
        symbol=symbol,
        price=price,
        size=size,
        side=side,
        trade_id=trade_id,
        ts_event=ts_event,
        ts_kafka=ts_kafka,
        ts_recv=recv,
        ts_proc=recv if ts_proc is None else ts_proc,
        seq=seq,
        src=src,
        offset=offset,
    )


def candle(
    *,
    venue: str = VENUE,
    symbol: str = SYMBOL,
    interval: int = 60,
    start: int = T0,
    end: int | None = None,
    open: float = 100.0,
    high: float = 100.0,
    low: float = 100.0,
    close: float = 100.0,
    volume: float = 1.0,
    notional: float = 100.0,
    vwap: float = 100.0,
    trades: int = 1,
    buy_volume: float = 1.0,
    sell_volume: float = 0.0,
    first_trade_id: str = "1",
    last_trade_id: str = "1",
    revision: int = 0,
    ts_final: int | None = None,
) -> Candle:
    """A :class:`Candle` of ``interval`` seconds from ``start`` (ns). Derived defaults:
    ``end`` = ``start + interval`` seconds and ``ts_final`` = ``end`` (emitted as the
    window closed). The other defaults are one buy of size 1 at 100."""
    stop = start + interval * S if end is None else end
    return Candle(
        venue=venue,
        symbol=symbol,
        interval=interval,
        start=start,
        end=stop,
        open=open,
        high=high,
        low=low,
        close=close,
        volume=volume,
        notional=notional,
        vwap=vwap,
        trades=trades,
        buy_volume=buy_volume,
        sell_volume=sell_volume,
        first_trade_id=first_trade_id,
        last_trade_id=last_trade_id,
        revision=revision,
        ts_final=stop if ts_final is None else ts_final,
    )


def dead_letter(
    *,
    dl_id: str = "dl-1",
    code: str = DLCode.BAD_PRICE,
    message: str = "field `price`: expected > 0, got -1",
    raw: bytes = b'{"price": -1}',
    src: str = SRC,
    offset: int = 0,
    ts_recv: int = T0,
    venue: str = "",
    symbol: str = "",
    ts_kafka: int = 0,
) -> DeadLetter:
    """A :class:`DeadLetter` (default: a negative price; no venue or symbol known)."""
    return DeadLetter(
        dl_id=dl_id,
        code=code,
        message=message,
        raw=raw,
        src=src,
        offset=offset,
        ts_recv=ts_recv,
        venue=venue,
        symbol=symbol,
        ts_kafka=ts_kafka,
    )


def event(
    *,
    event_id: str | None = None,
    type: str = EventType.SYMBOL_STALE,
    aggregate: str = aggregate_of(VENUE, SYMBOL),
    seq: int = 1,
    ts_event: int = T0,
    ts_logged: int = 0,
    payload: bytes = b"{}",
    causation: str = "",
) -> Event:
    """An event-log :class:`Event`. Derived default: ``event_id`` =
    ``ticktape.schemas.ids.event_id(ts_event, type, aggregate, seq)`` (time-ordered and
    unique per aggregate and seq). ``payload`` is JSON bytes (see :func:`payload`)."""
    ident = make_event_id(ts_event, type, aggregate, seq) if event_id is None else event_id
    return Event(
        event_id=ident,
        type=type,
        aggregate=aggregate,
        seq=seq,
        ts_event=ts_event,
        ts_logged=ts_logged,
        payload=payload,
        causation=causation,
    )


def payload(doc: object) -> bytes:
    """``doc`` (a record, dict, list ...) as the JSON bytes of an event payload."""
    return msgspec.json.encode(doc)


def tick_batch(
    *,
    src: str = SRC,
    ticks: Iterable[Tick] = (),
    dead: Iterable[DeadLetter] = (),
    n_read: int | None = None,
    wmark: int | None = None,
    events: Iterable[Event] = (),
) -> TickBatch:
    """A :class:`TickBatch`. Derived defaults: ``n_read`` = ticks + dead letters (every
    message read became one or the other) and ``wmark`` = the largest ``ts_event`` of
    the ticks (0 without ticks)."""
    ts, ds = list(ticks), list(dead)
    return TickBatch(
        src=src,
        ticks=ts,
        dead=ds,
        n_read=len(ts) + len(ds) if n_read is None else n_read,
        wmark=max((t.ts_event for t in ts), default=0) if wmark is None else wmark,
        events=list(events),
    )


def trade_message(
    *,
    venue: str = VENUE,
    symbol: str = SYMBOL,
    price: object = 100.0,
    size: object = 1.0,
    side: str | None = BUY,
    trade_id: int | str | None = 1,
    ts_event: int = T0,
    **extra: object,
) -> bytes:
    """One generic JSON trade (the wire form every source decodes with
    :func:`ticktape.schemas.venues.generic.decode_tick`), keys in this order. ``side`` or
    ``trade_id`` ``None`` leaves the key out (the decoder's defaults apply); ``extra``
    adds or replaces keys (e.g. ``id_type``, or a bad value for a dead-letter test)."""
    doc: dict[str, object] = {"venue": venue, "symbol": symbol, "price": price, "size": size}
    if side is not None:
        doc["side"] = side
    if trade_id is not None:
        doc["trade_id"] = trade_id
    doc["ts_event"] = ts_event
    doc.update(extra)
    return msgspec.json.encode(doc)
