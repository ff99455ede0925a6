"""Keep the local books of one source partition in sync: snapshot + diffs, per venue rules.

:class:`BookKeeper` takes every :class:`~ticktape.schemas.records.BookUpdate` of a
partition in order and decides, per symbol:

* a **snapshot** (``snapshot=True``: a REST snapshot, a venue's in-band snapshot or a
  partial-depth message) replaces the book. Diffs buffered while waiting for it are then
  replayed by the Binance rule: drop those with ``last_id <= snapshot id``, the first one
  kept must have ``first_id <= snapshot id + 1 <= last_id``, the rest must follow on;
* a **diff with ids** (Binance ``U``/``u``[/``pu``], Bybit ``u``) applies when it follows
  on from the book (``first_id <= last + 1 <= last_id``, or ``prev_id == last`` when the
  venue sends ``prev_id``); ``last_id <= last`` is a **duplicate** (already in the book);
  a jump is a **gap**: the book is out of sync, the diff is buffered (bounded) and a
  resync is requested;
* a **diff without ids** (Kraken, Coinbase) applies while the book is in sync; with a
  ``checksum`` the book's checksum must match after applying it, else the book is out of
  sync until the venue's next snapshot;
* after any change, a **crossed** book (best bid >= best ask) is out of sync too.

Losing sync is a ``BookGap`` fact, regaining it a ``BookResync`` fact (both become
events of ``book:SYMBOL@venue``); :meth:`BookKeeper.take_resyncs` lists the books that
need a snapshot (the feed handler fetches one or resubscribes; in a replay the recorded
stream already holds it). Every ``snapshot_every`` ns of event time, and after every
resync, a book emits a :class:`~ticktape.schemas.records.BookSnapshot` of its top
``snapshot_levels`` levels.

Everything is a pure function of the updates' order, so a replay of recorded frames
rebuilds the same books and facts. Resume state: the keeper pickles itself (books are
bounded by ``depth``).
"""

from __future__ import annotations

import msgspec

from ticktape.schemas.books.book import DEFAULT_DEPTH, L2Book
from ticktape.schemas.books.checksum import kraken_checksum
from ticktape.schemas.records import BookFact, BookSnapshot, BookUpdate, EventType

#: Diffs buffered per out-of-sync book while it waits for a snapshot.
DEFAULT_BUFFER = 10_000

ACCEPTED, DUPLICATE = 1, 2


class KeeperSettings(msgspec.Struct, frozen=True):
    """``depth``: levels kept per side; ``snapshot_every`` (ns of event time, 0 = never)
    and ``snapshot_levels``: the periodic :class:`BookSnapshot`; ``buffer``: diffs kept
    per book while out of sync."""

    depth: int = DEFAULT_DEPTH
    snapshot_every: int = 10_000_000_000
    snapshot_levels: int = 20
    buffer: int = DEFAULT_BUFFER


class BookState:
    """One symbol's book and its sync state."""

    __slots__ = (
        "book",
        "buffer",
        "last_seen",
        "last_ts",
        "next_snapshot",
        "pending",
        "reason",
        "skipped",
        "symbol",
        "synced",
        "venue",
    )  # fmt: skip

    def __init__(self, venue: str, symbol: str, depth: int, keep_text: bool) -> None:
        self.venue = venue
        self.symbol = symbol
        self.book = L2Book(depth, keep_text=keep_text)
        self.synced = False
        self.buffer: list[BookUpdate] = []
        self.last_seen = -1  # highest last_id received (duplicate detection)
        self.last_ts = 0  # event time of the last change applied
        self.next_snapshot = 0
        self.pending = False  # a resync was requested and no snapshot arrived yet
        self.reason = "initial"  # why the book is out of sync
        self.skipped = 0  # diffs not applied while out of sync (no ids: not bufferable)

    def __getstate__(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setstate__(self, state: tuple[object, ...]) -> None:
        for name, value in zip(self.__slots__, state, strict=True):
            setattr(self, name, value)


class KeeperOut:
    """What the keeper produced while deciding some updates (appended to by it)."""

    __slots__ = ("facts", "snapshots")

    def __init__(self) -> None:
        self.facts: list[BookFact] = []
        self.snapshots: list[BookSnapshot] = []


class BookKeeper:
    """The local books of one source partition (see the module docstring)."""

    def __init__(self, settings: KeeperSettings | None = None) -> None:
        self.settings = settings or KeeperSettings()
        self.books: dict[tuple[str, str], BookState] = {}
        self._resyncs: dict[tuple[str, str], str] = {}

    def state_of(self, venue: str, symbol: str) -> BookState | None:
        return self.books.get((venue, symbol))

    def take_resyncs(self) -> list[tuple[str, str, str]]:
        """``(venue, symbol, reason)`` of books that asked for a snapshot since the last call."""
        out = [(v, s, r) for (v, s), r in self._resyncs.items()]
        self._resyncs.clear()
        return out

    def final(self, src: str, offset: int, ts_recv: int, out: KeeperOut) -> None:
        """At a clean end of input: a ``final`` snapshot of every book in sync (its time
        is the book's last event time, so a replay emits the same snapshot)."""
        for st in self.books.values():
            if st.synced:
                bids, asks = st.book.top(self.settings.snapshot_levels)
                out.snapshots.append(BookSnapshot(
                    st.venue, st.symbol, st.last_ts, st.book.last_id, bids, asks, ts_recv, src, offset, "final",
                ))  # fmt: skip

    def lose_all(self, venue: str, reason: str, ts_event: int, src: str, offset: int, out: KeeperOut) -> None:
        """Every book of ``venue`` in sync may have missed a change (an undecodable frame of
        a venue whose books carry neither ids nor checksums): out of sync, resync."""
        for st in self.books.values():
            if st.venue == venue and st.synced:
                st.synced = False
                st.reason = reason
                st.skipped = 0
                payload: dict[str, int | str] = {
                    "venue": st.venue, "symbol": st.symbol, "reason": reason, "last_id": st.book.last_id,
                }  # fmt: skip
                out.facts.append(
                    BookFact(EventType.BOOK_GAP, st.venue, st.symbol, ts_event, src, offset, payload)
                )
                self._request(st)

    def apply(self, u: BookUpdate, out: KeeperOut) -> int:
        """Decide one update: :data:`ACCEPTED` (applied, buffered or skipped while out of
        sync) or :data:`DUPLICATE` (its ids are already in the book)."""
        key = (u.venue, u.symbol)
        st = self.books.get(key)
        if st is None:
            st = self.books[key] = BookState(
                u.venue, u.symbol, self.settings.depth, keep_text=u.texts is not None
            )
        if u.snapshot:
            self._load(st, u, out)
            return ACCEPTED
        last_id = u.last_id
        if last_id >= 0:
            if last_id <= st.last_seen:
                return DUPLICATE  # received before (a frame repeated after a reconnect)
            st.last_seen = last_id
            if not st.synced:
                self._buffer(st, u, out)
                return ACCEPTED
            verdict = self._follows(st.book.last_id, u)
            if verdict < 0:
                return DUPLICATE
            if verdict > 0:
                self._lose(st, u, out, "sequence", expected=st.book.last_id + 1, got=u.first_id)
                self._buffer(st, u, out)
                return ACCEPTED
        elif not st.synced:
            st.skipped += 1
            if not st.pending:
                self._request(st)
            return ACCEPTED
        st.book.apply(u.bids, u.asks, last_id if last_id >= 0 else st.book.last_id, u.texts)
        self._after_change(st, u, out)
        return ACCEPTED

    @staticmethod
    def _follows(last: int, u: BookUpdate) -> int:
        """0: ``u`` applies after update ``last``; -1: it is already in; 1: ids are missing."""
        if u.last_id <= last:
            return -1
        if u.prev_id >= 0:
            return 0 if u.prev_id == last else 1
        return 0 if u.first_id <= last + 1 else 1

    def _after_change(self, st: BookState, u: BookUpdate, out: KeeperOut) -> None:
        book = st.book
        if u.ts_event > st.last_ts:
            st.last_ts = u.ts_event
        if u.checksum >= 0:
            mine = kraken_checksum(book)
            if mine != u.checksum:
                self._lose(st, u, out, "checksum", expected=u.checksum, got=mine)
                return
        if book.crossed():
            bid, ask = book.best_bid(), book.best_ask()
            self._lose(
                st, u, out, "crossed", bid=repr(bid[0] if bid else 0.0), ask=repr(ask[0] if ask else 0.0)
            )
            return
        every = self.settings.snapshot_every
        if every and u.ts_event >= st.next_snapshot:
            self._snapshot(st, u, out, "interval")

    def _snapshot(self, st: BookState, u: BookUpdate, out: KeeperOut, reason: str) -> None:
        every = self.settings.snapshot_every
        if every:
            st.next_snapshot = (u.ts_event // every + 1) * every
        bids, asks = st.book.top(self.settings.snapshot_levels)
        out.snapshots.append(BookSnapshot(
            st.venue, st.symbol, u.ts_event, st.book.last_id, bids, asks, u.ts_recv, u.src, u.offset, reason,
        ))  # fmt: skip

    def _request(self, st: BookState) -> None:
        st.pending = True
        self._resyncs[(st.venue, st.symbol)] = st.reason

    def _lose(self, st: BookState, u: BookUpdate, out: KeeperOut, reason: str, **detail: int | str) -> None:
        """The book is out of sync: a ``BookGap`` fact, and a resync request."""
        st.synced = False
        st.reason = reason
        st.skipped = 0
        payload: dict[str, int | str] = {
            "venue": st.venue, "symbol": st.symbol, "reason": reason, "last_id": st.book.last_id, **detail,
        }  # fmt: skip
        out.facts.append(
            BookFact(EventType.BOOK_GAP, st.venue, st.symbol, u.ts_event, u.src, u.offset, payload)
        )
        self._request(st)

    def _buffer(self, st: BookState, u: BookUpdate, out: KeeperOut) -> None:
        if not st.pending:
            self._request(st)
        buf = st.buffer
        buf.append(u)
        if len(buf) > self.settings.buffer:
            dropped = len(buf)
            buf.clear()
            # the diffs held are gone: the next snapshot must be newer than all of them
            payload: dict[str, int | str] = {
                "venue": st.venue, "symbol": st.symbol, "reason": "buffer_full", "dropped": dropped,
                "last_id": st.book.last_id,
            }  # fmt: skip
            out.facts.append(
                BookFact(EventType.BOOK_GAP, st.venue, st.symbol, u.ts_event, u.src, u.offset, payload)
            )

    def _load(self, st: BookState, u: BookUpdate, out: KeeperOut) -> None:
        """A snapshot: load it, then replay the buffered diffs that follow it."""
        book = st.book
        sid = u.last_id
        buf = st.buffer
        covered = 0
        if sid >= 0 and buf:
            kept = [b for b in buf if b.last_id > sid]
            covered = len(buf) - len(kept)
            if kept and self._follows(sid, kept[0]) > 0:
                # the snapshot is older than the diffs held: ask for a newer one
                st.buffer = kept
                st.reason = "stale_snapshot"
                self._request(st)
                return
            buf = kept
        book.load(u.bids, u.asks, sid, u.texts)
        st.last_ts = max(st.last_ts, u.ts_event)
        applied = 0
        rest: list[BookUpdate] = []
        for i, b in enumerate(buf):
            verdict = self._follows(book.last_id, b)
            if verdict < 0:
                covered += 1
                continue
            if verdict > 0:
                rest = buf[i:]
                break
            book.apply(b.bids, b.asks, b.last_id, b.texts)
            st.last_ts = max(st.last_ts, b.ts_event)
            applied += 1
        payload: dict[str, int | str] = {
            "venue": st.venue, "symbol": st.symbol, "reason": st.reason, "snapshot_id": sid,
            "applied": applied, "covered": covered, "skipped": st.skipped,
            "bids": len(book.bids), "asks": len(book.asks),
        }  # fmt: skip
        st.synced, st.pending, st.skipped, st.buffer = True, False, 0, []
        # the snapshot is the new truth (a venue restart may even reset its ids)
        st.last_seen = max([book.last_id, *(b.last_id for b in rest)])
        self._resyncs.pop((st.venue, st.symbol), None)
        out.facts.append(
            BookFact(EventType.BOOK_RESYNC, st.venue, st.symbol, u.ts_event, u.src, u.offset, payload)
        )
        if u.checksum >= 0 and kraken_checksum(book) != u.checksum:
            self._lose(st, u, out, "checksum", expected=u.checksum, got=kraken_checksum(book))
            return
        if book.crossed():
            self._lose(st, u, out, "crossed")
            return
        self._snapshot(st, u, out, "resync")
        st.reason = "snapshot"
        if rest:
            first = rest[0]
            self._lose(st, first, out, "sequence", expected=book.last_id + 1, got=first.first_id)
            st.buffer = rest
