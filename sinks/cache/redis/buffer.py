"""What keeps the Redis cache sink going while Redis is away: counters, buffer, backoff.

* :class:`RedisCacheStats` - per-type counters shared by the Redis caches of a process,
  exported as Prometheus metrics (``ticktape_cache_*{type}``, ``ticktape_cache_redis_up``).
* :class:`WriteBuffer` - the bounded local buffer. It holds at most one write per key, the
  newest version: an older or equal version of a buffered key is *collapsed* (counted in
  ``ticktape_cache_buffer_collapsed_total``; nothing is lost, the store would have refused
  or overwritten it). When ``limit`` distinct keys are buffered and a new key arrives, the
  least recently written key's write is dropped and counted in
  ``ticktape_cache_buffer_dropped_total{type}`` (a newer price matters more than the oldest
  one), or, with ``raise_when_full``, :class:`~ticktape.schemas.errors.BackpressureError` is raised
  and nothing is dropped.
* :class:`Backoff` - exponential backoff with jitter between reconnection attempts.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from ticktape.schemas.errors import BackpressureError
from ticktape.sinks.cache.api import Write

#: Counters per type; the first six are also persisted in Redis for ``ticktape cache stats``.
COUNTERS = (
    "hits", "misses", "writes", "stale_writes", "evictions", "expirations",
    "buffer_dropped", "buffer_collapsed",
)  # fmt: skip
PERSISTED = COUNTERS[:6]


class RedisCacheStats:
    """Thread-safe counters of the Redis caches of one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[str, Counter[str]] = {name: Counter() for name in COUNTERS}
        self._unsaved: dict[str, Counter[str]] = {name: Counter() for name in PERSISTED}
        self.buffered: Counter[str] = Counter()
        self.reconnects = 0
        self._down: set[int] = set()
        #: ``time.monotonic()`` of the last write any cache of this process landed: a cache
        #: backing off after an older failure may try again at once (Redis is back).
        self.last_success = float("-inf")

    def add(self, name: str, counts: Counter[str] | dict[str, int]) -> None:
        with self._lock:
            self.counts[name].update(counts)
            if name in self._unsaved:
                self._unsaved[name].update(counts)

    def set_buffered(self, delta: Counter[str]) -> None:
        with self._lock:
            self.buffered.update(delta)  # Counter.update adds (negative deltas subtract)

    def set_up(self, owner: int, up: bool, *, reconnected: bool = False) -> None:
        with self._lock:
            if up:
                self._down.discard(owner)
                self.reconnects += reconnected
            else:
                self._down.add(owner)

    @property
    def up(self) -> bool:
        return not self._down

    def get(self, name: str, typ: str) -> int:
        with self._lock:
            return self.counts[name][typ]

    def drain_unsaved(self) -> dict[str, dict[str, int]]:
        """Counters not yet persisted, per type (and forget them)."""
        with self._lock:
            out: dict[str, dict[str, int]] = {}
            for name, counts in self._unsaved.items():
                for typ, n in counts.items():
                    if n:
                        out.setdefault(typ, {})[name] = n
                counts.clear()
            return out

    def collect(self) -> Iterable[Metric]:
        """Prometheus metric families (register with ``RunStats.collectors``)."""
        with self._lock:
            counts = {name: dict(c) for name, c in self.counts.items()}
            buffered, reconnects, up = dict(self.buffered), self.reconnects, not self._down
        for name, values in counts.items():
            fam = CounterMetricFamily(
                f"ticktape_cache_{name}", f"Redis cache {name.replace('_', ' ')} per type.", labels=["type"]
            )
            for typ, n in sorted(values.items()):
                fam.add_metric([typ], n)
            yield fam
        gauge = GaugeMetricFamily(
            "ticktape_cache_buffered", "Writes waiting in the local buffer for Redis.", labels=["type"]
        )
        for typ, n in sorted(buffered.items()):
            gauge.add_metric([typ], n)
        yield gauge
        yield GaugeMetricFamily("ticktape_cache_redis_up", "1 if Redis answered the last request.", value=up)
        yield CounterMetricFamily(
            "ticktape_cache_redis_reconnects", "Reconnections to Redis after an outage.", value=reconnects
        )


class WriteBuffer:
    """Pending writes, one per key (the newest version), at most ``limit`` keys."""

    def __init__(self, limit: int, stats: RedisCacheStats, *, raise_when_full: bool = False) -> None:
        self.limit = limit
        self.stats = stats
        self.raise_when_full = raise_when_full
        self._items: dict[str, Write] = {}  # insertion order = least recently written first

    def __len__(self) -> int:
        return len(self._items)

    def add(self, writes: Iterable[Write]) -> None:
        items = self._items
        added: Counter[str] = Counter()
        collapsed: Counter[str] = Counter()
        dropped: Counter[str] = Counter()
        try:
            for w in writes:
                cur = items.get(w.key)
                if cur is not None:
                    if (w.v1, w.v2) <= (cur.v1, cur.v2):
                        collapsed[w.type] += 1
                        continue
                    collapsed[cur.type] += 1
                    added[cur.type] -= 1
                    del items[w.key]
                elif len(items) >= self.limit:
                    if self.raise_when_full:
                        raise BackpressureError(
                            f"redis cache buffer: {self.limit} keys waiting for Redis (buffer_max); refusing more"
                        )
                    old = items.pop(next(iter(items)))
                    dropped[old.type] += 1
                    added[old.type] -= 1
                items[w.key] = w
                added[w.type] += 1
        finally:
            self._account(added, collapsed=collapsed, dropped=dropped)

    def head(self, n: int) -> list[Write]:
        """The ``n`` least recently written entries (they stay buffered)."""
        out: list[Write] = []
        for w in self._items.values():
            if len(out) == n:
                break
            out.append(w)
        return out

    def remove(self, writes: Sequence[Write]) -> None:
        """Forget ``writes`` that were delivered (unless a newer one replaced them)."""
        gone: Counter[str] = Counter()
        for w in writes:
            if self._items.get(w.key) is w:
                del self._items[w.key]
                gone[w.type] -= 1
        self._account(gone)

    def drop_all(self) -> Counter[str]:
        """Drop everything (counted as dropped); per type what was dropped."""
        lost = Counter(w.type for w in self._items.values())
        self._items.clear()
        self._account(Counter({t: -n for t, n in lost.items()}), dropped=lost)
        return lost

    def clear(self) -> None:
        """Forget everything without counting it as lost (``clear()`` of the cache)."""
        gone = Counter({t: -n for t, n in Counter(w.type for w in self._items.values()).items()})
        self._items.clear()
        self._account(gone)

    def _account(
        self,
        buffered: Counter[str],
        *,
        collapsed: Counter[str] | None = None,
        dropped: Counter[str] | None = None,
    ) -> None:
        if buffered:
            self.stats.set_buffered(buffered)
        if collapsed:
            self.stats.add("buffer_collapsed", collapsed)
        if dropped:
            self.stats.add("buffer_dropped", dropped)


class Backoff:
    """Delays ``base * 2**n`` capped at ``cap`` seconds, of which a random half is jitter."""

    def __init__(self, base: float, cap: float, rng: Callable[[], float] = random.random) -> None:
        self.base = base
        self.cap = cap
        self.rng = rng
        self.failures = 0
        self.next_try = 0.0

    def ready(self, now: float) -> bool:
        return now >= self.next_try

    def failed(self, now: float) -> float:
        """Record a failed attempt at ``now``; the delay before the next one."""
        delay = min(self.cap, self.base * 2.0 ** min(self.failures, 62))
        delay = delay / 2 + self.rng() * delay / 2
        self.failures += 1
        self.next_try = now + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self.next_try = 0.0
