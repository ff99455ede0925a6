"""Bytewax sink for the Redis cache: latest price, metadata and candles per symbol.

:class:`RedisCacheSink` mirrors :class:`~ticktape.sinks.cache.sink.EmbeddedCacheSink` and shares its
partition code (:class:`~ticktape.sinks.cache.sink.CacheSinkPartition`: the same writes from
:func:`~ticktape.sinks.cache.sink.cache_writes`, the same ``proc_to_sink``/``recv_to_sink`` latency).

* Unit of parallelism: the sink partitions (items keyed by shard, so a symbol always
  reaches the same partition). Each partition owns a :class:`~ticktape.sinks.cache.redis.backend.RedisCache`
  with its own connection and bounded buffer; the partitions of a process share one set
  of counters (``ticktape_cache_*`` metrics, registered with :class:`RunStats`).
* Delivery: at-least-once input, idempotent by version in Redis (effectively once).
* Resume state: none. Before every snapshot the partition delivers its buffered writes;
  with ``on_unavailable="fail"`` the snapshot fails while Redis is away, so nothing is
  lost; with ``"buffer"`` (default) the job goes on and only the documented buffer
  overflow can drop writes, each counted (``ticktape_cache_buffer_dropped_total{type}``).
"""

from __future__ import annotations

from ticktape.infra.observability.metrics import RunStats
from ticktape.sinks.base.partitioned import PartitionedSink
from ticktape.sinks.cache.redis.backend import RedisCache
from ticktape.sinks.cache.redis.buffer import RedisCacheStats
from ticktape.sinks.cache.redis.config import RedisConfig
from ticktape.sinks.cache.sink import CacheItem, CacheSinkPartition


class RedisCacheSink(PartitionedSink[CacheItem, None]):
    """Latest prices, metadata, candles and quotes into Redis (``[cache.redis]``)."""

    def __init__(
        self,
        cfg: RedisConfig,
        ttls_ns: dict[str, int],
        *,
        partitions: int = 4,
        stats: RunStats | None = None,
        durable_snapshots: bool = True,
    ) -> None:
        super().__init__(partitions, durable_snapshots=durable_snapshots)
        self.cfg = cfg
        self.ttls_ns = ttls_ns
        self.stats = stats
        self.counters = RedisCacheStats()
        if stats is not None:
            stats.collectors.append(self.counters.collect)

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> CacheSinkPartition:
        cache = RedisCache(self.cfg, self.ttls_ns, stats=self.counters)
        return CacheSinkPartition(
            cache, self.stats, name="redis_cache", owned=True, durable=self.durable_snapshots
        )
