"""Bounded-memory duplicate and gap detection per symbol (docs/architecture.md, "Dedupe and gaps").

Numeric trade ids use an anti-replay window: the high-water mark ``hwm`` plus a bitmap of
the last ``window`` ids below it (bit ``i`` set = id ``hwm - i`` seen). An id inside the
window is new exactly once; a repeat is a ``DUPLICATE``. An id below the window cannot be
told apart from a replay or a very late trade: it is ``STALE`` (the keyed step rejects it
visibly as ``STALE_ID``; only a known repeat is a duplicate). An id more than
``max_jump`` above the high-water mark is a ``JUMP`` (rejected as ``ID_JUMP``) and does
not move the window, so one outlier id cannot make every later trade stale. On venues
with contiguous ids (``gaps`` given) that is the bound; on others, whose ids may be
sparse (a counter shared by all symbols), an id must also more than double the
high-water mark to be a jump. :data:`JUMP_CONFIRM` consecutive such ids, each above the
previous one by at most that bound, are a real jump (a venue restart, a long
disconnection) and the last one moves the window.

A missing id *matures* into (part of) a gap only when both the high-water mark is
``reorder`` ids past it and, with ``reorder_time`` set, the event time has moved
``reorder_time`` past the moment an id above it was first seen, so trades that arrive out
of order by a few ids on a quiet symbol or by minutes on a busy one are not gaps. "Event
time" is the watermark each tick carries (``Tick.wmark``, the largest ``ts_event`` of its
partition so far), never the wall clock, so gaps are a pure function of each partition's
order. That moment is kept coarsely: a missing id is stamped with the end of the *span*
(a quarter of ``reorder_time``) in which the high-water mark first passed it, a few
``(id, time)`` checkpoints per symbol that are dropped as they mature, so a hole matures
between ``reorder_time`` and 1.25 x ``reorder_time`` after it appeared (checked on the
symbol's trades that move the high-water mark, so the output is the same whatever the
batching). An id
about to leave the window matures at once (it could only come back as ``STALE``). A run
of missing ids is reported as one range; a hole filled before it matures is no gap, one
filled after stays reported. Non-numeric ids (UUIDs, source coordinates) use a bounded
first-in-first-out set. Memory per symbol is O(window) bits, whatever the run length.
"""

from __future__ import annotations

NEW = 0
DUPLICATE = 1
STALE = 2
JUMP = 3
BELOW_WINDOW = STALE  # the former name
#: Consecutive ids beyond ``max_jump`` that confirm a real jump of the id sequence.
JUMP_CONFIRM = 3
#: Spans per ``reorder_time``: the time rule's checkpoints are this coarse (a gap is
#: reported at most ``reorder_time / SPANS`` later than the rule says).
SPANS = 4


class TradeWindow:
    """Anti-replay window over contiguous numeric trade ids, with gap maturity.

    Resume state: :meth:`__getstate__` is a short tuple of ints (the bitmap is one int);
    the time rule adds two ints plus two per pending checkpoint (at most ``SPANS + 1``).
    """

    __slots__ = (
        "bits", "ckpts", "hwm", "jump_last", "jump_run", "matured", "pending", "span_end", "tbound", "wake",
    )  # fmt: skip

    def __init__(self) -> None:
        self.hwm = -1
        self.bits = 0
        self.matured = -1  # highest id whose gap check is done
        self.pending = -1  # first id of a run of matured missing ids not reported yet
        self.jump_run = 0  # consecutive ids beyond max_jump so far
        self.jump_last = -1  # the last of them
        # the time rule (``reorder_time``; see the module docstring)
        self.tbound = -1  # ids up to here have waited reorder_time
        self.span_end = 0  # end of the open span (0: none open)
        self.ckpts: list[int] = []  # closed spans, oldest first: [id, time, id, time, ...]
        self.wake = 0  # event time of the next span close or checkpoint maturity

    def check(
        self,
        n: int,
        window: int,
        reorder: int,
        gaps: list[tuple[int, int]] | None,
        max_jump: int = 0,
        wmark: int = 0,
        reorder_time: int = 0,
    ) -> int:
        """Classify id ``n`` (NEW, DUPLICATE, STALE or JUMP) and record it if NEW.
        Matured gaps are appended to ``gaps`` as inclusive ``(first, last)`` ranges when
        ``gaps`` is given (contiguous venues). ``max_jump`` 0 accepts any jump.
        ``wmark`` is the tick's event time (its partition's watermark) and
        ``reorder_time`` how long a hole waits in event time (0: ids alone decide)."""
        hwm = self.hwm
        if n > hwm:
            if hwm < 0:
                self.hwm, self.bits, self.matured = n, 1, n
                return NEW
            if max_jump and n - hwm > max_jump and (gaps is not None or n - hwm > hwm):
                last = self.jump_last
                bound = max_jump if gaps is not None else max(max_jump, last)
                run = self.jump_run + 1 if self.jump_run and last < n <= last + bound else 1
                self.jump_last = n
                if run < JUMP_CONFIRM:
                    self.jump_run = run
                    return JUMP
            if self.jump_run:
                self.jump_run = 0
            if gaps is not None:  # n itself is seen now: never mature past n - 1
                upto = n - (reorder if reorder > 0 else 1)
                if reorder_time:
                    if wmark >= self.wake:
                        self._clock(wmark, reorder_time)
                    if upto > self.tbound:
                        upto = self.tbound
                    if upto < n - window:  # ids about to leave the window mature now
                        upto = n - window
                if upto > self.matured:
                    self._mature(upto, gaps)
            shift = n - hwm
            self.bits = ((self.bits << shift) | 1) & ((1 << window) - 1) if shift < window else 1
            self.hwm = n
            return NEW
        d = hwm - n
        if d >= window:
            return STALE
        mask = 1 << d
        if self.bits & mask:
            return DUPLICATE
        self.bits |= mask
        if self.jump_run:
            self.jump_run = 0
        return NEW

    def _clock(self, wmark: int, reorder_time: int) -> None:
        """Event time reached ``wmark`` (at least :attr:`wake`), before the high-water mark
        moves: close the open span (every id below the current high-water mark had an id
        above it seen by the span's end), open the next one, and let checkpoints that have
        waited ``reorder_time`` raise :attr:`tbound`. Idempotent when nothing is due."""
        ckpts = self.ckpts
        end = self.span_end
        if wmark >= end:
            if end and (not ckpts or ckpts[-2] < self.hwm) and self.hwm - 1 > self.tbound:
                ckpts += (self.hwm, end)
            self.span_end = wmark + max(reorder_time // SPANS, 1)
        while ckpts and (ckpts[1] + reorder_time <= wmark or ckpts[0] - 1 <= self.matured):
            if ckpts[0] - 1 > self.tbound:
                self.tbound = ckpts[0] - 1
            del ckpts[:2]
        self.wake = min(self.span_end, ckpts[1] + reorder_time) if ckpts else self.span_end

    def flush(self, gaps: list[tuple[int, int]]) -> None:
        """Report every still-missing id up to the high-water mark (end of input)."""
        if self.hwm >= 0:
            self._mature(self.hwm, gaps)
            self.ckpts.clear()

    def _mature(self, upto: int, gaps: list[tuple[int, int]]) -> None:
        """Check ids up to ``upto``. A run of missing ids is reported as one range when
        the first id after it that was seen matures (so a hole of ten ids is one gap)."""
        lo = self.matured + 1
        if upto < lo:
            return
        hwm, bits = self.hwm, self.bits
        start = self.pending
        for ident in range(lo, min(upto, hwm) + 1):
            missing = not (bits >> (hwm - ident)) & 1
            if missing and start < 0:
                start = ident
            elif not missing and start >= 0:
                gaps.append((start, ident - 1))
                start = -1
        if upto > hwm and start < 0:  # ids above the old high-water mark were never seen
            start = hwm + 1
        self.pending = start
        self.matured = upto

    def __getstate__(self) -> tuple[int, ...]:
        state: tuple[int, ...] = (self.hwm, self.bits, self.matured, self.pending)
        if self.span_end:  # the time rule in use (the wake-up time is recomputed)
            return (*state, self.jump_run, self.jump_last, self.tbound, self.span_end, *self.ckpts)
        if self.jump_run:  # (the jump counters only while ids beyond max_jump are counted)
            return (*state, self.jump_run, self.jump_last)
        return state

    def __setstate__(self, state: tuple[int, ...]) -> None:
        self.hwm, self.bits, self.matured, self.pending, self.jump_run, self.jump_last = (*state, 0, -1)[:6]
        self.tbound, self.span_end = (*state[6:8], -1, 0)[:2]
        self.ckpts = list(state[8:])
        self.wake = 0  # recomputed by the next tick that moves the high-water mark


class KeyWindow:
    """The last ``window`` distinct non-numeric ids (insertion-ordered dict as a FIFO set)."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        self.seen: dict[str, None] = {}

    def check(self, key: str, window: int) -> int:
        seen = self.seen
        if key in seen:
            return DUPLICATE
        seen[key] = None
        if len(seen) > window:
            del seen[next(iter(seen))]
        return NEW

    def __getstate__(self) -> list[str]:
        return list(self.seen)

    def __setstate__(self, state: list[str]) -> None:
        self.seen = dict.fromkeys(state)
