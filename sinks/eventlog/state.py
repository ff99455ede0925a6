"""What the job knew about one aggregate: a pure fold of its events (docs/architecture.md, "Event log").

An aggregate is a symbol (``SYMBOL@venue``: prices, candles, gaps, staleness, anomalies,
rejects, late ticks) or a source partition (``source:<src>``: undecodable messages and
offset gaps). :func:`apply` folds one event into an :class:`AggregateState`;
:func:`fold` folds many. Guarantees:

* **Pure and deterministic**: the result depends only on the input state and the events
  in the order given (the event log's ``seq`` order); inputs are never mutated.
  ``fold(a + b) == fold(b, fold(a))`` exactly (floats are summed in the same order), so
  a snapshot plus the later events equals a fold from the beginning.
* **Total**: an unknown event type counts in ``other``, a payload that does not decode
  counts in ``malformed``; neither raises. Folding an event of another aggregate is a
  programming error and raises ``ValueError``.

Treat the dicts of a state as read-only (the struct is frozen; :func:`apply` copies them).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from ticktape.schemas.records import Candle, Event, EventType, PriceUpdate


class Gap(msgspec.Struct, frozen=True, kw_only=True):
    """The most recent gap: ids (trade ids, or offsets for a source) that never arrived."""

    first_missing: int
    last_missing: int
    count: int
    ts_event: int
    kind: str = "trade_id"


class AggregateState(msgspec.Struct, frozen=True, kw_only=True):
    """The state of one aggregate after its events up to ``last_seq``.

    ``price``/``size``/``side``/``trade_id``/``price_ts_event``/``price_seq`` come from
    the last ``PriceUpdated`` (``price`` is None before the first); ``candles`` holds,
    per interval (s), the candle with the highest ``start`` (its highest revision);
    ``dead_letters`` counts ``DeadLettered`` events by error code; ``stale`` is set by
    ``SymbolStale`` and cleared by the next ``PriceUpdated``.
    """

    aggregate: str = ""
    events: int = 0
    last_seq: int = 0
    last_ts_event: int = 0
    price: float | None = None
    size: float = 0.0
    side: str = ""
    trade_id: str = ""
    price_ts_event: int = 0
    price_seq: int = 0
    price_updates: int = 0
    volume: float = 0.0
    candles: dict[int, Candle] = msgspec.field(default_factory=dict)
    candles_closed: int = 0
    candle_revisions: int = 0
    gaps: int = 0
    missing: int = 0
    last_gap: Gap | None = None
    stale: bool = False
    stale_since: int = 0
    anomalies: int = 0
    dead_letters: dict[str, int] = msgspec.field(default_factory=dict)
    late_ticks: int = 0
    other: int = 0
    malformed: int = 0


class _GapPayload(msgspec.Struct):
    first_missing: int
    last_missing: int
    count: int
    kind: str = "trade_id"


class _Code(msgspec.Struct):
    code: str


_price = msgspec.json.Decoder(PriceUpdate)
_candle = msgspec.json.Decoder(Candle)
_gap = msgspec.json.Decoder(_GapPayload)
_code = msgspec.json.Decoder(_Code)
_PRICE = EventType.PRICE_UPDATED
_FIELDS = AggregateState.__struct_fields__


class StateBuilder:
    """A mutable fold, for folding many events fast; :meth:`freeze` gives the state.

    ``StateBuilder(s).apply(e).freeze() == apply(s, e)``: this is the one implementation
    of the fold (:func:`apply` and :func:`fold` use it).
    """

    __slots__ = _FIELDS
    aggregate: str
    events: int
    last_seq: int
    last_ts_event: int
    price: float | None
    size: float
    side: str
    trade_id: str
    price_ts_event: int
    price_seq: int
    price_updates: int
    volume: float
    candles: dict[int, Candle]
    candles_closed: int
    candle_revisions: int
    gaps: int
    missing: int
    last_gap: Gap | None
    stale: bool
    stale_since: int
    anomalies: int
    dead_letters: dict[str, int]
    late_ticks: int
    other: int
    malformed: int

    def __init__(self, state: AggregateState | None = None) -> None:
        src = state or AggregateState()
        for name in _FIELDS:
            setattr(self, name, getattr(src, name))
        self.candles = dict(src.candles)
        self.dead_letters = dict(src.dead_letters)

    def freeze(self) -> AggregateState:
        fields = {name: getattr(self, name) for name in _FIELDS}
        fields["candles"], fields["dead_letters"] = dict(self.candles), dict(self.dead_letters)
        return AggregateState(**fields)

    def apply(self, e: Event) -> StateBuilder:
        if e.aggregate != self.aggregate:
            if self.aggregate:
                raise ValueError(f"event {e.event_id} belongs to {e.aggregate!r}, not to {self.aggregate!r}")
            self.aggregate = e.aggregate
        self.events += 1
        self.last_seq = e.seq
        self.last_ts_event = e.ts_event
        typ = e.type
        try:
            if typ == _PRICE:  # by far the most frequent: kept inline
                u = _price.decode(e.payload)
                self.price, self.size, self.side, self.trade_id = u.price, u.size, u.side, u.trade_id
                self.price_ts_event, self.price_seq = u.ts_event, u.seq
                self.price_updates += 1
                self.volume += u.size
                self.stale = False
            else:
                self._apply_other(e, typ)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.malformed += 1
        return self

    def _apply_other(self, e: Event, typ: str) -> None:
        if typ in (EventType.CANDLE_CLOSED, EventType.CANDLE_REVISED):
            c = _candle.decode(e.payload)
            if typ == EventType.CANDLE_CLOSED:
                self.candles_closed += 1
            else:
                self.candle_revisions += 1
            cur = self.candles.get(c.interval)
            if cur is None or (c.start, c.revision) > (cur.start, cur.revision):
                self.candles[c.interval] = c
        elif typ == EventType.SEQUENCE_GAP:
            g = _gap.decode(e.payload)
            self.gaps += 1
            self.missing += g.count
            self.last_gap = Gap(
                first_missing=g.first_missing, last_missing=g.last_missing, count=g.count,
                ts_event=e.ts_event, kind=g.kind,
            )  # fmt: skip
        elif typ == EventType.SYMBOL_STALE:
            self.stale, self.stale_since = True, e.ts_event
        elif typ == EventType.ANOMALY:
            self.anomalies += 1
        elif typ == EventType.DEAD_LETTER:
            code = _code.decode(e.payload).code
            self.dead_letters[code] = self.dead_letters.get(code, 0) + 1
        elif typ == EventType.LATE_TICK:
            self.late_ticks += 1
        else:
            self.other += 1


def apply(state: AggregateState, event: Event) -> AggregateState:
    """``state`` after ``event`` (a new state; ``state`` is unchanged)."""
    return StateBuilder(state).apply(event).freeze()


def fold(events: Iterable[Event], state: AggregateState | None = None) -> AggregateState:
    """Fold ``events`` (in ``seq`` order) into ``state`` (an empty state by default)."""
    b = StateBuilder(state)
    for e in events:
        b.apply(e)
    return b.freeze()


_msgpack_enc = msgspec.msgpack.Encoder()
_msgpack_dec = msgspec.msgpack.Decoder(AggregateState)


def encode_state(state: AggregateState) -> bytes:
    """msgpack of ``state`` (what snapshots store); :func:`decode_state` reverses it."""
    return _msgpack_enc.encode(state)


def decode_state(blob: bytes) -> AggregateState:
    return _msgpack_dec.decode(blob)


def state_json(state: AggregateState) -> dict[str, Any]:
    """A JSON-friendly dict (candles as objects keyed by interval in seconds)."""
    doc: dict[str, Any] = msgspec.to_builtins(state)
    doc["candles"] = {str(k): msgspec.structs.asdict(c) for k, c in sorted(state.candles.items())}
    return doc
