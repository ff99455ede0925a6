"""Reconnect delays: exponential backoff with full jitter.

The ``n``-th retry in a row waits a uniform random time in ``[0, min(cap, base * 2**n)]``
("full jitter"), so many clients that lost the same venue at once do not come back in
step. A connection that delivered data before it ended starts again at ``n = 0``; one that
ended on a venue error or without data keeps growing its delay up to ``cap``.
"""

from __future__ import annotations

import random


class Backoff:
    """Delays in seconds for consecutive failures (``rng`` injectable for tests)."""

    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        if base <= 0 or cap < base:
            raise ValueError(f"backoff: expected 0 < base <= cap, got base={base}, cap={cap}")
        self.base = base
        self.cap = cap
        self.rng = rng or random.Random()
        self.failures = 0

    def ceiling(self, failures: int | None = None) -> float:
        """The largest delay after ``failures`` failures in a row."""
        n = self.failures if failures is None else failures
        return min(self.cap, self.base * 2.0 ** min(n, 62))

    def next_delay(self) -> float:
        """The delay before the next attempt (then one more failure is counted)."""
        delay = self.rng.uniform(0.0, self.ceiling())
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0
