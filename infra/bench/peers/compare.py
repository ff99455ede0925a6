"""Do a peer's candles agree with ticktape's on the same trades? (so the comparison is honest)

Both sides are brought to :class:`PeerCandle` (symbol, interval, window start, OHLC,
volume, vwap, trades) and matched by ``(symbol, interval, start)``. What may differ, by
design of the peers (README, "Peers"):

* **open/close**: ticktape takes the trades with the smallest/largest
  ``(ts_event, trade_no, trade_id)``; Bytewax's ``fold_window`` (ordered) folds in event
  time order at microsecond resolution, Quix's ``Earliest``/``Latest`` compare
  millisecond timestamps, both keeping arrival order among equal timestamps. On feeds
  whose trades of one symbol arrive in event-time order (the synthetic feed) they pick
  the same trades, so OHLC and trades must be **equal**.
* **sums**: ticktape's volume and notional are exact (fixed point, independent of
  order); the peers add floats in arrival order. Volume and vwap are compared with a
  relative tolerance (:data:`REL_TOLERANCE`).
* **revisions**: ticktape re-emits a closed window for a late trade (``revision + 1``);
  the peers drop late trades (Bytewax sends them to its ``late`` stream). ticktape's
  latest revision is compared; on in-order feeds there is none.
* **closing**: Bytewax closes every window at the end of its input, like ticktape's
  bounded runs; Quix closes a window only when its partition's time passes the window
  end plus the grace, so the last windows of a bounded run stay open. Which windows a
  peer must have emitted is ``required``; a peer window that ticktape does not have is
  always a disagreement.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import msgspec

from ticktape.schemas.records import Candle

#: Relative tolerance of volume and vwap (float sums in arrival order vs exact sums).
REL_TOLERANCE = 1e-9
#: At most this many disagreements are described in an :class:`Agreement`.
EXAMPLES = 5

Key = tuple[str, int, int]


class PeerCandle(msgspec.Struct, frozen=True):
    """One OHLCV window in the form both sides are compared in (``interval`` in seconds,
    ``start`` in ns since the epoch)."""

    symbol: str
    interval: int
    start: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    vwap: float
    trades: int

    @property
    def key(self) -> Key:
        return (self.symbol, self.interval, self.start)


def from_ticktape(candles: Iterable[Candle]) -> dict[Key, PeerCandle]:
    """ticktape's candles, the latest revision of each window, by key."""
    latest: dict[Key, Candle] = {}
    for c in candles:
        key = (c.symbol, c.interval, c.start)
        if key not in latest or c.revision > latest[key].revision:
            latest[key] = c
    return {
        key: PeerCandle(
            c.symbol, c.interval, c.start, c.open, c.high, c.low, c.close, c.volume, c.vwap, c.trades
        )
        for key, c in latest.items()
    }


class Agreement(msgspec.Struct):
    """How a peer's candles compare with ticktape's: ``equal`` of ``compared`` peer
    candles match; ``missing``: required windows the peer did not emit; ``extra``: peer
    windows ticktape does not have; ``differing``: matched but unequal; ``examples``
    describes the first few disagreements."""

    compared: int
    equal: int
    required: int
    missing: int
    extra: int
    differing: int
    examples: list[str]

    @property
    def ok(self) -> bool:
        return self.compared > 0 and self.missing == 0 and self.extra == 0 and self.differing == 0


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL_TOLERANCE, abs_tol=1e-12)


def differences(ours: PeerCandle, theirs: PeerCandle) -> list[str]:
    """The fields where ``theirs`` differs from ``ours`` beyond what is allowed."""
    out = [
        f"{name} {getattr(ours, name)!r} != {getattr(theirs, name)!r}"
        for name in ("open", "high", "low", "close", "trades")
        if getattr(ours, name) != getattr(theirs, name)
    ]
    out += [
        f"{name} {getattr(ours, name)!r} !~ {getattr(theirs, name)!r}"
        for name in ("volume", "vwap")
        if not _close(getattr(ours, name), getattr(theirs, name))
    ]
    return out


def agree(
    ours: dict[Key, PeerCandle],
    theirs: Iterable[PeerCandle],
    required: Callable[[PeerCandle], bool] = lambda _c: True,
) -> Agreement:
    """Compare a peer's candles with ticktape's (``ours``, :func:`from_ticktape`);
    ``required`` says which of ticktape's windows the peer must have emitted."""
    seen: set[Key] = set()
    examples: list[str] = []
    compared = equal = extra = differing = 0
    for c in theirs:
        compared += 1
        if c.key in seen:
            extra += 1
            if len(examples) < EXAMPLES:
                examples.append(f"{c.key}: emitted twice")
            continue
        seen.add(c.key)
        mine = ours.get(c.key)
        if mine is None:
            extra += 1
            if len(examples) < EXAMPLES:
                examples.append(f"{c.key}: not a ticktape window")
            continue
        diff = differences(mine, c)
        if diff:
            differing += 1
            if len(examples) < EXAMPLES:
                examples.append(f"{c.key}: {'; '.join(diff)}")
        else:
            equal += 1
    must = [key for key, c in ours.items() if required(c)]
    missing = [key for key in must if key not in seen]
    examples += [f"{key}: not emitted" for key in missing[: max(EXAMPLES - len(examples), 0)]]
    return Agreement(compared, equal, len(must), len(missing), extra, differing, examples)
