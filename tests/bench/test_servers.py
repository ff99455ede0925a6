"""Scenarios against real local servers (started by the scenarios): kafka (Apache Kafka, and Tansu),
archive (moto S3), redis (redis-server), questdb (a real QuestDB from Maven Central).

Asserted: the sizes, what arrived (counted on the scenario's own calls where it does
not report it), and a complete result (see :mod:`tests.support.bench`); no speeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from tests.support.bench import pedantic_scenario
from ticktape.infra.bench import redis as redis_mod
from ticktape.infra.bench.archive import archive_scenario, bench_events
from ticktape.infra.bench.kafka import kafka_scenario
from ticktape.infra.bench.questdb import questdb_scenario
from ticktape.infra.bench.redis import redis_scenario
from ticktape.infra.devstack.jars import server_version
from ticktape.sinks.cache.api import Write
from ticktape.sinks.cache.redis.backend import RedisCache

pytestmark = [pytest.mark.bench, pytest.mark.timeout(300)]


@pytest.mark.parametrize("broker", ["kafka", "tansu"])
def test_kafka(benchmark: Any, broker: str) -> None:
    # The scenario fails unless the job read every message (RunStats) and the source
    # alone decoded every one; the bare consumer loop runs until it saw them all.
    m = pedantic_scenario(
        benchmark, kafka_scenario, "kafka", ticks=5_000, symbols=50, repeats=1, broker=broker
    )
    assert (m.extra["ticks"], m.extra["partitions"]) == (5_000, 2)
    assert m.extra["broker"] == ("tansu" if broker == "tansu" else f"apache-kafka {server_version('kafka')}")
    assert m.extra["job_vs_source_only"] == pytest.approx(m.value / m.extra["source_only_per_s"])
    assert m.extra["latency_ms"]["recv_to_sink"]["count"] == 5_000  # each reached the cache sink
    assert len(m.extra["source_only_samples"]) == 1
    assert m.extra["source_only_ratio"] == pytest.approx(m.extra["source_only_per_s"] / m.baseline)


def test_archive(benchmark: Any) -> None:
    assert sum(len(batch) for batch in bench_events(20_000, 50)) == 20_000
    # The scenario fails unless each archive pass archived all 20,000 rows.
    m = pedantic_scenario(benchmark, archive_scenario, "archive", rows=20_000, repeats=1, symbols=50)
    assert m.extra["rows"] == 20_000
    assert m.extra["parquet_bytes_per_row"] > 0
    assert m.extra["ratio_vs_jsonl"] > 0
    assert m.extra["ratio_vs_jsonl_zstd"] > 0
    assert 0 < m.extra["one_symbol_read_fraction"] <= 1  # a one-symbol read fetched part of the data


def test_redis(benchmark: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    caches: list[Counting] = []

    class Counting(RedisCache):  # counts what the scenario's caches were given and landed
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.calls = self.writes = self.landed = 0
            caches.append(self)

        def put_many(self, batch: Sequence[Write]) -> int:
            n = super().put_many(batch)
            self.calls, self.writes, self.landed = self.calls + 1, self.writes + len(batch), self.landed + n
            return n

    monkeypatch.setattr(redis_mod, "RedisCache", Counting)
    m = pedantic_scenario(benchmark, redis_scenario, "redis", writes=5_000, repeats=1, keys=500)
    assert (m.extra["writes"], m.extra["keys"], m.extra["batch"]) == (5_000, 500, 1_000)
    assert len(m.extra["cas_per_key_samples"]) == len(m.extra["cas_replay_samples"]) == 1
    # Six fresh caches (batch CAS, per-key CAS, replay; a warm-up and one repetition
    # each): every distinct write landed exactly once; the replay's second pass (every
    # version already stored) landed none.
    assert len(caches) == 6
    assert [c.landed for c in caches] == [5_000] * 6
    assert sorted(c.writes for c in caches) == [5_000] * 4 + [10_000] * 2
    assert all(c.calls == c.writes // 500 for c in caches)  # one call per sink batch (500 distinct keys)


def test_questdb(benchmark: Any) -> None:
    # The scenario fails unless each of its tables (the sink's and the bare client's, a
    # warm-up and one repetition each) holds exactly the 5,000 rows once QuestDB applied them.
    m = pedantic_scenario(benchmark, questdb_scenario, "questdb", rows=5_000, repeats=1)
    assert (m.extra["rows"], m.extra["auto_flush_rows"]) == (5_000, 10_000)
    assert m.extra["transport"].startswith("ILP/HTTP into QuestDB ")


def test_venues(benchmark: Any) -> None:
    # The simulator runs in its own process; each client loop runs until it received the
    # whole tape (the ticktape loops count data frames, not control frames).
    from ticktape.infra.bench.venues import venues_scenario

    m = pedantic_scenario(benchmark, venues_scenario, "venues", events=3_000, repeats=1)
    assert m.extra["frames"] > 3_000  # trades arrive twice (trade, aggTrade), top changes add bookTickers
    assert len(m.extra["connection_only_samples"]) == 1
    assert m.extra["connection_only_per_s"] > 0
    if m.extra["picows_bare_per_s"] is not None:
        assert len(m.extra["picows_samples"]) == 1
