"""Prometheus metrics of the embedded cache (:class:`~ticktape.sinks.cache.embedded.EmbeddedCache`).

The names and labels are those the Redis cache exports (:class:`~ticktape.sinks.cache.redis.buffer.
RedisCacheStats`), so one dashboard and one set of rules serve both backends:

=======================================  =======  ==========================================
metric                                   type     meaning
=======================================  =======  ==========================================
ticktape_cache_hits_total{type}          counter  reads that found a fresh value
ticktape_cache_misses_total{type}        counter  reads that found nothing or an expired value
ticktape_cache_expirations_total{type}   counter  misses because the value was older than its TTL
ticktape_cache_evictions_total{type}     counter  entries evicted from memory by the LRU bounds
ticktape_cache_writes_total{type}        counter  writes stored (newer version)
ticktape_cache_stale_writes_total{type}  counter  writes refused: not newer than the stored version
ticktape_cache_entries{type}             gauge    entries in memory (embedded only)
ticktape_cache_bytes                     gauge    key + value bytes in memory (embedded only)
=======================================  =======  ==========================================

``type`` is ``price``, ``metadata`` or ``history`` (every type is exported, zeros included).
The counters are this process's since the cache was opened; :meth:`EmbeddedCache.close`
moves them into the cache file (``ticktape cache stats``), so they restart at 0 after it
(Prometheus' ``rate()`` treats that as a counter reset). A scrape reads the counters under
the cache's lock; the per-type entry count walks the in-memory entries, so it is refreshed
at most every ``entries_every`` seconds (default 5).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from ticktape.infra.observability.metrics import RunStats
from ticktape.sinks.cache.api import TYPES
from ticktape.sinks.cache.embedded import EmbeddedCache

#: Counter names, shared with the Redis cache's ``ticktape_cache_<name>_total{type}``.
COUNTERS = ("hits", "misses", "expirations", "evictions", "writes", "stale_writes")
_HELP = {
    "hits": "Cache reads that found a fresh value, per type.",
    "misses": "Cache reads that found no value or an expired one, per type.",
    "expirations": "Cache misses because the value was older than its TTL, per type.",
    "evictions": "Entries evicted from memory by the LRU bounds (max_entries, max_bytes), per type.",
    "writes": "Cache writes stored (newer than the stored version), per type.",
    "stale_writes": "Cache writes refused: not newer than the stored version (replays), per type.",
}


class EmbeddedCacheCollector:
    """The embedded caches a process's sinks use (normally one), as metric families."""

    def __init__(self, entries_every: float = 5.0) -> None:
        self._lock = threading.Lock()
        self.caches: list[EmbeddedCache] = []
        self.entries_every = entries_every
        self._entries: Counter[str] = Counter()
        self._entries_at = -1e18

    def add(self, cache: EmbeddedCache) -> None:
        with self._lock:
            if not any(c is cache for c in self.caches):
                self.caches.append(cache)

    def _entries_now(self, caches: list[EmbeddedCache]) -> Counter[str]:
        now = time.monotonic()
        if now - self._entries_at >= self.entries_every:
            entries: Counter[str] = Counter()
            for cache in caches:
                entries.update({t: int(v["entries"]) for t, v in cache.stats().items()})
            self._entries, self._entries_at = entries, now
        return self._entries

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            caches = list(self.caches)
            entries = self._entries_now(caches)
        totals = {name: Counter[str]() for name in COUNTERS}
        used = 0
        for cache in caches:
            with cache._lock:
                for name in COUNTERS:
                    totals[name].update(getattr(cache, name))
            used += cache.bytes_used
        for name in COUNTERS:
            fam = CounterMetricFamily(f"ticktape_cache_{name}", _HELP[name], labels=["type"])
            for typ in TYPES:
                fam.add_metric([typ], totals[name][typ])
            yield fam
        gauge = GaugeMetricFamily(
            "ticktape_cache_entries", "Entries in the embedded cache's memory, per type.", labels=["type"]
        )
        for typ in TYPES:
            gauge.add_metric([typ], entries[typ])
        yield gauge
        yield GaugeMetricFamily(
            "ticktape_cache_bytes", "Key and value bytes in the embedded cache's memory.", value=used
        )


_shared: weakref.WeakKeyDictionary[RunStats, EmbeddedCacheCollector] = weakref.WeakKeyDictionary()
_shared_lock = threading.Lock()


def register(stats: RunStats | None, cache: EmbeddedCache) -> EmbeddedCacheCollector | None:
    """Export ``cache`` with the metrics of ``stats`` (the collector is registered in
    ``stats.collectors`` once per :class:`RunStats`; each cache is added once)."""
    if stats is None:
        return None
    with _shared_lock:
        collector = _shared.get(stats)
        if collector is None:
            collector = _shared[stats] = EmbeddedCacheCollector()
            stats.collectors.append(collector.collect)
    collector.add(cache)
    return collector
