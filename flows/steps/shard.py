"""The keyed step: per-symbol dedupe, gaps, staleness, price guard, sequencing.

Unit of parallelism: a *shard* (symbols hash into ``run.shards`` shards; Bytewax spreads
shards over workers). One :class:`ShardProcessor` owns every symbol of its shard, so
items that cross workers are whole batches, not single ticks (docs/architecture.md,
"Parallelism").
Everything here is a pure function of the order of ticks within each source partition,
so replays, batch sizes and worker counts do not change the output. Resume state: the
processor pickles itself (symbol states are ``__slots__`` objects with explicit state).
"""

from __future__ import annotations

import time

import msgspec

from ticktape.flows.steps.candles import CandleConfig, CandleEngine
from ticktape.flows.steps.dedupe import DUPLICATE, JUMP, NEW, STALE, KeyWindow, TradeWindow
from ticktape.flows.steps.slots import SlotState
from ticktape.schemas.decoding import dead_letter_event
from ticktape.schemas.errors import RejectError
from ticktape.schemas.ids import PriceIds, candle_event_id, event_id, stable_bucket
from ticktape.schemas.records import (
    Candle,
    DeadLetter,
    DLCode,
    Event,
    EventType,
    PriceUpdate,
    Tally,
    Tick,
    aggregate_of,
)
from ticktape.schemas.validation import PriceGuard, ValidationRules

_enc = msgspec.json.Encoder()


class ShardSettings(msgspec.Struct, frozen=True):
    """The knobs of the keyed step, taken from the config by the flow.

    ``reorder``/``reorder_time``: a missing id of a contiguous venue is a gap once the
    high-water mark is ``reorder`` ids past it and the partition's watermark is
    ``reorder_time`` ns past the moment an id above it was first seen (0: ids alone).
    ``max_id_jump``: how far one numeric id may move a symbol's dedupe window (0: any).
    ``max_keys``: venue+symbol keys one shard tracks; ticks of further keys are rejected
    (``KEY_LIMIT``), which bounds the keyed state's memory whatever the input (0: no
    bound). ``shards`` names the shard aggregate of those rejections."""

    rules: ValidationRules
    window: int
    reorder: int
    contiguous_venues: frozenset[str]
    stale_after: int
    stale_overrides: dict[str, int]
    live: bool
    candles: CandleConfig = CandleConfig(enabled=False)
    max_id_jump: int = 0
    max_keys: int = 0
    shards: int = 1
    reorder_time: int = 0  # (last: snapshots pickle the settings positionally)


class ShardOut(msgspec.Struct, gc=False):
    """Everything one batch of one shard produced."""

    updates: list[PriceUpdate]
    events: list[Event]
    dead: list[DeadLetter]
    candles: list[Candle]
    counts: dict[str, Tally]  # per source partition
    below_window: int = 0
    missing: int = 0

    def is_empty(self) -> bool:
        return not (self.updates or self.events or self.dead or self.candles or self.counts)


class SymbolState(SlotState):
    __slots__ = (
        "agg", "ev_seq", "guard", "ids", "keys", "last_ts", "price_ids", "seq", "src", "stale",
        "stale_after", "symbol", "venue",
    )  # fmt: skip

    def __init__(self, venue: str, symbol: str, stale_after: int) -> None:
        self.src = ""
        self.venue = venue
        self.symbol = symbol
        self.agg = aggregate_of(venue, symbol)
        self.price_ids = PriceIds(venue, symbol)
        self.seq = 0
        self.ev_seq = 0
        self.ids = TradeWindow()
        self.keys = KeyWindow()
        self.guard = PriceGuard()
        self.last_ts = 0
        self.stale = False
        self.stale_after = stale_after


def _tick_dead_letter(t: Tick, code: str, message: str, tag: str = "DL") -> DeadLetter:
    """The dead letter of tick ``t`` (its id from the tick's coordinates and ``tag``)."""
    return DeadLetter(
        event_id(t.ts_event, tag, t.src, t.offset, t.trade_id), code, message,
        msgspec.json.encode(t), t.src, t.offset, t.ts_recv, t.venue, t.symbol, t.ts_kafka,
    )  # fmt: skip


def _symbol_dead_letter(st: SymbolState, dl: DeadLetter, t: Tick, events: list[Event]) -> DeadLetter:
    """``dl`` with its ``DeadLettered`` event on the symbol's aggregate (next seq)."""
    st.ev_seq += 1
    events.append(dead_letter_event(dl, st.agg, st.ev_seq, t.ts_event))
    return dl


class ShardProcessor:
    """Per-shard state machine; :meth:`process` handles one batch of ticks in order."""

    def __init__(self, settings: ShardSettings) -> None:
        self.settings = settings
        self.symbols: dict[str, dict[str, SymbolState]] = {}
        self.wmarks: dict[str, int] = {}
        self.candles = (
            CandleEngine(settings.candles, live=settings.live) if settings.candles.enabled else None
        )
        self._last_scan_stream = 0
        self._last_scan_wall = 0
        self.n_keys = 0
        self.limit_seq = 0  # seq of this shard's KEY_LIMIT dead-letter events

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        if "n_keys" not in state:  # a snapshot from before the key bound
            self.n_keys = sum(len(v) for v in self.symbols.values())
            self.limit_seq = 0

    def _state(self, venue: str, symbol: str) -> SymbolState:
        by_symbol = self.symbols.get(venue)
        if by_symbol is None:
            by_symbol = self.symbols[venue] = {}
        st = by_symbol.get(symbol)
        if st is None:
            s = self.settings
            stale = s.stale_overrides.get(symbol, s.stale_after)
            st = by_symbol[symbol] = SymbolState(venue, symbol, stale)
            self.n_keys += 1
        return st

    def _event(
        self,
        st: SymbolState,
        typ: str,
        event_id: str,
        ts_event: int,
        payload: object,
        causation: str,
    ) -> Event:
        st.ev_seq += 1
        return Event(event_id, typ, st.agg, st.ev_seq, ts_event, 0, _enc.encode(payload), causation)

    def process(self, ticks: list[Tick]) -> ShardOut:
        s = self.settings
        rules, window, reorder = s.rules, s.window, s.reorder
        max_jump, z_threshold, z_min = rules.max_jump_pct, rules.zscore_threshold, rules.zscore_min_samples
        max_id_jump, reorder_time, max_keys = s.max_id_jump, s.reorder_time, s.max_keys
        contiguous = s.contiguous_venues
        now = time.time_ns()
        updates: list[PriceUpdate] = []
        events: list[Event] = []
        dead: list[DeadLetter] = []
        counts: dict[str, Tally] = {}
        gaps: list[tuple[int, int]] = []
        below = missing = 0
        wmarks, symbols, engine = self.wmarks, self.symbols, self.candles
        candles: list[Candle] = []
        closed: list[Candle] = []
        encode, price_updated = _enc.encode, EventType.PRICE_UPDATED
        cur_src, cnt, cur_wm = "", Tally(), 0
        for t in ticks:
            src = t.src
            if src != cur_src:  # batches usually hold one source partition: look it up once
                cur_src, cur_wm = src, wmarks.get(src, 0)
                cnt = counts.get(src) or counts.setdefault(src, Tally())
            wmark = t.wmark
            if wmark > cur_wm:
                cur_wm = wmarks[src] = wmark
            by_symbol = symbols.get(t.venue)
            st = by_symbol.get(t.symbol) if by_symbol is not None else None
            if st is None:
                if max_keys and self.n_keys >= max_keys:
                    dead.append(self._key_limit_dead_letter(t, events))
                    cnt.rejected += 1
                    continue
                st = self._state(t.venue, t.symbol)
            if t.trade_no >= 0:
                verdict = st.ids.check(
                    t.trade_no, window, reorder, gaps if t.venue in contiguous else None, max_id_jump,
                    wmark, reorder_time,
                )  # fmt: skip
            elif st.ids.hwm >= 0 and t.trade_id.isdigit():  # numeric, beyond the numeric id range
                verdict = JUMP
            else:
                key = t.trade_id or f"{src}@{t.offset}:{t.ts_event}:{t.price!r}:{t.size!r}"
                verdict = st.keys.check(key, window)
            if verdict == DUPLICATE:
                cnt.duplicate += 1
                continue
            # Staleness first: a scan between batches would have flagged it before this
            # tick, so the symbol's event order (and seq) must not depend on batching.
            if st.last_ts and not st.stale and wmark - st.last_ts > st.stale_after:
                events.append(self._stale_event(st))
            if verdict != NEW:  # an id that cannot be judged: rejected visibly, never a silent duplicate
                dead.append(self._id_dead_letter(st, t, verdict, events))
                cnt.rejected += 1
                below += verdict == STALE
                continue
            ts, price = t.ts_event, t.price
            causation = f"{src}@{t.offset}"
            st.src = src
            if gaps:
                missing += self._gap_events(st, gaps, ts, causation, events)
            guard = st.guard
            last = guard.last
            # a cheap, slightly wider pre-check; the exact rule decides in _jump_dead_letter
            if max_jump and last > 0.0 and abs(price - last) * 100.0 > last * max_jump * 0.999999:
                dl = self._jump_dead_letter(st, t, max_jump, events)
                if dl is not None:
                    dead.append(dl)
                    cnt.rejected += 1
                    continue
            if engine is not None:
                added = engine.add(t, closed)  # first closes what the tick's watermark ends
                if closed:
                    self._candle_events(closed, candles, events)
                if not added:
                    dead.append(self._late_dead_letter(st, t, engine, causation, events))
                    cnt.rejected += 1
                    continue
            z = guard.observe(price, z_threshold > 0.0 and guard.n >= z_min)
            if z and abs(z) > z_threshold:
                events.append(self._event(
                    st, EventType.ANOMALY, event_id(ts, "A", st.agg, t.trade_id, src, t.offset),
                    ts, {"price": price, "zscore": z, "trade_id": t.trade_id}, causation,
                ))  # fmt: skip
            st.seq += 1
            st.stale = False
            if ts > st.last_ts:
                st.last_ts = ts
            update = PriceUpdate(
                t.venue, t.symbol, price, t.size, t.side, t.trade_id, ts,
                t.ts_kafka, t.ts_recv, now, st.seq, src, t.offset,
            )  # fmt: skip
            updates.append(update)
            st.ev_seq += 1
            events.append(Event(
                st.price_ids.of(ts, t.trade_id, src, t.offset), price_updated, st.agg, st.ev_seq, ts, 0,
                encode(update), causation,
            ))  # fmt: skip
            cnt.accepted += 1
        self._scan_stale(events, now)
        return ShardOut(
            updates,
            events,
            dead,
            candles,
            counts,
            below,
            missing,
        )

    def _jump_dead_letter(
        self, st: SymbolState, t: Tick, max_jump: float, events: list[Event]
    ) -> DeadLetter | None:
        """The dead letter of a price jump (None if the exact rule lets the price pass)."""
        try:
            st.guard.check_jump(t.price, max_jump)
        except RejectError as exc:
            return _symbol_dead_letter(st, _tick_dead_letter(t, exc.code, exc.describe()), t, events)
        return None

    def _id_dead_letter(self, st: SymbolState, t: Tick, verdict: int, events: list[Event]) -> DeadLetter:
        """``STALE_ID`` (an id below the dedupe window) or ``ID_JUMP`` (an outlier id)."""
        s, ids = self.settings, st.ids
        if verdict == STALE:
            code = DLCode.STALE_ID
            message = (
                f"field `trade_id`: expected an id within {s.window} below the high-water mark {ids.hwm} "
                f"(an older id cannot be told from a replay), got {t.trade_id}"
            )
        else:
            code = DLCode.ID_JUMP
            limit = f"at most {s.max_id_jump} above" if t.trade_no >= 0 else "an 18-digit id near"
            message = (
                f"field `trade_id`: expected {limit} the high-water mark {ids.hwm} (an outlier id "
                f"must not move the dedupe window), got {t.trade_id[:40]}"
            )
        return _symbol_dead_letter(st, _tick_dead_letter(t, code, message), t, events)

    def _key_limit_dead_letter(self, t: Tick, events: list[Event]) -> DeadLetter:
        """``KEY_LIMIT``: the shard tracks ``max_keys`` keys already. Its event belongs to
        the shard's own aggregate (the rejected key gets no state, not even a seq)."""
        dl = _tick_dead_letter(
            t, DLCode.KEY_LIMIT,
            f"field `venue`/`symbol`: expected one of the {self.settings.max_keys} keys this shard "
            f"tracks (dedupe.max_keys_per_shard), got the new key {aggregate_of(t.venue, t.symbol)}",
        )  # fmt: skip
        self.limit_seq += 1
        shard = stable_bucket(t.symbol, max(self.settings.shards, 1))
        events.append(dead_letter_event(dl, f"shard:{shard:03d}", self.limit_seq, t.ts_event))
        return dl

    def _late_dead_letter(
        self, st: SymbolState, t: Tick, engine: CandleEngine, causation: str, events: list[Event]
    ) -> DeadLetter:
        dl = _tick_dead_letter(t, DLCode.LATE_TICK, engine.late_detail(t), tag="LT")
        events.append(self._event(st, EventType.LATE_TICK, dl.dl_id, t.ts_event, dl, causation))
        return dl

    def _candle_events(self, closed: list[Candle], candles: list[Candle], events: list[Event]) -> None:
        """Candles just emitted -> CandleClosed/CandleRevised events on their symbols."""
        for c in closed:
            st = self._state(c.venue, c.symbol)
            typ = EventType.CANDLE_CLOSED if c.revision == 0 else EventType.CANDLE_REVISED
            events.append(self._event(st, typ, candle_event_id(c), c.end, c, f"candle/{c.interval}"))
        candles.extend(closed)
        closed.clear()

    def _gap_events(
        self,
        st: SymbolState,
        gaps: list[tuple[int, int]],
        ts: int,
        causation: str,
        out: list[Event],
    ) -> int:
        missing = 0
        for first, last in gaps:
            count = last - first + 1
            missing += count
            payload = {
                "venue": st.venue,
                "symbol": st.symbol,
                "first_missing": first,
                "last_missing": last,
                "count": count,
            }
            out.append(
                self._event(
                    st,
                    EventType.SEQUENCE_GAP,
                    event_id(ts, "G", st.agg, first, last),
                    ts,
                    payload,
                    causation,
                )
            )
        gaps.clear()
        return missing

    def _stale_event(self, st: SymbolState) -> Event:
        st.stale = True
        at = st.last_ts + st.stale_after
        payload = {
            "venue": st.venue,
            "symbol": st.symbol,
            "last_ts_event": st.last_ts,
            "stale_after_ns": st.stale_after,
        }
        return self._event(st, EventType.SYMBOL_STALE, event_id(at, "S", st.agg, st.last_ts), at, payload, "")

    def _scan_stale(self, out: list[Event], now_wall: int, *, force: bool = False) -> None:
        """Flag symbols silent for longer than their staleness.

        A symbol is stale when its partition's watermark (and, in live mode, the wall
        clock) is more than ``stale_after`` past its last trade. The same condition is
        checked when the symbol's next tick arrives (with that tick's watermark), so the
        event exists and is identical whenever the scans happen; scans are only needed
        for symbols that never trade again, and run at most twice per wall second
        (``force``: now, at the end of input, whatever the wall clock did).
        """
        wmarks = self.wmarks
        stream = max(wmarks.values(), default=0)
        if not force and (
            now_wall - self._last_scan_wall < 500_000_000
            or (stream == self._last_scan_stream and not self.settings.live)
        ):
            return
        self._last_scan_wall, self._last_scan_stream = now_wall, stream
        live = self.settings.live
        for by_symbol in self.symbols.values():
            for st in by_symbol.values():
                if not st.last_ts or st.stale:
                    continue
                ref = wmarks.get(st.src, 0)
                if live and now_wall > ref:
                    ref = now_wall
                if ref - st.last_ts > st.stale_after:
                    out.append(self._stale_event(st))

    def tick_clock(self) -> ShardOut:
        """Wall-clock housekeeping with no input (live mode timers)."""
        events: list[Event] = []
        candles: list[Candle] = []
        if self.candles is not None:
            closed: list[Candle] = []
            self.candles.tick_clock(closed)
            self._candle_events(closed, candles, events)
        self._scan_stale(events, time.time_ns())
        return ShardOut([], events, [], candles, {})

    def flush(self) -> ShardOut:
        """End of input: flag symbols gone stale since the last scan (so that the output
        does not depend on when scans ran), then report every hole still open (still
        inside the reorder tolerance in ids or in time)."""
        events: list[Event] = []
        self._scan_stale(events, time.time_ns(), force=True)
        missing = 0
        gaps: list[tuple[int, int]] = []
        contiguous = self.settings.contiguous_venues
        for venue, by_symbol in self.symbols.items():
            if venue not in contiguous:
                continue
            for st in by_symbol.values():
                st.ids.flush(gaps)
                if gaps:
                    missing += self._gap_events(st, gaps, st.last_ts, "eof", events)
        candles: list[Candle] = []
        if self.candles is not None:
            closed: list[Candle] = []
            self.candles.flush(closed)
            self._candle_events(closed, candles, events)
        return ShardOut([], events, [], candles, {}, 0, missing)
