"""``ticktape produce`` building blocks against a real broker (Apache Kafka): topic creation,
keyed and rate-limited idempotent production, bursts beyond the local queue, and the
message builders read back through the Kafka source."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from tests.support.data import TRADES, VENUES
from ticktape.connectors.files.history import FileSource, FileSourceConfig
from ticktape.connectors.kafka.produce import (
    ensure_topic,
    history_messages,
    produce_messages,
    synthetic_messages,
    venue_sample_messages,
)
from ticktape.connectors.kafka.source import KafkaSource, KafkaSourceConfig, end_offsets_at
from ticktape.connectors.synthetic.feed import SyntheticConfig
from ticktape.infra.devstack import ports
from ticktape.infra.devstack.kafka import KafkaBroker
from ticktape.schemas.durations import Duration
from ticktape.schemas.errors import SourceError
from ticktape.schemas.records import Tick

pytestmark = pytest.mark.integration


def consume_all(broker: KafkaBroker, topic: str) -> list[Any]:
    """Every message of ``topic`` (all partitions, up to their true ends)."""
    ends = end_offsets_at(broker.bootstrap_servers, topic)
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "x",
                         "fetch.queue.backoff.ms": 10})  # fmt: skip
    consumer.assign([TopicPartition(topic, p, 0) for p in ends])
    got: list[Any] = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < sum(ends.values()) and time.monotonic() < deadline:
            got.extend(m for m in consumer.consume(5000, 0.2) if m.error() is None)
    finally:
        consumer.close()
    return got


def read_ticks(broker: KafkaBroker, topic: str, fmt: str = "generic") -> list[Tick]:
    cfg = KafkaSourceConfig(bootstrap_servers=broker.bootstrap_servers, topic=topic, format=fmt, end="launch")
    src = KafkaSource(cfg, check_clock=False)
    ticks: list[Tick] = []
    for part_name in src.list_parts():
        part = src.build_part("in", part_name, None)
        try:
            while True:
                try:
                    ticks.extend(t for b in part.next_batch() for t in b.ticks)
                except StopIteration:
                    break
        finally:
            part.close()
    return ticks


def test_ensure_topic_creates_once(kafka_broker: KafkaBroker, kafka_admin: AdminClient) -> None:
    topic = f"produce-{time.time_ns()}"
    try:
        assert ensure_topic(kafka_broker.bootstrap_servers, topic, 6) is True
        assert ensure_topic(kafka_broker.bootstrap_servers, topic, 3) is False
        consumer = Consumer({"bootstrap.servers": kafka_broker.bootstrap_servers, "group.id": "x"})
        try:
            assert len(consumer.list_topics(topic, timeout=10).topics[topic].partitions) == 6
        finally:
            consumer.close()
    finally:
        kafka_admin.delete_topics([topic], operation_timeout=10)[topic].result(timeout=15)


def test_keyed_by_symbol_one_partition_each_in_order(
    kafka_broker: KafkaBroker, kafka_topic: Callable[..., str]
) -> None:
    topic = kafka_topic(4)
    cfg = SyntheticConfig(symbols=40, rate=3000.0, duration=Duration.parse("1s"), partitions=2)
    seen: list[int] = []
    report = produce_messages(
        kafka_broker.bootstrap_servers, topic, synthetic_messages(cfg), progress=seen.append
    )
    assert report.sent == report.delivered == 3000
    assert report.failed == 0
    assert sum(report.partitions.values()) == 3000
    assert len(report.partitions) == 4
    assert seen[-1] == 3000
    parts: dict[str, set[int]] = defaultdict(set)
    ids: dict[str, list[int]] = defaultdict(list)
    for msg in sorted(consume_all(kafka_broker, topic), key=lambda m: (m.partition(), m.offset())):
        doc = msgspec.json.decode(msg.value())
        assert msg.key() == doc["symbol"].encode()
        parts[doc["symbol"]].add(msg.partition())
        ids[doc["symbol"]].append(doc["trade_id"])
    assert len(parts) == 40
    assert all(len(p) == 1 for p in parts.values())
    assert all(seq == sorted(seq) for seq in ids.values())


def test_rate_is_respected(kafka_broker: KafkaBroker, kafka_topic: Callable[..., str]) -> None:
    topic = kafka_topic(1)
    messages = [(b"k", b"v%d" % i) for i in range(400)]
    started = time.monotonic()
    report = produce_messages(kafka_broker.bootstrap_servers, topic, messages, rate=1000.0)
    elapsed = time.monotonic() - started
    assert report.delivered == 400
    # 400 messages at 1000/s take 0.4 s, plus ~0.5 s of idempotent-producer start-up
    assert 0.38 <= report.seconds <= elapsed < 2.5


def test_burst_larger_than_the_local_queue_all_arrive(
    kafka_broker: KafkaBroker, kafka_topic: Callable[..., str]
) -> None:
    topic = kafka_topic(2)
    messages = ((b"S%d" % (i % 10), b"%d" % i) for i in range(20_000))
    conf = {"queue.buffering.max.messages": 1000}
    report = produce_messages(kafka_broker.bootstrap_servers, topic, messages, conf=conf)
    assert report.delivered == 20_000
    got = consume_all(kafka_broker, topic)
    assert sorted(int(m.value()) for m in got) == list(range(20_000))


def test_delivery_failures_raise(kafka_broker: KafkaBroker, kafka_topic: Callable[..., str]) -> None:
    nobody = f"{ports.LOOPBACK}:{ports.free_port()}"
    with pytest.raises(SourceError, match=r"2 of 2 messages to 'x' were not delivered"):
        produce_messages(nobody, "x", [(b"k", b"1"), (b"k", b"2")], conf={"message.timeout.ms": 300})
    topic = kafka_topic(1)
    too_big = [(b"k", b"small"), (b"k", b"x" * 5000)]
    with pytest.raises(SourceError, match=r"1 of 2 messages .* not delivered: .*too large"):
        produce_messages(kafka_broker.bootstrap_servers, topic, too_big, conf={"message.max.bytes": 2000})


def test_history_file_round_trip(kafka_broker: KafkaBroker, kafka_topic: Callable[..., str]) -> None:
    path = TRADES / "XRP_ETH-trades.json.gz"
    topic = kafka_topic(3)
    report = produce_messages(kafka_broker.bootstrap_servers, topic, history_messages(path))
    file_src = FileSource(FileSourceConfig(paths=(str(path),)))
    part = file_src.build_part("in", file_src.list_parts()[0], None)
    expected: list[Tick] = []
    while True:
        try:
            expected.extend(t for b in part.next_batch() for t in b.ticks)
        except StopIteration:
            break
    assert report.delivered == len(expected) > 100
    assert len(report.partitions) == 1  # one symbol: one partition

    def key(t: Tick) -> tuple[Any, ...]:
        return (t.venue, t.symbol, t.price, t.size, t.side, t.trade_id, t.ts_event)

    assert sorted(map(key, read_ticks(kafka_broker, topic))) == sorted(map(key, expected))


def test_venue_samples_as_they_are(
    kafka_broker: KafkaBroker, kafka_topic: Callable[..., str], tmp_path: Path
) -> None:
    samples = sorted(VENUES.glob("*trade*.json"))
    msgs = list(venue_sample_messages(samples))
    keys = {k for k, _ in msgs}
    assert keys == {b"BTCUSDT", b"BTC-USD", b"BTC/USD"}
    assert [v for _, v in msgs] == [p.read_bytes().strip() for p in samples]
    lines = tmp_path / "binance.jsonl"
    one = msgspec.json.encode(msgspec.json.decode((VENUES / "binance_trade_stream.json").read_bytes()))
    lines.write_bytes(one + b"\n" + one.replace(b'"t":5933014', b'"t":5933015') + b"\n")
    topic = kafka_topic(1)
    produce_messages(kafka_broker.bootstrap_servers, topic, venue_sample_messages([lines]))
    ticks = read_ticks(kafka_broker, topic, fmt="binance")
    assert [(t.venue, t.symbol, t.trade_id) for t in ticks] == [
        ("binance", "BTC-USDT", "5933014"), ("binance", "BTC-USDT", "5933015"),
    ]  # fmt: skip
