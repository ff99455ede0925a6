"""Fixtures that run real servers as local processes on free 127.0.0.1 ports.

Session-scoped: ``kafka_broker`` (Tansu), ``s3_server`` (moto), ``redis_server``.
Function-scoped: ``s3_client``/``s3_bucket`` (a fresh bucket, dummy credentials in the
environment), ``kafka_topic`` (factory: a fresh topic with N partitions),
``redis_factory`` and ``prometheus_factory`` (private instances a test may restart or
configure; stopped at the end of the test).

A service that cannot start raises (:class:`ticktape.infra.devstack.errors.ServiceError` with its log tail):
the test errors, it is never skipped (docs/architecture.md, "Tests").
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ticktape.infra.devstack.base import Service
from ticktape.infra.devstack.services import MotoS3, PrometheusServer, RedisServer, TansuBroker

REGION = "us-east-1"


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """State dir (logs, configs, data) of the session's services."""
    return tmp_path_factory.mktemp("services")


def _run(service: Service) -> Iterator[Any]:
    service.start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def kafka_broker(services_dir: Path) -> Iterator[TansuBroker]:
    """A Tansu broker (memory storage); ``.bootstrap_servers`` is ``127.0.0.1:<port>``."""
    yield from _run(TansuBroker(services_dir))


@pytest.fixture(scope="session")
def s3_server(services_dir: Path) -> Iterator[MotoS3]:
    """A moto S3 server process; ``.endpoint_url`` is ``http://127.0.0.1:<port>``."""
    yield from _run(MotoS3(services_dir))


@pytest.fixture(scope="session")
def redis_server(services_dir: Path) -> Iterator[RedisServer]:
    """A shared redis-server (no persistence). Do not restart it: use ``redis_factory``."""
    yield from _run(RedisServer(services_dir))


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
def kafka_admin(kafka_broker: TansuBroker) -> Any:
    """A confluent-kafka AdminClient for the session broker."""
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers})


@pytest.fixture
def kafka_topic(kafka_admin: Any) -> Iterator[Callable[..., str]]:
    """``make(partitions=1, *, name=None, config=None) -> topic``; deleted after the test."""
    from confluent_kafka.admin import NewTopic

    created: list[str] = []

    def make(partitions: int = 1, *, name: str | None = None, config: dict[str, str] | None = None) -> str:
        topic = name or f"test-{uuid.uuid4().hex[:12]}"
        new = NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config or {})
        kafka_admin.create_topics([new], operation_timeout=10)[topic].result(timeout=15)
        created.append(topic)
        metadata = kafka_admin.list_topics(topic=topic, timeout=10)
        got = len(metadata.topics[topic].partitions)
        assert got == partitions, f"topic {topic}: expected {partitions} partitions, got {got}"
        return topic

    yield make
    if created:
        for future in kafka_admin.delete_topics(created, operation_timeout=10).values():
            future.result(timeout=15)


@pytest.fixture
def fault_proxy(s3_server: MotoS3) -> Iterator[Any]:
    """A :class:`tests.support.faultproxy.FaultProxy` in front of the moto server.

    Point a client at ``fault_proxy.endpoint_url``; plan faults with ``.reset()``,
    ``.error(503)``, ``.delay(s)``, ``.lose_response()``; read ``.received``/``.forwarded``.
    """
    from tests.support.faultproxy import FaultProxy

    with FaultProxy(s3_server.endpoint_url) as proxy:
        yield proxy


# QuestDB does not run on these machines: its real-server test runs only against the server
# named by QUESTDB_HTTP. Without it the module is deselected, not skipped (CI forbids skips),
# and the header and summary say so.
_QUESTDB_MODULE = "test_questdb_real.py"
_QUESTDB_DESELECTED = pytest.StashKey[int]()


def _questdb_http() -> str:
    import os

    return os.environ.get("QUESTDB_HTTP", "")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect tests/integration/test_questdb_real.py unless QUESTDB_HTTP is set."""
    if _questdb_http():
        return
    dropped = [item for item in items if item.path.name == _QUESTDB_MODULE]
    if dropped:
        items[:] = [item for item in items if item.path.name != _QUESTDB_MODULE]
        config.hook.pytest_deselected(items=dropped)
        config.stash[_QUESTDB_DESELECTED] = len(dropped)


def pytest_report_header(config: pytest.Config) -> str:
    where = _questdb_http()
    if where:
        return f"questdb: real-server tests against QUESTDB_HTTP={where}"
    return f"questdb: QUESTDB_HTTP not set: {_QUESTDB_MODULE} will be deselected (ILP wire tests run)"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    count = config.stash.get(_QUESTDB_DESELECTED, 0)
    if count:
        terminalreporter.write_line(
            f"questdb: {count} real-QuestDB test(s) in tests/integration/{_QUESTDB_MODULE} deselected: "
            "QUESTDB_HTTP is not set (e.g. QUESTDB_HTTP=http://127.0.0.1:9000); only the ILP wire was tested",
            yellow=True,
        )
