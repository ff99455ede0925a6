"""Normalized records (docs/architecture.md, "Records").

All times are ``int`` nanoseconds since the Unix epoch, UTC; no ``datetime`` in the hot
path. Records are ``msgspec.Struct`` with ``array_like=True`` so that they encode
compactly (JSON/msgpack arrays) and ``gc=False`` because they never hold cycles.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Final

import msgspec

from ticktape.schemas.limits import MAX_DEAD_LETTER_RAW

BUY: Final = "buy"
SELL: Final = "sell"
UNKNOWN: Final = "unknown"
SIDES: Final = frozenset((BUY, SELL, UNKNOWN))


class DLCode:
    """Dead-letter error codes (stable strings: they are metric labels and event payloads)."""

    DECODE_ERROR: Final = "DECODE_ERROR"
    MISSING_FIELD: Final = "MISSING_FIELD"
    UNSUPPORTED: Final = "UNSUPPORTED_MESSAGE"
    BAD_PRICE: Final = "BAD_PRICE"
    BAD_SIZE: Final = "BAD_SIZE"
    BAD_SIDE: Final = "BAD_SIDE"
    BAD_SYMBOL: Final = "BAD_SYMBOL"
    SYMBOL_NOT_ALLOWED: Final = "SYMBOL_NOT_ALLOWED"
    BAD_INSTRUMENT_ID: Final = "BAD_INSTRUMENT_ID"
    TS_FUTURE: Final = "TS_FUTURE"
    TS_PAST: Final = "TS_PAST"
    PRICE_JUMP: Final = "PRICE_JUMP"
    LATE_TICK: Final = "LATE_TICK"
    BAD_NOTIONAL: Final = "BAD_NOTIONAL"
    BAD_VENUE: Final = "BAD_VENUE"
    VENUE_NOT_ALLOWED: Final = "VENUE_NOT_ALLOWED"
    BAD_TRADE_ID: Final = "BAD_TRADE_ID"
    TS_RANGE: Final = "TS_RANGE"
    TS_JUMP: Final = "TS_JUMP"
    ID_JUMP: Final = "ID_JUMP"
    STALE_ID: Final = "STALE_ID"
    KEY_LIMIT: Final = "KEY_LIMIT"
    #: an order message with an unusable field (id, account, type, time in force, ...)
    BAD_ORDER: Final = "BAD_ORDER"
    #: an order event the order's state does not allow (the message names the rule)
    ILLEGAL_TRANSITION: Final = "ILLEGAL_TRANSITION"
    CROSSED_BOOK: Final = "CROSSED_BOOK"
    BAD_SEQUENCE: Final = "BAD_SEQUENCE"
    OVERSIZED: Final = "OVERSIZED_FRAME"

    ALL: Final = (
        DECODE_ERROR,
        MISSING_FIELD,
        UNSUPPORTED,
        BAD_PRICE,
        BAD_SIZE,
        BAD_SIDE,
        BAD_SYMBOL,
        SYMBOL_NOT_ALLOWED,
        BAD_INSTRUMENT_ID,
        TS_FUTURE,
        TS_PAST,
        PRICE_JUMP,
        LATE_TICK,
        BAD_NOTIONAL,
        BAD_VENUE,
        VENUE_NOT_ALLOWED,
        BAD_TRADE_ID,
        TS_RANGE,
        TS_JUMP,
        ID_JUMP,
        STALE_ID,
        KEY_LIMIT,
        BAD_ORDER,
        ILLEGAL_TRANSITION,
        CROSSED_BOOK,
        BAD_SEQUENCE,
        OVERSIZED,
    )


class EventType:
    """Event-log event types."""

    PRICE_UPDATED: Final = "PriceUpdated"
    DEAD_LETTER: Final = "DeadLettered"
    SEQUENCE_GAP: Final = "SequenceGap"
    SYMBOL_STALE: Final = "SymbolStale"
    ANOMALY: Final = "AnomalyFlagged"
    CANDLE_CLOSED: Final = "CandleClosed"
    CANDLE_REVISED: Final = "CandleRevised"
    LATE_TICK: Final = "LateTick"
    SNAPSHOT: Final = "Snapshot"
    #: A local order book lost sync (sequence gap, bad checksum, crossed, reconnect).
    BOOK_GAP: Final = "BookGap"
    #: A local order book is in sync again (rebuilt from a venue snapshot).
    BOOK_RESYNC: Final = "BookResync"
    #: A venue connection opened / ended (what was in flight at the end may be lost).
    FEED_CONNECTED: Final = "FeedConnected"
    FEED_DISCONNECTED: Final = "FeedDisconnected"
    #: A venue said no (rate limit, bad subscription): logged once, retried with backoff.
    VENUE_ERROR: Final = "VenueError"
    #: Market-log events (not the event log): every accepted quote, every L2 snapshot.
    QUOTE_UPDATED: Final = "QuoteUpdated"
    BOOK_SNAPSHOTTED: Final = "BookSnapshotted"


class Tick(msgspec.Struct, array_like=True, gc=False):
    """A normalized trade as it leaves a source (treat as immutable once emitted: only the
    source's batch decoder sets ``wmark``, before the tick leaves the source).

    ``trade_id`` is the venue's id as text ("" when the venue has none); ``trade_no`` is
    its integer value when the id is numeric, else -1 (used for ordering and gap checks).
    ``src``/``offset`` are the source coordinates (``topic/partition`` + offset, or
    ``file:<name>`` + row). ``wmark`` is the largest ``ts_event`` seen on the source
    partition up to and including this tick: carrying it per tick makes candle closing
    a pure function of the partition's order, independent of batching and worker count.
    """

    venue: str
    symbol: str
    price: float
    size: float
    side: str
    trade_id: str
    ts_event: int
    ts_recv: int
    src: str
    offset: int
    ts_kafka: int = 0
    trade_no: int = -1
    wmark: int = 0
    instrument_id: str = ""


class PriceUpdate(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """An accepted tick with its stage stamps and per-symbol sequence number ``seq``."""

    venue: str
    symbol: str
    price: float
    size: float
    side: str
    trade_id: str
    ts_event: int
    ts_kafka: int
    ts_recv: int
    ts_proc: int
    seq: int
    src: str
    offset: int


class Candle(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """An OHLCV candle for ``[start, end)`` (ns) at ``interval`` (seconds).

    ``revision`` is 0 when the window first closes and grows by one for each late tick
    accepted within the revision horizon; sinks upsert by revision. ``ts_final`` is the
    wall-clock time at which this revision was emitted.
    """

    venue: str
    symbol: str
    interval: int
    start: int
    end: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    notional: float
    vwap: float
    trades: int
    buy_volume: float
    sell_volume: float
    first_trade_id: str
    last_trade_id: str
    revision: int
    ts_final: int


class DeadLetter(msgspec.Struct, frozen=True, gc=False):
    """A message that was not accepted, with why and where it came from.

    ``raw`` is at most :data:`~ticktape.schemas.limits.MAX_DEAD_LETTER_RAW` bytes (build it
    with :func:`bounded_raw`): a longer message keeps its first bytes, its full size in
    ``raw_size`` and its SHA-256 in ``raw_sha256`` (-1 and "" when ``raw`` is whole)."""

    dl_id: str
    code: str
    message: str
    raw: bytes
    src: str
    offset: int
    ts_recv: int
    venue: str = ""
    symbol: str = ""
    ts_kafka: int = 0
    raw_size: int = -1  # -1: raw is whole
    raw_sha256: str = ""


def bounded_raw(raw: bytes | bytearray | memoryview) -> tuple[bytes, int, str]:
    """``(raw, raw_size, raw_sha256)`` for a :class:`DeadLetter`: the bytes cut to
    :data:`~ticktape.schemas.limits.MAX_DEAD_LETTER_RAW`, and when they were cut the
    original size and SHA-256 (else -1 and "")."""
    data = bytes(raw)
    size = len(data)
    if size <= MAX_DEAD_LETTER_RAW:
        return data, -1, ""
    return data[:MAX_DEAD_LETTER_RAW], size, hashlib.sha256(data).hexdigest()


class Event(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """Event-log envelope. ``event_id`` is derived from the input's identity, so a replay
    produces the same id, and starts with the hex of ``ts_event`` so ids sort by time;
    ``seq`` is per aggregate; ``payload`` is JSON bytes. ``ts_event`` is 0 when the event
    time is unknown (an undecodable message from a source without broker timestamps)."""

    event_id: str
    type: str
    aggregate: str
    seq: int
    ts_event: int
    ts_logged: int
    payload: bytes
    causation: str


Level = tuple[float, float]
"""One L2 price level: ``(price, size)``; size 0 in an update deletes the level."""


class Quote(msgspec.Struct, array_like=True, gc=False):
    """Best bid and ask with their sizes (a top-of-book update) as it leaves a source.

    ``update_id`` is the venue's book sequence when it sends one (Binance ``u``, Bybit
    ``u``), else -1; it orders quotes and detects duplicates. ``seq`` is the per-symbol
    sequence the keyed step assigns to accepted quotes (0 before). Venues without an event
    time on quotes (Binance spot ``bookTicker``) use the receive time as ``ts_event``.
    """

    venue: str
    symbol: str
    bid: float
    bid_size: float
    ask: float
    ask_size: float
    ts_event: int
    ts_recv: int
    src: str
    offset: int
    ts_kafka: int = 0
    update_id: int = -1
    seq: int = 0

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2.0

    @property
    def spread(self) -> float:
        return self.ask - self.bid


class BookUpdate(msgspec.Struct, array_like=True, gc=False):
    """An L2 change of one symbol's book: ``bids``/``asks`` levels to set (size 0
    deletes), or with ``snapshot`` the whole book (replacing it).

    Sequencing, as the venue sends it: ``first_id``/``last_id`` the range of update ids
    this message covers (Binance ``U``/``u``; Bybit ``u`` in both), ``prev_id`` the last
    id of the previous message when the venue says it (Binance futures ``pu``), else -1;
    ``checksum`` the venue's CRC32 of the book after the update (Kraken), else -1, with
    ``texts`` holding each level's exact ``(price, size)`` text for it (bids, asks).
    """

    venue: str
    symbol: str
    bids: list[Level]
    asks: list[Level]
    ts_event: int
    ts_recv: int
    src: str
    offset: int
    ts_kafka: int = 0
    first_id: int = -1
    last_id: int = -1
    prev_id: int = -1
    snapshot: bool = False
    checksum: int = -1
    texts: tuple[list[tuple[str, str]], list[tuple[str, str]]] | None = None


class BookSnapshot(msgspec.Struct, array_like=True, gc=False):
    """The top ``len(bids)``/``len(asks)`` levels of a local book at ``ts_event`` (bids
    best first, descending; asks ascending), after update ``last_id``. ``reason`` is
    ``interval`` (every ``[books] snapshot_every`` of event time) or ``resync``.
    ``src``/``offset`` are the coordinates of the message that produced this state."""

    venue: str
    symbol: str
    ts_event: int
    last_id: int
    bids: list[Level]
    asks: list[Level]
    ts_recv: int
    src: str
    offset: int
    reason: str = "interval"


class BookFact(msgspec.Struct, frozen=True, gc=False):
    """Something that happened to a local book at the source (``type`` is
    :attr:`EventType.BOOK_GAP` or :attr:`EventType.BOOK_RESYNC`); the keyed step makes it an
    event of the book's aggregate (:func:`book_aggregate`). ``detail`` is the payload:
    reason, expected/got ids, levels, ... (JSON-encodable, deterministic)."""

    type: str
    venue: str
    symbol: str
    ts_event: int
    src: str
    offset: int
    detail: dict[str, int | str]


class Tally(msgspec.Struct, gc=False):
    """What the keyed step decided for the ticks of one source partition (the accounting's
    ``accepted + rejected + duplicate``; the source counted ``read``)."""

    accepted: int = 0
    rejected: int = 0
    duplicate: int = 0


class TickBatch(msgspec.Struct, gc=False):
    """What a source partition emits per poll: decoded ticks plus the messages that
    could not be decoded or broke a stateless rule. ``n_read`` counts records read
    (trades, quotes and book updates decoded + undecodable messages) for the accounting
    (docs/architecture.md, "Accounting").

    Venue feeds add ``quotes`` (validated, for the keyed quote branch), ``books`` (L2
    snapshots of the source's local books) and ``facts`` (book gaps and resyncs); book
    updates are decided at the source (applied to its local book, or duplicates), and
    ``decided`` holds those outcomes so the accounting balances per partition.
    """

    src: str
    ticks: list[Tick]
    dead: list[DeadLetter]
    n_read: int
    wmark: int
    events: list[Event] = msgspec.field(default_factory=list)
    quotes: list[Quote] = msgspec.field(default_factory=list)
    books: list[BookSnapshot] = msgspec.field(default_factory=list)
    facts: list[BookFact] = msgspec.field(default_factory=list)
    decided: Tally | None = None

    def has_market(self) -> bool:
        """Whether the batch holds quotes, book snapshots or book facts."""
        return bool(self.quotes or self.books or self.facts)


def aggregate_of(venue: str, symbol: str) -> str:
    """The event-log aggregate id of a symbol: ``SYMBOL@venue``."""
    return f"{symbol}@{venue}"


def book_aggregate(venue: str, symbol: str) -> str:
    """The event-log aggregate of a symbol's local order book: ``book:SYMBOL@venue``
    (its own ``seq``, apart from the symbol's trade events)."""
    return f"book:{symbol}@{venue}"


def source_aggregate(src: str) -> str:
    """The aggregate of events that belong to a source partition, not a symbol."""
    return f"source:{src}"


def dead_letter_json(dl: DeadLetter) -> dict[str, object]:
    """A dead letter as a JSON object (files, Kafka); ``raw`` is text when it is UTF-8,
    else base64 with ``raw_encoding = "base64"``."""
    try:
        raw, encoding = dl.raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        raw, encoding = base64.b64encode(dl.raw).decode("ascii"), "base64"
    return {
        "dl_id": dl.dl_id, "code": dl.code, "message": dl.message, "src": dl.src,
        "offset": dl.offset, "venue": dl.venue, "symbol": dl.symbol, "ts_recv": dl.ts_recv,
        "ts_kafka": dl.ts_kafka, "raw": raw, "raw_encoding": encoding,
        "raw_size": len(dl.raw) if dl.raw_size < 0 else dl.raw_size, "raw_truncated": bool(dl.raw_sha256),
        "raw_sha256": dl.raw_sha256,
    }  # fmt: skip


#: Event types whose payload is a record encoded as a positional JSON array.
_ARRAY_PAYLOADS: dict[str, type[msgspec.Struct]] = {
    EventType.PRICE_UPDATED: PriceUpdate,
    EventType.CANDLE_CLOSED: Candle,
    EventType.CANDLE_REVISED: Candle,
}


def payload_doc(event_type: str, payload: bytes) -> object:
    """An event's payload as JSON data with named fields: records stored as positional
    arrays (``PriceUpdated``, ``CandleClosed``, ``CandleRevised``) become objects keyed
    by field name; other JSON as it is; a payload that is not JSON, its text."""
    try:
        doc = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return payload.decode("utf-8", "replace")
    record = _ARRAY_PAYLOADS.get(event_type)
    if record is not None and isinstance(doc, list) and len(doc) == len(record.__struct_fields__):
        return dict(zip(record.__struct_fields__, doc, strict=True))
    return doc
