"""Venue feed frames -> :class:`~ticktape.schemas.records.TickBatch`, per source partition.

:class:`FeedBatchDecoder` is the :class:`~ticktape.schemas.decoding.BatchDecoder` of the
feed formats (``binance-ws``, ``coinbase-ws``, ``kraken-ws``, ``bybit-ws``: the frames of
a venue WebSocket as the ``websocket`` source reads them and ``ticktape record`` stores
them). One frame may hold trades, a quote, book updates or a control frame:

* trades go on as ticks (validated, watermarked) to the keyed trade step, as before;
* quotes are validated (prices, sizes, crossed, symbol, clock) and go to the keyed quote
  branch;
* book updates are validated (levels, sequence), then decided here by the partition's
  :class:`~ticktape.schemas.books.keeper.BookKeeper` (applied, buffered, or duplicate):
  its facts (``BookGap``/``BookResync``) and L2 snapshots ride in the batch;
* control frames become ``FeedConnected``/``FeedDisconnected``/``SequenceGap``/
  ``VenueError`` events of the partition's source aggregate; an unplanned reconnect puts
  the venue's books out of sync (changes may have been missed while away, and no later
  diff may come to reveal it), so they resync.

Accounting (docs/architecture.md, "Delivery"): ``n_read`` counts trades, quotes and book
updates decoded plus undecodable frames (control frames are not records); book updates
are decided here, so the batch's ``decided`` tally carries their accepted/duplicate
counts. Resume state: ``(wmark, dl_seq, keeper)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from ticktape.schemas.books.keeper import ACCEPTED, BookKeeper, KeeperOut, KeeperSettings
from ticktape.schemas.decoding import FORMATS, BatchDecoder, data_error, dead_letter_event
from ticktape.schemas.errors import DataError, InputError
from ticktape.schemas.ids import event_id
from ticktape.schemas.records import (
    BookUpdate,
    DeadLetter,
    DLCode,
    Event,
    EventType,
    Quote,
    Tally,
    Tick,
    TickBatch,
)
from ticktape.schemas.validation import TickValidator, ValidationRules
from ticktape.schemas.venues.feeds import FeedDecoder, binance, bybit, coinbase, kraken
from ticktape.schemas.venues.feeds.control import (
    CONNECTED,
    DISCONNECTED,
    GAP,
    OVERSIZED,
    PLANNED,
    VENUE_ERROR,
    Control,
)

FEED_FORMATS: dict[str, FeedDecoder] = {
    "binance-ws": binance.decode_frame,
    "coinbase-ws": coinbase.decode_frame,
    "kraken-ws": kraken.decode_frame,
    "bybit-ws": bybit.decode_frame,
}
#: The venue each feed format speaks.
FEED_VENUES: dict[str, str] = {name: name.removesuffix("-ws") for name in FEED_FORMATS}
#: Venues whose book messages carry neither update ids nor checksums: an undecodable
#: frame may have been a book change, so every book of the partition resyncs.
BLIND_BOOKS = frozenset({"coinbase"})
_enc = msgspec.json.Encoder()


def format_names() -> list[str]:
    """Every message format a source can read: trade formats and feed formats."""
    return sorted([*FORMATS, *FEED_FORMATS])


def is_feed_format(fmt: str) -> bool:
    return fmt in FEED_FORMATS


class FeedBatchDecoder(BatchDecoder):
    """Decode one partition's feed frames (see the module docstring)."""

    def __init__(
        self,
        src: str,
        decoder: FeedDecoder,
        validator: TickValidator,
        *,
        wmark: int = 0,
        dl_seq: int = 0,
        keeper: BookKeeper | None = None,
        keeper_settings: KeeperSettings | None = None,
    ) -> None:
        super().__init__(src, _no_trades, validator, wmark=wmark, dl_seq=dl_seq)
        self.feed_decoder = decoder
        self.blind_venue = next(
            (v for f, v in FEED_VENUES.items() if FEED_FORMATS[f] is decoder and v in BLIND_BOOKS), ""
        )
        self.keeper = keeper if keeper is not None else BookKeeper(keeper_settings)

    def state(self) -> tuple[int, int, BookKeeper]:  # type: ignore[override]
        return (self.wmark, self.dl_seq, self.keeper)

    def decode(self, messages: Iterable[tuple[int, bytes, int, int]], *, clocked: bool = True) -> TickBatch:
        """Decode ``(offset, raw, ts_recv, ts_kafka)`` frames in order."""
        src, decode, validator = self.src, self.feed_decoder, self.validator_for(clocked)
        check_tick, check_quote, check_book = validator.check, validator.check_quote, validator.check_book
        keeper = self.keeper
        ticks: list[Tick] = []
        quotes: list[Quote] = []
        dead: list[DeadLetter] = []
        events: list[Event] = []
        kept = KeeperOut()
        decided = Tally()
        wmark = self.wmark
        n_read = 0
        for offset, raw, ts_recv, ts_kafka in messages:
            try:
                records = decode(raw, src, offset, ts_recv, ts_kafka)
            except Exception as exc:
                n_read += 1
                error = data_error(exc)
                dead.append(self._dead(error, raw, offset, ts_recv, ts_kafka, 0, 1, None))
                if self.blind_venue:
                    keeper.lose_all(self.blind_venue, "undecodable frame", ts_recv, src, offset, kept)
                continue
            count = len(records)
            for index, rec in enumerate(records):
                kind = type(rec)
                if kind is Control:
                    ctrl: Control = rec  # type: ignore[assignment]
                    if ctrl.ticktape == OVERSIZED:
                        n_read += 1
                        dead.append(self._oversized(ctrl, offset, ts_recv, ts_kafka))
                        continue
                    events.append(self._control(ctrl, offset))
                    if ctrl.ticktape == CONNECTED and ctrl.session > 1 and ctrl.reason != PLANNED:
                        # frames may have been missed while away, and no diff may come to say so
                        keeper.lose_all(ctrl.venue, "reconnect", ctrl.ts, src, offset, kept)
                    continue
                n_read += 1
                try:
                    if kind is Tick:
                        tick = check_tick(rec)  # type: ignore[arg-type]
                        if tick.ts_event > wmark:
                            wmark = tick.ts_event
                        tick.wmark = wmark
                        ticks.append(tick)
                    elif kind is Quote:
                        quotes.append(check_quote(rec))  # type: ignore[arg-type]
                    else:
                        update = check_book(rec)  # type: ignore[arg-type]
                        if keeper.apply(update, kept) == ACCEPTED:
                            decided.accepted += 1
                        else:
                            decided.duplicate += 1
                except Exception as exc:
                    error = data_error(exc)
                    dead.append(self._dead_record(error, raw, offset, ts_recv, ts_kafka, index, count, rec))
        self.wmark = wmark
        aggregate = self._aggregate
        for dl in dead:
            events.append(dead_letter_event(dl, aggregate, self.next_seq(), dl.ts_kafka))
        return TickBatch(
            src, ticks, dead, n_read, wmark, events, quotes, kept.snapshots, kept.facts,
            decided if decided.accepted or decided.duplicate else None,
        )  # fmt: skip

    def final(self, offset: int, ts_recv: int) -> TickBatch:
        """The batch of a clean end of input: a ``final`` snapshot of every book in sync."""
        kept = KeeperOut()
        self.keeper.final(self.src, offset, ts_recv, kept)
        return TickBatch(self.src, [], [], 0, self.wmark, books=kept.snapshots)

    def _dead_record(
        self,
        exc: DataError,
        raw: bytes,
        offset: int,
        ts_recv: int,
        ts_kafka: int,
        index: int,
        count: int,
        rec: Any,
    ) -> DeadLetter:
        if type(rec) is Tick:
            return self._dead(exc, raw, offset, ts_recv, ts_kafka, index, count, rec)
        dl = self._dead(exc, raw, offset, ts_recv, ts_kafka, index, count, None)
        return msgspec.structs.replace(dl, venue=rec.venue, symbol=rec.symbol)

    def _oversized(self, ctrl: Control, offset: int, ts_recv: int, ts_kafka: int) -> DeadLetter:
        exc = DataError(DLCode.OVERSIZED, "$", "a frame of at most max_frame_bytes", f"{ctrl.frames} bytes")
        return DeadLetter(
            event_id(ts_kafka, "DL", self.src, offset, 0), exc.code,
            f"{exc.describe()} (connection {ctrl.conn} session {ctrl.session}; first {len(ctrl.reason)} characters kept)",
            ctrl.reason.encode(), self.src, offset, ts_recv, ctrl.venue, "", ts_kafka, raw_size=ctrl.frames,
        )  # fmt: skip

    def _control(self, ctrl: Control, offset: int) -> Event:
        """The event of a control frame, on the partition's source aggregate."""
        payload: dict[str, object] = {"venue": ctrl.venue, "conn": ctrl.conn, "session": ctrl.session}
        kind = ctrl.ticktape
        if kind == CONNECTED:
            typ, tag = EventType.FEED_CONNECTED, "FC"
            payload["url"] = ctrl.url
        elif kind == DISCONNECTED:
            typ, tag = EventType.FEED_DISCONNECTED, "FD"
            payload |= {"reason": ctrl.reason, "frames": ctrl.frames}
        elif kind == GAP:
            typ, tag = EventType.SEQUENCE_GAP, "FG"
            payload |= {
                "kind": "sequence_num", "first_missing": ctrl.first, "last_missing": ctrl.last,
                "count": ctrl.last - ctrl.first + 1,
            }  # fmt: skip
        elif kind == VENUE_ERROR:
            typ, tag = EventType.VENUE_ERROR, "VE"
            payload["reason"] = ctrl.reason
        else:  # a control frame of a later version: keep it visible
            typ, tag = EventType.VENUE_ERROR, "VE"
            payload["reason"] = f"unknown control frame {kind!r}"
        return Event(
            event_id(ctrl.ts, tag, ctrl.conn, ctrl.session, ctrl.first, ctrl.last, ctrl.reason),
            typ, self._aggregate, self.next_seq(), ctrl.ts, 0, _enc.encode(payload), f"{self.src}@{offset}",
        )  # fmt: skip


def _no_trades(raw: bytes, src: str, offset: int, ts_recv: int, ts_kafka: int) -> list[Tick]:
    raise AssertionError("FeedBatchDecoder decodes with its feed decoder")  # pragma: no cover


def make_batch_decoder(
    fmt: str,
    src: str,
    rules: ValidationRules,
    *,
    check_clock: bool,
    state: tuple[Any, ...] | None = None,
    keeper_settings: KeeperSettings | None = None,
) -> BatchDecoder:
    """The batch decoder of format ``fmt`` for partition ``src``, resumed from ``state``
    (what its ``state()`` returned) when given."""
    validator = TickValidator(rules, check_clock=check_clock)
    feed = FEED_FORMATS.get(fmt)
    if feed is not None:
        wmark, dl_seq = (state[0], state[1]) if state else (0, 0)
        keeper = state[2] if state and len(state) > 2 and isinstance(state[2], BookKeeper) else None
        return FeedBatchDecoder(
            src, feed, validator, wmark=wmark, dl_seq=dl_seq, keeper=keeper, keeper_settings=keeper_settings
        )
    decode = FORMATS.get(fmt)
    if decode is None:
        raise InputError(f"unknown message format {fmt!r}; known formats: {', '.join(format_names())}")
    return BatchDecoder.resume(src, decode, validator, state)


__all__ = [
    "FEED_FORMATS", "FEED_VENUES", "BookUpdate", "FeedBatchDecoder", "format_names", "is_feed_format",
    "make_batch_decoder",
]  # fmt: skip
