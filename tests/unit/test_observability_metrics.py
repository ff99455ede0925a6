"""The metrics added for the dashboards: sink write latency histogram, recovery snapshots,
per-symbol ticks for an allow-list only, the embedded cache's collector (same names as the
Redis cache's) and the ``venue_to_sink`` stage."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.core import Metric

from tests.support import records
from ticktape.flows.config import from_dict
from ticktape.infra.observability.metrics import SINK_BUCKETS_S, RunStats, _StatsCollector
from ticktape.schemas.errors import ConfigError
from ticktape.schemas.records import PriceUpdate
from ticktape.sinks.cache import metrics as cache_metrics
from ticktape.sinks.cache.api import HISTORY, METADATA, PRICE, Write, cache_key
from ticktape.sinks.cache.embedded import EmbeddedCache
from ticktape.sinks.cache.redis.buffer import RedisCacheStats
from ticktape.sinks.cache.sink import CacheSinkPartition, EmbeddedCacheSink
from ticktape.sinks.eventlog.sink import EventLogSink

S = 1_000_000_000
TTLS = {PRICE: S, METADATA: 3600 * S, HISTORY: 86_400 * S}


def families(stats: RunStats) -> dict[str, Metric]:
    return {f.name: f for f in _StatsCollector(stats).collect()}


def values(family: Metric) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}


def update(symbol: str, venue: str = "binance", ts: int = 1, seq: int = 1) -> PriceUpdate:
    return records.price_update(
        venue=venue, symbol=symbol, price=100.0, size=1.0, side="buy", trade_id=str(seq), ts_event=ts, ts_kafka=0,
        ts_recv=ts + 1000, ts_proc=ts + 2000, seq=seq, src="t/0", offset=seq,
    )  # fmt: skip


# -- sink write latency -------------------------------------------------------------------------


def test_sink_write_latency_histogram() -> None:
    stats = RunStats()
    stats.count_sink("eventlog", 10, 0.0001)  # exactly on the first bound: le="0.0001"
    stats.count_sink("eventlog", 10, 0.003)
    stats.count_sink("eventlog", 10, 99.0)  # above every bound: +Inf only
    stats.count_sink("eventlog", 0, 0.0, failed=True)  # an error without a duration: no sample
    stats.count_sink("eventlog", 0, 0.02, failed=True)  # a timed failed write: a sample
    hist = values(families(stats)["ticktape_sink_write_latency_seconds"])
    bucket = {float(dict(k[1])["le"]): v for k, v in hist.items() if k[0].endswith("_bucket")}
    assert list(bucket) == [*SINK_BUCKETS_S, float("inf")]
    assert bucket[0.0001] == 1
    assert bucket[0.0025] == 1
    assert bucket[0.005] == 2
    assert bucket[0.025] == 3
    assert bucket[30.0] == 3
    assert bucket[float("inf")] == 4
    labels = (("sink", "eventlog"),)
    assert hist[("ticktape_sink_write_latency_seconds_count", labels)] == 4
    # _sum is the time spent writing, the same as ticktape_sink_write_seconds_total
    assert hist[("ticktape_sink_write_latency_seconds_sum", labels)] == pytest.approx(99.0231)
    assert stats.sink_seconds["eventlog"] == pytest.approx(99.0231)
    assert stats.sink_errors["eventlog"] == 2


def test_sink_with_only_untimed_errors_has_no_latency_series() -> None:
    stats = RunStats()
    stats.count_sink("questdb_prices", 0, 0.0, failed=True)
    assert values(families(stats)["ticktape_sink_write_latency_seconds"]) == {}
    assert values(families(stats)["ticktape_sink_errors"]) == {
        ("ticktape_sink_errors_total", (("sink", "questdb_prices"),)): 1
    }


# -- recovery snapshots ---------------------------------------------------------------------------


def test_recovery_snapshots_counted_by_the_event_log_partitions(tmp_path: Path) -> None:
    stats = RunStats()
    fams = families(stats)
    assert values(fams["ticktape_recovery_snapshots"]) == {("ticktape_recovery_snapshots_total", ()): 0}
    assert "ticktape_recovery_last_snapshot_timestamp_seconds" not in fams  # none yet
    sink = EventLogSink(tmp_path / "events", 2, stats=stats, background=False)
    parts = [sink.build_part("events", str(i), None) for i in range(2)]
    for part in parts:
        part.snapshot()
    parts[0].snapshot()
    for part in parts:
        part.close()
    fams = families(stats)
    assert values(fams["ticktape_recovery_snapshots"]) == {("ticktape_recovery_snapshots_total", ()): 3}
    (last,) = values(fams["ticktape_recovery_last_snapshot_timestamp_seconds"]).values()
    assert last == pytest.approx(stats.last_snapshot)
    assert last > 1.7e9


# -- per-symbol ticks ---------------------------------------------------------------------------


def test_symbol_ticks_only_for_the_allow_list() -> None:
    stats = RunStats()
    stats.count_symbols([update("BTC-USDT")])  # no allow-list: nothing, not even a check per tick
    assert values(families(stats)["ticktape_symbol_ticks"]) == {}
    stats.configure(symbol_labels=["BTC-USDT", "ETH-USDT"])
    stats.count_symbols(
        [update("BTC-USDT"), update("BTC-USDT", "kraken"), update("DOGE-USDT"), update("BTC-USDT")]
    )
    assert values(families(stats)["ticktape_symbol_ticks"]) == {
        ("ticktape_symbol_ticks_total", (("symbol", "BTC-USDT"), ("venue", "binance"))): 2,
        ("ticktape_symbol_ticks_total", (("symbol", "BTC-USDT"), ("venue", "kraken"))): 1,
    }


def test_symbol_labels_are_bounded() -> None:
    with pytest.raises(ValueError, match="at most 100"):
        RunStats().configure(symbol_labels=[f"S{i}-USD" for i in range(101)])
    cfg = from_dict({"metrics": {"symbol_labels": ["BTC-USDT", "ETH-USDT"]}})
    assert cfg.metrics.symbol_labels == ("BTC-USDT", "ETH-USDT")
    assert from_dict({}).metrics.symbol_labels == ()
    with pytest.raises(ConfigError, match="symbol_labels: expected at most 100 symbols, got 101"):
        from_dict({"metrics": {"symbol_labels": [f"S{i}-USD" for i in range(101)]}})
    with pytest.raises(ConfigError, match=r"expected distinct non-empty symbols, got \['A-B'\]"):
        from_dict({"metrics": {"symbol_labels": ["A-B", "C-D", "A-B"]}})
    with pytest.raises(ConfigError, match="non-empty"):
        from_dict({"metrics": {"symbol_labels": [""]}})


# -- venue_to_sink ------------------------------------------------------------------------------


class _NullCache:
    def put_many(self, writes: Any) -> int:
        return len(writes)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("live", [True, False])
def test_venue_to_sink_only_in_live_runs(live: bool) -> None:
    stats = RunStats()
    stats.configure(live=live)
    part = CacheSinkPartition(_NullCache(), stats)  # type: ignore[arg-type]
    part.write_batch([([update("BTC-USDT", ts=1_700_000_000 * S)], [])])
    assert stats.latency.stages["recv_to_sink"].n == 1
    assert stats.latency.stages["venue_to_sink"].n == (1 if live else 0)


# -- the embedded cache's metrics -----------------------------------------------------------------


def cache_values(stats: RunStats) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for extra in stats.collectors:
        for fam in extra():
            out |= values(fam)
    return out


def test_embedded_cache_metrics(tmp_path: Path) -> None:
    stats = RunStats()
    cache = EmbeddedCache(None, TTLS, max_entries=2)
    collector = cache_metrics.register(stats, cache)
    assert collector is not None
    assert cache_metrics.register(stats, cache) is collector  # one collector per RunStats
    assert len(stats.collectors) == 1
    keys = [cache_key(PRICE, "binance", s) for s in ("A-B", "C-D", "E-F")]
    now = 1_700_000_000 * S
    cache.put_many([Write(PRICE, k, 5, 1, b"x" * 10) for k in keys], now_ns=now)  # 3 writes, 1 evicted
    cache.put_many([Write(PRICE, keys[2], 4, 1, b"old")], now_ns=now)  # refused: older
    cache.get(keys[2], now_ns=now)  # hit
    cache.get(keys[0], now_ns=now)  # miss (evicted)
    cache.get(keys[1], now_ns=now + 2 * S)  # miss, expired
    got = cache_values(stats)
    price = (("type", "price"),)
    assert got[("ticktape_cache_writes_total", price)] == 3
    assert got[("ticktape_cache_stale_writes_total", price)] == 1
    assert got[("ticktape_cache_evictions_total", price)] == 1
    assert got[("ticktape_cache_hits_total", price)] == 1
    assert got[("ticktape_cache_misses_total", price)] == 2
    assert got[("ticktape_cache_expirations_total", price)] == 1
    assert got[("ticktape_cache_entries", price)] == 2
    assert got[("ticktape_cache_hits_total", (("type", "history"),))] == 0  # every type, zeros too
    assert got[("ticktape_cache_bytes", ())] == cache.bytes_used > 0


def test_embedded_cache_metric_names_are_the_redis_caches() -> None:
    redis = RedisCacheStats()
    redis.add("hits", Counter({"price": 1}))
    redis_names = {f.name: f for f in redis.collect()}
    stats = RunStats()
    cache_metrics.register(stats, EmbeddedCache(None, TTLS))
    embedded = {f.name: f for extra in stats.collectors for f in extra()}
    shared = set(embedded) & set(redis_names)
    assert {f"ticktape_cache_{name}" for name in cache_metrics.COUNTERS} == shared
    for name in shared:
        assert embedded[name].type == redis_names[name].type == "counter"
        labels = {tuple(sorted(s.labels)) for s in embedded[name].samples}
        assert labels == {("type",)}
    assert set(embedded) - shared == {"ticktape_cache_entries", "ticktape_cache_bytes"}


def test_embedded_cache_sink_registers_its_cache(tmp_path: Path) -> None:
    stats = RunStats()
    sink = EmbeddedCacheSink(tmp_path / "cache.sqlite", TTLS, 100, 1 << 20, stats=stats)
    parts = [sink.build_part("cache", str(i), None) for i in range(3)]  # one shared cache
    assert len(stats.collectors) == 1
    parts[0].write_batch([([update("BTC-USDT")], [])])
    got = cache_values(stats)
    assert got[("ticktape_cache_writes_total", (("type", "price"),))] == 1
    assert got[("ticktape_cache_writes_total", (("type", "metadata"),))] == 1
    for part in parts:
        part.close()
    from ticktape.sinks.cache import embedded as cache_mod

    cache_mod.release(tmp_path / "cache.sqlite")
