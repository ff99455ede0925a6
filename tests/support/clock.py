"""A clock that moves only when a test moves it, for code that takes a ``clock`` (the
Redis cache's reconnection backoff, the QuestDB sink's flush timer, the embedded
cache's TTLs): tests advance it past a deadline instead of sleeping through it."""

from __future__ import annotations


class FakeClock:
    """Call it for "now"; :meth:`advance` moves it forward. The unit is the caller's:
    seconds (float) where the code under test defaults to ``time.monotonic``, nanoseconds
    (int) where it defaults to ``time.time_ns``."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, delta: float) -> None:
        assert delta >= 0, "a clock never goes back"
        self.now += delta


class FakeNsClock:
    """:class:`FakeClock` in integer nanoseconds (for ``time.time_ns`` stand-ins)."""

    def __init__(self, start: int) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, delta: int) -> None:
        assert delta >= 0, "a clock never goes back"
        self.now += delta
