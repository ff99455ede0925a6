"""Scenarios against real local servers (started by the scenarios): kafka (Tansu),
archive (moto S3), redis (redis-server), questdb (a real QuestDB from Maven Central)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.bench import pedantic_scenario
from ticktape.infra.bench.archive import archive_scenario
from ticktape.infra.bench.kafka import kafka_scenario
from ticktape.infra.bench.questdb import questdb_scenario
from ticktape.infra.bench.redis import redis_scenario

pytestmark = [pytest.mark.bench, pytest.mark.timeout(300)]


def test_kafka(benchmark: Any) -> None:
    m = pedantic_scenario(benchmark, kafka_scenario, "kafka", ticks=5_000, symbols=50, repeats=1)
    assert m.extra["ticks"] == 5_000


def test_archive(benchmark: Any) -> None:
    pedantic_scenario(benchmark, archive_scenario, "archive", rows=20_000, repeats=1, symbols=50)


def test_redis(benchmark: Any) -> None:
    pedantic_scenario(benchmark, redis_scenario, "redis", writes=5_000, repeats=1, keys=500)


def test_questdb(benchmark: Any) -> None:
    pedantic_scenario(benchmark, questdb_scenario, "questdb", rows=5_000, repeats=1)
