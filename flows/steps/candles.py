"""Event-time OHLCV candles at several intervals (docs/architecture.md, "Candles").

Semantics (all times ns, windows ``[start, end)`` aligned to the UTC epoch + ``offset``):

* **Order, not arrival**: open/close are the trades with the smallest/largest
  ``(ts_event, trade_no, trade_id)``; volume, notional, counts are sums. The same ticks in
  any order, batching or worker count give the same candle.
* **Closing**: the watermark of a source partition is the largest ``ts_event`` seen on it
  (carried by every tick as ``wmark``) minus ``grace``; a window closes when the watermark
  reaches its end. Because every tick carries its partition's watermark, whether a tick
  is late is a pure function of the partition's order. Live mode only: a partition that
  sent nothing for ``idle_close`` gets the wall clock (minus ``grace``) as watermark, so
  quiet symbols close. Replays and backfills never read the wall clock.
* **Late ticks**: a tick for a closed window re-emits that candle with ``revision + 1``
  while the watermark is less than ``revision_horizon`` past the window end; later, the
  tick is rejected as ``LATE_TICK``. Closed windows are forgotten after the horizon, so
  memory is bounded by open windows + ``horizon / interval`` closed ones per symbol.
* **Empty windows** (``fill_empty``): a symbol that traded before gets O=H=L=C=previous
  close, zero volume, for windows without trades.
"""

from __future__ import annotations

import heapq
import time

import msgspec

from ticktape.flows.steps.slots import SlotState
from ticktape.schemas.durations import Duration
from ticktape.schemas.records import BUY, SELL, Candle, Tick

NS = 1_000_000_000
#: The watermark of a partition that has not advanced yet: before every representable event
#: time (event times are int64 nanoseconds, so well above -2**62 and below 2**62).
NO_WATERMARK = -(1 << 62)
#: A watermark after every representable event time: closes every window (end of input).
END_OF_TIME = 1 << 62
# Sums are kept as integers in units of 2**-64: each tick contributes floor(x * 2**64)
# (exact: scaling by a power of two is exact, int() truncates), and integer addition is
# exact, so volume and notional do not depend on arrival order (float addition is not
# associative). The vectorized backfill path computes the same integers with int64 limbs.
SCALE_BITS = 64
_SCALE = float(2**SCALE_BITS)
_UNIT = 2**SCALE_BITS


def vwap_of(notional: int, volume: int, low: float, high: float, close: float) -> float:
    """Volume-weighted average price of exact sums (``close`` without volume), kept within
    ``[low, high]``: prices near the float minimum (1e-320) lose their notional to the
    fixed-point scale, and a vwap outside the window's range would be a lie."""
    if volume <= 0:
        return close
    return min(max(notional / volume, low), high)


class CandleConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[candles]``."""

    enabled: bool = True
    intervals: tuple[Duration, ...] = (Duration.parse("1m"), Duration.parse("5m"), Duration.parse("1h"))
    offset: Duration = Duration.parse("0s")
    grace: Duration = Duration.parse("2s")
    idle_close: Duration = Duration.parse("5s")
    revision_horizon: Duration = Duration.parse("5m")
    fill_empty: bool = False

    def check(self) -> None:
        from ticktape.schemas.errors import ConfigError

        for iv in self.intervals:
            if not NS <= iv <= 86_400 * NS or iv % NS:
                raise ConfigError(f"candles.intervals: expected whole seconds between 1s and 1d, got {iv!r}")


class Window(SlotState):
    """Accumulator of one candle window (``trades == 0``: an empty, filled window)."""

    __slots__ = (
        "buy", "close", "close_key", "first_id", "high", "last_id", "low", "notional", "open",
        "open_key", "revision", "sell", "trades", "volume",
    )  # fmt: skip

    def __init__(self, price: float) -> None:
        self.open = self.high = self.low = self.close = price
        self.open_key: tuple[int, int, str] = (0, 0, "")
        self.close_key: tuple[int, int, str] = (0, 0, "")
        self.volume = self.notional = self.buy = self.sell = 0  # exact, units of 2**-SCALE_BITS
        self.trades = 0
        self.first_id = self.last_id = ""
        self.revision = -1  # -1: never emitted

    def add(self, t: Tick, key: tuple[int, int, str], size_u: int, notional_u: int) -> None:
        price = t.price
        if self.trades == 0:
            self.open = self.high = self.low = self.close = price
            self.open_key = self.close_key = key
            self.first_id = self.last_id = t.trade_id
        else:
            if price > self.high:
                self.high = price
            elif price < self.low:
                self.low = price
            if key > self.close_key:  # the usual case: trades arrive in order
                self.close, self.close_key, self.last_id = price, key, t.trade_id
            elif key < self.open_key:
                self.open, self.open_key, self.first_id = price, key, t.trade_id
        self.trades += 1
        self.volume += size_u
        self.notional += notional_u
        if t.side == BUY:
            self.buy += size_u
        elif t.side == SELL:
            self.sell += size_u

    def merge(self, other: Window) -> None:
        """Add the trades of ``other`` (which arrived after this window's): the result is
        exactly what adding them one by one would give (keys order open and close; on equal
        keys the first arrival stays, as in :meth:`add`; sums are exact integers)."""
        if other.trades == 0:
            return
        if self.trades == 0:
            self.open, self.high, self.low, self.close = other.open, other.high, other.low, other.close
            self.open_key, self.close_key = other.open_key, other.close_key
            self.first_id, self.last_id = other.first_id, other.last_id
        else:
            if other.high > self.high:
                self.high = other.high
            if other.low < self.low:
                self.low = other.low
            if other.close_key > self.close_key:
                self.close, self.close_key, self.last_id = other.close, other.close_key, other.last_id
            if other.open_key < self.open_key:
                self.open, self.open_key, self.first_id = other.open, other.open_key, other.first_id
        self.trades += other.trades
        self.volume += other.volume
        self.notional += other.notional
        self.buy += other.buy
        self.sell += other.sell


class SeriesState(SlotState):
    """One symbol at one interval: open windows, recently closed ones, last close."""

    __slots__ = (
        "closed", "cur", "cur_end", "cur_start", "last_close", "last_close_start", "next_start", "open", "src",
    )  # fmt: skip

    def __init__(self, src: str) -> None:
        self.src = src
        self.open: dict[int, Window] = {}
        self.closed: dict[int, Window] = {}
        self.last_close = 0.0
        self.last_close_start = NO_WATERMARK
        self.next_start = -1  # first window start not yet emitted (fill_empty)
        # the newest open window: ticks inside [cur_start, cur_end) take the fast path
        self.cur: Window | None = None
        self.cur_start = 0
        self.cur_end = 0


class SymbolCandles(SlotState):
    """Every interval's series of one symbol, and ``stage``: the trades that fall inside
    the current window of *every* interval (``lo <= ts_event < hi``, the intersection of
    those windows) are added there once instead of once per interval, and merged into
    each current window before any of them changes or closes (:meth:`CandleEngine._merge`).
    ``lo == hi``: no common window (the next trade takes the slow path)."""

    __slots__ = ("hi", "lo", "series", "stage")

    def __init__(self, series: list[SeriesState]) -> None:
        self.series = series
        self.stage = Window(0.0)
        self.lo = self.hi = 0

    def common_range(self) -> None:
        """Recompute ``[lo, hi)`` from the series' current windows."""
        lo, hi = NO_WATERMARK, END_OF_TIME
        for series in self.series:
            if series.cur is None:
                self.lo = self.hi = 0
                return
            if series.cur_start > lo:
                lo = series.cur_start
            if series.cur_end < hi:
                hi = series.cur_end
        self.lo, self.hi = (lo, hi) if lo < hi else (0, 0)


SeriesKey = tuple[str, str, int]  # venue, symbol, interval


class CandleEngine:
    """All candle state of one shard. Not thread-safe (one per shard).

    The caller feeds it, in each source partition's order, the accepted ticks (:meth:`add`);
    each tick carries its partition's watermark (``wmark``, the largest ``ts_event`` seen:
    grace is applied here), and the windows it closes are emitted before the tick is added.
    :meth:`observe_watermark` moves a watermark without a tick, :meth:`tick_clock` is the
    live-mode idle close and :meth:`flush` the end of input. Emitted candles are appended to
    the ``out`` lists.
    """

    def __init__(self, cfg: CandleConfig, *, live: bool) -> None:
        self.cfg = cfg
        self.live = live
        self.intervals = tuple(int(i) for i in cfg.intervals)
        self.series: dict[SeriesKey, SeriesState] = {}
        self._by_symbol: dict[str, dict[str, SymbolCandles]] = {}  # venue -> symbol
        self.wm: dict[str, int] = {}  # partition -> candle watermark (grace applied)
        self.last_input_wall: dict[str, int] = {}
        self._closing: dict[
            str, list[tuple[int, str, str, int, int]]
        ] = {}  # partition -> heap of (end, venue, symbol, interval, start)
        self._expiry: dict[str, list[tuple[int, str, str, int, int]]] = {}
        self._filled_upto: dict[str, int] = {}
        # partition -> the tick watermark above which a window closes (or an empty window is
        # due): below it a tick's watermark changes nothing but the late rule, which reads
        # the tick's own watermark, so the engine advances only at window ends
        self._due: dict[str, int] = {}

    def window_start(self, ts: int, interval: int) -> int:
        off = self.cfg.offset
        return (ts - off) // interval * interval + off

    def observe_watermark(self, src: str, max_ts_event: int, out: list[Candle]) -> None:
        """Partition ``src`` has seen event times up to ``max_ts_event``: move its candle
        watermark to ``max_ts_event - grace`` and emit the candles that closes."""
        self._advance(src, max_ts_event - self.cfg.grace, out)

    def late_detail(self, t: Tick) -> str:
        """Why :meth:`add` refused ``t`` (the ``LATE_TICK`` dead letter's message)."""
        behind = (self._watermark(t) - t.ts_event) / 1e9
        return (
            f"field `ts_event`: expected a time inside an open window or within the revision "
            f"horizon ({self.cfg.revision_horizon.seconds:g}s) of a closed one, got "
            f"{t.ts_event} ({behind:.3f}s behind the watermark)"
        )

    def _watermark(self, t: Tick) -> int:
        """The candle watermark of ``t``'s partition as of ``t`` (its own watermark minus
        grace, or later when the idle close moved it)."""
        wm = t.wmark - self.cfg.grace
        moved = self.wm.get(t.src, NO_WATERMARK)
        return moved if moved > wm else wm

    def _advance(self, src: str, wm: int, out: list[Candle]) -> None:
        """Move partition ``src``'s candle watermark to ``wm`` and emit the candles it
        closes (and the empty windows it passes, with ``fill_empty``)."""
        if wm <= self.wm.get(src, NO_WATERMARK):
            return
        self.wm[src] = wm
        self._close_until(src, wm, out)
        if self.cfg.fill_empty:
            self._fill(src, wm, out)
        expiry = self._expiry.get(src)
        horizon = self.cfg.revision_horizon
        while expiry and expiry[0][0] + horizon <= wm:
            _, venue, symbol, interval, start = heapq.heappop(expiry)
            expired = self.series.get((venue, symbol, interval))
            if expired is not None:
                expired.closed.pop(start, None)
        self._set_due(src)

    def _set_due(self, src: str) -> None:
        """Recompute when partition ``src`` next has work (see ``_due``)."""
        heap = self._closing.get(src)
        due = heap[0][0] if heap else END_OF_TIME
        if self.cfg.fill_empty:
            step = min(self.intervals)
            boundary = self.window_start(self.wm.get(src, NO_WATERMARK), step) + step
            if boundary < due:
                due = boundary
        # a window ends once the candle watermark reaches its end: wmark - grace >= end
        self._due[src] = due + self.cfg.grace - 1 if due < END_OF_TIME else END_OF_TIME

    def _close_until(self, src: str, bound: int, out: list[Candle]) -> None:
        heap = self._closing.get(src)
        while heap and heap[0][0] <= bound:
            _, venue, symbol, interval, start = heapq.heappop(heap)
            series = self.series[(venue, symbol, interval)]
            window = series.open.pop(start, None)
            if window is not None:
                self._close(src, series, venue, symbol, interval, start, window, out)

    def _close(
        self,
        src: str,
        series: SeriesState,
        venue: str,
        symbol: str,
        interval: int,
        start: int,
        window: Window,
        out: list[Candle],
    ) -> None:
        sym = self._by_symbol[venue][symbol]
        self._merge(sym)
        window.revision = 0
        series.closed[start] = window
        if series.cur is window:
            series.cur = None
            sym.lo = sym.hi = 0
        if start >= series.last_close_start:
            series.last_close, series.last_close_start = window.close, start
        heapq.heappush(self._expiry.setdefault(src, []), (start + interval, venue, symbol, interval, start))
        out.append(self._candle(venue, symbol, interval, start, window))

    def _fill(self, src: str, wm: int, out: list[Candle]) -> None:
        """Emit empty windows, once per crossing of the smallest interval boundary."""
        step = min(self.intervals)
        boundary = self.window_start(wm, step)
        if boundary <= self._filled_upto.get(src, NO_WATERMARK):
            return
        self._filled_upto[src] = boundary
        for (venue, symbol, interval), series in self.series.items():
            if series.src != src or series.next_start < 0:
                continue
            start = series.next_start
            while start + interval <= wm and start not in series.open:
                if start not in series.closed:
                    self._close(src, series, venue, symbol, interval, start, Window(series.last_close), out)
                start += interval
            series.next_start = start

    def add(self, t: Tick, out: list[Candle]) -> bool:
        """Add an accepted tick, after emitting the windows its watermark closes; returns
        False if it is too late for some interval (the caller rejects it; nothing but those
        closes happened)."""
        if t.wmark > self._due.get(t.src, NO_WATERMARK):
            self._advance(t.src, t.wmark - self.cfg.grace, out)
        by_symbol = self._by_symbol.get(t.venue)
        sym = by_symbol.get(t.symbol) if by_symbol is not None else None
        if sym is not None and sym.lo <= t.ts_event < sym.hi:  # fast path: every current window
            if self.live:
                self.last_input_wall[t.src] = time.time_ns()
            sym.stage.add(
                t, (t.ts_event, t.trade_no, t.trade_id), int(t.size * _SCALE), int(t.price * t.size * _SCALE)
            )
            return True
        return self._add_slow(t, out)

    @staticmethod
    def _merge(sym: SymbolCandles) -> None:
        """Add the staged trades to every interval's current window."""
        stage = sym.stage
        if stage.trades:
            for series in sym.series:
                series.cur.merge(stage)  # type: ignore[union-attr]  # staged only while all exist
            sym.stage = Window(0.0)

    def _symbol_of(self, t: Tick) -> SymbolCandles:
        by_symbol = self._by_symbol.setdefault(t.venue, {})
        sym = by_symbol.get(t.symbol)
        if sym is None:
            series_list = [
                self.series.setdefault((t.venue, t.symbol, interval), SeriesState(t.src))
                for interval in self.intervals
            ]
            sym = by_symbol[t.symbol] = SymbolCandles(series_list)
        return sym

    def _add_slow(self, t: Tick, out: list[Candle]) -> bool:
        wm = self._watermark(t)
        horizon = self.cfg.revision_horizon
        starts = []
        for interval in self.intervals:
            start = self.window_start(t.ts_event, interval)
            if start + interval <= wm and wm - (start + interval) >= horizon:
                return False
            starts.append(start)
        if self.live:
            self.last_input_wall[t.src] = time.time_ns()
        key = (t.ts_event, t.trade_no, t.trade_id)
        size_u = int(t.size * _SCALE)
        notional_u = int(t.price * t.size * _SCALE)
        sym = self._symbol_of(t)
        self._merge(sym)  # the current windows may change below
        for interval, start, series in zip(self.intervals, starts, sym.series, strict=True):
            window = series.open.get(start)
            if window is not None:
                window.add(t, key, size_u, notional_u)
            elif (window := series.closed.get(start)) is not None:  # late, within the horizon: a revision
                window.add(t, key, size_u, notional_u)
                window.revision += 1
                out.append(self._candle(t.venue, t.symbol, interval, start, window))
                continue
            else:
                window = Window(t.price)
                window.add(t, key, size_u, notional_u)
                if series.next_start < 0:
                    series.next_start = start
                if start + interval <= wm:  # its window already closed without trades: emit now
                    self._close(t.src, series, t.venue, t.symbol, interval, start, window, out)
                    continue
                series.open[start] = window
                heap = self._closing.setdefault(t.src, [])
                heapq.heappush(heap, (start + interval, t.venue, t.symbol, interval, start))
                if heap[0][0] == start + interval:  # the partition's next close moved earlier
                    self._set_due(t.src)
            if series.cur is None or start >= series.cur_start:
                series.cur, series.cur_start, series.cur_end = window, start, start + interval
        sym.common_range()
        return True

    def tick_clock(self, out: list[Candle], now_ns: int | None = None) -> None:
        """Live mode: idle partitions follow the wall clock (minus grace)."""
        if not self.live:
            return
        now = time.time_ns() if now_ns is None else now_ns
        idle = self.cfg.idle_close
        for src in list(self._closing):
            if now - self.last_input_wall.get(src, 0) >= idle:
                self._advance(src, now - self.cfg.grace, out)

    def flush(self, out: list[Candle]) -> None:
        """End of input: close every open window (empty windows are filled only up to the
        last watermark: the end of input is not the passing of time)."""
        for src in list(self._closing):
            self._close_until(src, END_OF_TIME, out)

    def state_size(self) -> tuple[int, int]:
        """(open windows, retained closed windows): bounded, see the module docstring."""
        return (
            sum(len(s.open) for s in self.series.values()),
            sum(len(s.closed) for s in self.series.values()),
        )

    @staticmethod
    def _candle(venue: str, symbol: str, interval: int, start: int, w: Window) -> Candle:
        vwap = vwap_of(w.notional, w.volume, w.low, w.high, w.close)
        return Candle(
            venue, symbol, interval // NS, start, start + interval, w.open, w.high, w.low, w.close,
            w.volume / _UNIT, w.notional / _UNIT, vwap, w.trades, w.buy / _UNIT, w.sell / _UNIT,
            w.first_id, w.last_id, w.revision, time.time_ns(),
        )  # fmt: skip

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state.pop("last_input_wall", None)
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self.last_input_wall = {}
