"""Bounded-memory duplicate and gap detection per symbol (docs/architecture.md, "Dedupe and gaps").

Numeric trade ids use an anti-replay window: the high-water mark ``hwm`` plus a bitmap of
the last ``window`` ids below it (bit ``i`` set = id ``hwm - i`` seen). An id inside the
window is new exactly once; an id below the window cannot be told apart from a replay and
is counted as a duplicate (``BELOW_WINDOW``). A missing id becomes part of a gap once the
high-water mark is ``reorder`` ids past it, so trades that arrive slightly out of order
are not reported as gaps; a run of missing ids is reported as one range. Non-numeric ids (UUIDs, source coordinates) use a bounded
first-in-first-out set. Memory per symbol is O(window) bits, whatever the run length.
"""

from __future__ import annotations

NEW = 0
DUPLICATE = 1
BELOW_WINDOW = 2


class TradeWindow:
    """Anti-replay window over contiguous numeric trade ids."""

    __slots__ = ("bits", "hwm", "matured", "pending")

    def __init__(self) -> None:
        self.hwm = -1
        self.bits = 0
        self.matured = -1  # highest id whose gap check is done
        self.pending = -1  # first id of a run of matured missing ids not reported yet

    def check(self, n: int, window: int, reorder: int, gaps: list[tuple[int, int]] | None) -> int:
        """Classify id ``n`` and record it. Matured gaps are appended to ``gaps`` as
        inclusive ``(first, last)`` ranges when ``gaps`` is given (contiguous venues)."""
        hwm = self.hwm
        if n > hwm:
            if hwm < 0:
                self.hwm, self.bits, self.matured = n, 1, n
                return NEW
            if gaps is not None:  # n itself is seen now: never mature past n - 1
                self._mature(n - max(reorder, 1), gaps)
            shift = n - hwm
            self.bits = ((self.bits << shift) | 1) & ((1 << window) - 1) if shift < window else 1
            self.hwm = n
            return NEW
        d = hwm - n
        if d >= window:
            return BELOW_WINDOW
        mask = 1 << d
        if self.bits & mask:
            return DUPLICATE
        self.bits |= mask
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

    def __getstate__(self) -> tuple[int, int, int, int]:
        return (self.hwm, self.bits, self.matured, self.pending)

    def __setstate__(self, state: tuple[int, int, int, int]) -> None:
        self.hwm, self.bits, self.matured, self.pending = state


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
