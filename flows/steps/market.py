"""The keyed quote/book branch: per-symbol quote sequencing, duplicates, book events.

Unit of parallelism: a shard, like the trade step (:mod:`ticktape.flows.steps.shard`), but a
separate branch of the flow, so trades never wait behind quotes. Per symbol:

* **quotes**: a quote whose venue ``update_id`` is at or below the last one accepted, or
  that repeats the last quote exactly (same time and prices, for venues without ids), is
  a duplicate (frames repeated after a reconnect); the others are accepted and numbered
  (``seq``, the cache version with ``ts_event``);
* **book facts** from the source's local books become ``BookGap``/``BookResync`` events of
  ``book:SYMBOL@venue`` (ids from their content: a replay gives the same ids);
* **book snapshots** pass through, numbered per book, for the market log and the archive.

Output is a pure function of each source partition's order. Resume state: the processor
pickles itself (a few numbers per symbol).
"""

from __future__ import annotations

import msgspec

from ticktape.flows.steps.slots import SlotState
from ticktape.schemas.ids import event_id
from ticktape.schemas.records import (
    BookFact,
    BookSnapshot,
    Event,
    EventType,
    Quote,
    Tally,
    book_aggregate,
)

_enc = msgspec.json.Encoder()
#: Event types of the market log (its own SQLite files, archived like the event log).
QUOTE_EVENT = EventType.QUOTE_UPDATED
BOOK_SNAPSHOT_EVENT = EventType.BOOK_SNAPSHOTTED


class MarketBatch(msgspec.Struct, gc=False):
    """What one shard gets from one source batch."""

    quotes: list[Quote]
    books: list[BookSnapshot]
    facts: list[BookFact]


class MarketOut(msgspec.Struct, gc=False):
    """What one shard produced: accepted quotes, book snapshots, fact events (event log),
    market-log events (every accepted quote and snapshot) and the accounting of quotes."""

    quotes: list[Quote]
    books: list[BookSnapshot]
    events: list[Event]
    market: list[Event]
    counts: dict[str, Tally]

    def is_empty(self) -> bool:
        return not (self.quotes or self.books or self.events or self.market or self.counts)


class QuoteState(SlotState):
    __slots__ = ("book_ev_seq", "book_seq", "last", "last_id", "seq")

    def __init__(self) -> None:
        self.seq = 0
        self.last_id = -1
        self.last: tuple[int, float, float, float, float] | None = None
        self.book_ev_seq = 0  # events of book:SYMBOL@venue
        self.book_seq = 0  # snapshots of the book (market log)


class MarketProcessor:
    """Per-shard state machine; :meth:`process` handles batches in order."""

    def __init__(self) -> None:
        self.symbols: dict[tuple[str, str], QuoteState] = {}

    def _state(self, venue: str, symbol: str) -> QuoteState:
        key = (venue, symbol)
        st = self.symbols.get(key)
        if st is None:
            st = self.symbols[key] = QuoteState()
        return st

    def process(self, batches: list[MarketBatch]) -> MarketOut:
        quotes: list[Quote] = []
        books: list[BookSnapshot] = []
        events: list[Event] = []
        market: list[Event] = []
        counts: dict[str, Tally] = {}
        symbols = self.symbols
        for batch in batches:
            for q in batch.quotes:
                st = symbols.get((q.venue, q.symbol)) or self._state(q.venue, q.symbol)
                cnt = counts.get(q.src) or counts.setdefault(q.src, Tally())
                uid = q.update_id
                if uid >= 0:
                    if uid <= st.last_id:
                        cnt.duplicate += 1
                        continue
                    st.last_id = uid
                else:
                    ident = (q.ts_event, q.bid, q.bid_size, q.ask, q.ask_size)
                    if ident == st.last:
                        cnt.duplicate += 1
                        continue
                    st.last = ident
                st.seq += 1
                q.seq = st.seq
                quotes.append(q)
                market.append(Event(
                    event_id(q.ts_event, "Q", q.venue, q.symbol, st.seq), QUOTE_EVENT,
                    f"{q.symbol}@{q.venue}", st.seq, q.ts_event, 0, _enc.encode(q), f"{q.src}@{q.offset}",
                ))  # fmt: skip
                cnt.accepted += 1
            for f in batch.facts:
                st = self._state(f.venue, f.symbol)
                st.book_ev_seq += 1
                tag = "BG" if f.type == EventType.BOOK_GAP else "BR"
                detail = f.detail
                what = (detail.get("reason", ""), detail.get("last_id", ""), detail.get("snapshot_id", ""),
                        detail.get("expected", ""), detail.get("got", ""))  # fmt: skip
                events.append(Event(
                    event_id(f.ts_event, tag, f.venue, f.symbol, *what), f.type, book_aggregate(f.venue, f.symbol),
                    st.book_ev_seq, f.ts_event, 0, _enc.encode(f.detail), f"{f.src}@{f.offset}",
                ))  # fmt: skip
            for b in batch.books:
                st = self._state(b.venue, b.symbol)
                st.book_seq += 1
                books.append(b)
                market.append(Event(
                    event_id(b.ts_event, "B", b.venue, b.symbol, b.last_id, b.reason), BOOK_SNAPSHOT_EVENT,
                    book_aggregate(b.venue, b.symbol), st.book_seq, b.ts_event, 0, _enc.encode(b),
                    f"{b.src}@{b.offset}",
                ))  # fmt: skip
        return MarketOut(quotes, books, events, market, counts)
