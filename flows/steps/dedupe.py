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
disconnection) and the last one moves the window. A missing id becomes part of a gap once the high-water mark is
``reorder`` ids past it, so trades that arrive slightly out of order are not reported as
gaps; a run of missing ids is reported as one range. Non-numeric ids (UUIDs, source
coordinates) use a bounded first-in-first-out set. Memory per symbol is O(window) bits,
whatever the run length.
"""

from __future__ import annotations

NEW = 0
DUPLICATE = 1
STALE = 2
JUMP = 3
BELOW_WINDOW = STALE  # the former name
#: Consecutive ids beyond ``max_jump`` that confirm a real jump of the id sequence.
JUMP_CONFIRM = 3


class TradeWindow:
    """Anti-replay window over contiguous numeric trade ids."""

    __slots__ = ("bits", "hwm", "jump_last", "jump_run", "matured", "pending")

    def __init__(self) -> None:
        self.hwm = -1
        self.bits = 0
        self.matured = -1  # highest id whose gap check is done
        self.pending = -1  # first id of a run of matured missing ids not reported yet
        self.jump_run = 0  # consecutive ids beyond max_jump so far
        self.jump_last = -1  # the last of them

    def check(
        self, n: int, window: int, reorder: int, gaps: list[tuple[int, int]] | None, max_jump: int = 0
    ) -> int:
        """Classify id ``n`` (NEW, DUPLICATE, STALE or JUMP) and record it if NEW.
        Matured gaps are appended to ``gaps`` as inclusive ``(first, last)`` ranges when
        ``gaps`` is given (contiguous venues). ``max_jump`` 0 accepts any jump."""
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
                self._mature(n - max(reorder, 1), gaps)
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

    def flush(self, gaps: list[tuple[int, int]]) -> None:
        """Report every still-missing id up to the high-water mark (end of input)."""
        if self.hwm >= 0:
            self._mature(self.hwm, gaps)

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
        if self.jump_run:  # (the jump counters only while ids beyond max_jump are counted)
            return (self.hwm, self.bits, self.matured, self.pending, self.jump_run, self.jump_last)
        return (self.hwm, self.bits, self.matured, self.pending)

    def __setstate__(self, state: tuple[int, ...]) -> None:
        self.hwm, self.bits, self.matured, self.pending, self.jump_run, self.jump_last = (*state, 0, -1)[:6]


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
