"""The Kafka source against a real broker (Apache Kafka; the Tansu workarounds on both):
start and end bounds, bounded runs that end by themselves, resume, workers, dead letters,
offset gaps (transaction markers, records deleted by retention), metrics, commits and
secrets."""

from __future__ import annotations

import contextlib
import logging
import time
import tomllib
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import bytewax.operators as op
import msgspec
import pytest
from bytewax.dataflow import Dataflow
from bytewax.run import cli_main
from bytewax.testing import TestingSink, run_main
from confluent_kafka import Consumer, Producer, TopicPartition

from tests.support import records
from ticktape.connectors.kafka.config import librdkafka_config, redacted
from ticktape.connectors.kafka.offsets import watermarks
from ticktape.connectors.kafka.source import KafkaSource, KafkaSourceConfig, end_offsets_at
from ticktape.infra.devstack.kafka import ApacheKafka, KafkaBroker
from ticktape.infra.devstack.services import TansuBroker
from ticktape.infra.observability.metrics import RunStats, serve_metrics
from ticktape.schemas.durations import dec_hook
from ticktape.schemas.errors import ConfigError
from ticktape.schemas.ids import event_id
from ticktape.schemas.records import DLCode, EventType, TickBatch

pytestmark = pytest.mark.integration


def tick(i: int, symbol: str = "BTC-USD") -> bytes:
    return records.trade_message(
        venue="test",
        symbol=symbol,
        price=100.0 + i % 7,
        size=1.0,
        side="buy",
        trade_id=i,
        ts_event=time.time_ns(),
    )


def send(broker: KafkaBroker, topic: str, values: Iterable[bytes | None], partition: int = 0) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 0})
    for value in values:
        producer.produce(topic, value, partition=partition)
    assert producer.flush(10) == 0


def source(broker: KafkaBroker, topic: str, **kwargs: Any) -> KafkaSource:
    extra = {k: kwargs.pop(k) for k in ("batch_size", "stats", "check_clock") if k in kwargs}
    cfg = KafkaSourceConfig(bootstrap_servers=broker.bootstrap_servers, topic=topic, **kwargs)
    return KafkaSource(cfg, **extra)


def run_flow(src: KafkaSource, workers: int = 1) -> list[TickBatch]:
    flow = Dataflow("kafka_test")
    out: list[TickBatch] = []
    op.output("out", op.input("in", flow, src), TestingSink(out))
    if workers == 1:
        run_main(flow)  # type: ignore[no-untyped-call]
    else:
        cli_main(flow, workers_per_process=workers)  # type: ignore[no-untyped-call]
    return out


def read_offsets(batches: list[TickBatch]) -> list[tuple[str, int]]:
    """Source coordinates of every record emitted, ticks and dead letters."""
    coords = [(t.src, t.offset) for b in batches for t in b.ticks]
    coords += [(d.src, d.offset) for b in batches for d in b.dead]
    return sorted(coords)


def drain(part: Any, timeout: float = 15.0) -> list[TickBatch]:
    """Call next_batch until the partition ends (as Bytewax would)."""
    out: list[TickBatch] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            out.extend(part.next_batch())
        except StopIteration:
            return out
        time.sleep(0.001)
    raise AssertionError("the partition did not end")


def poll_until(part: Any, pred: Callable[[list[TickBatch]], bool], timeout: float = 10.0) -> list[TickBatch]:
    out: list[TickBatch] = []
    deadline = time.monotonic() + timeout
    while not pred(out):
        assert time.monotonic() < deadline, "timed out"
        out.extend(part.next_batch())
        time.sleep(0.001)
    return out


class _ListHandler(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def captured_logs() -> Iterator[list[logging.LogRecord]]:
    """Every ``ticktape.*`` record at DEBUG and above (whatever handlers exist)."""
    records: list[logging.LogRecord] = []
    handler = _ListHandler(records)
    root = logging.getLogger("ticktape")
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def test_end_launch_finds_true_end_and_bounded_flow_stops(
    any_broker: KafkaBroker, broker_topic: Callable[..., str]
) -> None:
    """On both brokers: Tansu reports a high watermark that is too low, the source probes."""
    kafka_broker, topic = any_broker, broker_topic(1)
    for batch in range(3):  # several batches: Tansu's reported high watermark lags behind
        send(kafka_broker, topic, [tick(batch * 40 + i) for i in range(40)])
    consumer = Consumer({"bootstrap.servers": kafka_broker.bootstrap_servers, "group.id": "x"})
    try:
        reported = watermarks(consumer, topic, 0)[1]
    finally:
        consumer.close()
    assert end_offsets_at(kafka_broker.bootstrap_servers, topic) == {0: 120}
    # Apache Kafka: 120; Tansu 0.6: 81 (first offset of the last batch + 1)
    assert reported == (120 if isinstance(kafka_broker, ApacheKafka) else 81)
    src = source(kafka_broker, topic, end="launch", batch_size=50)
    send(kafka_broker, topic, [tick(999)])  # after the source object, before the run: still read
    batches = run_flow(src)
    assert read_offsets(batches) == [(f"{topic}/0", i) for i in range(121)]
    assert sum(b.n_read for b in batches) == 121


def test_start_offsets_end_offsets_missing_partitions_default(
    kafka_broker: KafkaBroker, kafka_topic: Callable[..., str]
) -> None:
    topic = kafka_topic(2)
    for p in (0, 1):
        send(kafka_broker, topic, [tick(i) for i in range(30)], partition=p)
    src = source(kafka_broker, topic, start="offsets", start_offsets={0: 10}, end="offsets",
                 end_offsets={"0": 20, "1": 5})  # fmt: skip
    got = read_offsets(run_flow(src))
    assert got == [(f"{topic}/0", i) for i in range(10, 20)] + [(f"{topic}/1", i) for i in range(5)]


def test_start_end_reads_only_new_messages(
    kafka_broker: KafkaBroker, kafka_topic: Callable[..., str]
) -> None:
    topic = kafka_topic(1)
    send(kafka_broker, topic, [tick(i) for i in range(25)])
    src = source(kafka_broker, topic, start="end", end="offsets", end_offsets={0: 30})
    part = src.build_part("in", f"{topic}/0", None)
    try:
        assert part.next_offset == 25
        send(kafka_broker, topic, [tick(i) for i in range(25, 35)])
        assert read_offsets(drain(part)) == [(f"{topic}/0", i) for i in range(25, 30)]
    finally:
        part.close()


def test_start_time_end_time_and_broker_timestamps(
    any_broker: KafkaBroker, broker_topic: Callable[..., str]
) -> None:
    """On both brokers: Tansu's offsets_for_times answers 0 past the end, the source checks."""
    kafka_broker, topic = any_broker, broker_topic(1)
    marks = []
    # Real sleeps: Tansu stamps and searches the broker's append time (its own clock, see
    # test_services.test_tansu_known_quirks), so the phases must be apart in real time.
    for phase in range(3):
        send(kafka_broker, topic, [tick(phase * 10 + i) for i in range(10)])
        time.sleep(0.05)
        marks.append(time.time_ns())
        time.sleep(0.05)
    src = source(kafka_broker, topic, start="time", start_time_ns=marks[0], end="time", end_time_ns=marks[1])
    batches = run_flow(src)
    assert read_offsets(batches) == [(f"{topic}/0", i) for i in range(10, 20)]
    consumer = Consumer({"bootstrap.servers": kafka_broker.bootstrap_servers, "group.id": "x"})
    try:
        consumer.assign([TopicPartition(topic, 0, 10)])
        stamps = {m.offset(): m.timestamp()[1] for m in consumer.consume(10, 5.0)}
    finally:
        consumer.close()
    ticks = [t for b in batches for t in b.ticks]
    # times after the last message: Tansu's offsets_for_times answers 0 there, Kafka -1
    after = time.time_ns()
    assert run_flow(source(kafka_broker, topic, start="time", start_time_ns=after, end="launch")) == []
    tail = source(kafka_broker, topic, start="offsets", start_offsets={0: 25}, end="time", end_time_ns=after)
    assert read_offsets(run_flow(tail)) == [(f"{topic}/0", i) for i in range(25, 30)]
    assert len(stamps) == 10
    assert all(t.ts_kafka == stamps[t.offset] * 1_000_000 for t in ticks)
    assert all(marks[0] <= t.ts_kafka < marks[1] for t in ticks)


def test_end_time_in_the_future_ends_at_eof_after_it(
    kafka_broker: KafkaBroker, kafka_topic: Callable[..., str]
) -> None:
    topic = kafka_topic(1)
    send(kafka_broker, topic, [tick(i) for i in range(5)])
    end = time.time_ns() + 800_000_000
    started = time.monotonic()
    batches = run_flow(source(kafka_broker, topic, end="time", end_time_ns=end))
    assert read_offsets(batches) == [(f"{topic}/0", i) for i in range(5)]
    assert time.time_ns() >= end
    assert time.monotonic() - started < 5


def test_resume_continues_after_snapshot(kafka_broker: KafkaBroker, kafka_topic: Callable[..., str]) -> None:
    topic = kafka_topic(1)
    values = [tick(i) if i % 50 else b"not json" for i in range(400)]
    send(kafka_broker, topic, values)
    src = source(kafka_broker, topic, end="launch", batch_size=60)
    part = src.build_part("in", f"{topic}/0", None)
    first = poll_until(part, lambda got: sum(b.n_read for b in got) >= 150)
    state = part.snapshot()
    part.close()
    assert state[0] == max(o for _, o in read_offsets(first)) + 1
    second = drain(src.build_part("in", f"{topic}/0", state))
    assert read_offsets(first) + read_offsets(second) == [(f"{topic}/0", i) for i in range(400)]
    seqs = [e.seq for b in first + second for e in b.events]
    assert seqs == list(range(1, 9))  # dead-letter event seq continues across the resume


def test_two_workers_read_the_same_set(kafka_broker: KafkaBroker, kafka_topic: Callable[..., str]) -> None:
    topic = kafka_topic(4)
    for p in range(4):
        send(kafka_broker, topic, [tick(i, f"S{p}-USD") for i in range(50 + p)], partition=p)
    ends = end_offsets_at(kafka_broker.bootstrap_servers, topic)
    one = run_flow(source(kafka_broker, topic, end="offsets", end_offsets=ends, batch_size=16))
    two = run_flow(source(kafka_broker, topic, end="offsets", end_offsets=ends, batch_size=16), workers=2)
    expected = sorted((f"{topic}/{p}", i) for p in range(4) for i in range(50 + p))
    assert read_offsets(one) == read_offsets(two) == expected


def test_malformed_messages_become_dead_letters(
    kafka_broker: KafkaBroker, kafka_topic: Callable[..., str]
) -> None:
    topic = kafka_topic(1)
    bad_price = records.trade_message(
        venue="test", symbol="BTC-USD", price=-1, size=1, side=None, trade_id=None, ts_event=time.time_ns()
    )
    send(kafka_broker, topic, [tick(0), b"\x00garbage", tick(1), None, bad_price, tick(2)])
    batches = run_flow(source(kafka_broker, topic, end="launch"))
    src = f"{topic}/0"
    assert [t.offset for b in batches for t in b.ticks] == [0, 2, 5]
    dead = {d.offset: d for b in batches for d in b.dead}
    assert sorted(dead) == [1, 3, 4]
    assert all(d.src == src for d in dead.values())
    assert dead[1].code == DLCode.DECODE_ERROR
    assert dead[1].raw == b"\x00garbage"
    assert dead[3].code == DLCode.DECODE_ERROR
    assert "field `value`" in dead[3].message
    assert dead[4].code == DLCode.BAD_PRICE
    events = [e for b in batches for e in b.events]
    assert [e.type for e in events] == [EventType.DEAD_LETTER] * 3
    assert [e.seq for e in events] == [1, 2, 3]
    assert {e.causation for e in events} == {f"{src}@{o}" for o in dead}
    assert sum(b.n_read for b in batches) == 6


def test_offset_hole_becomes_sequence_gap(kafka_broker: KafkaBroker, kafka_topic: Callable[..., str]) -> None:
    """Transaction commit markers take an offset each and are never delivered: real holes."""
    topic = kafka_topic(1)
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers, "transactional.id": topic})
    producer.init_transactions(10)
    for txn in range(2):
        producer.begin_transaction()
        for i in range(3):
            producer.produce(topic, b"bad" if (txn, i) == (1, 0) else tick(txn * 3 + i), partition=0)
        producer.commit_transaction(10)
    batches = run_flow(source(kafka_broker, topic, end="launch", batch_size=2))  # last offset is a marker
    src = f"{topic}/0"
    assert [t.offset for b in batches for t in b.ticks] == [0, 1, 2, 5, 6]
    events = [e for b in batches for e in b.events]
    assert [(e.type, e.seq) for e in events] == [
        (EventType.SEQUENCE_GAP, 1), (EventType.DEAD_LETTER, 2),
    ]  # fmt: skip
    gap = events[0]
    payload = msgspec.json.decode(gap.payload)
    assert payload == {"src": src, "first_missing": 3, "last_missing": 3, "count": 1, "kind": "offset"}
    assert gap.event_id == event_id(gap.ts_event, "OG", src, 3, 3)
    assert gap.ts_event > 0
    assert gap.aggregate == f"source:{src}"
    assert gap.ts_event == next(d.ts_kafka for b in batches for d in b.dead)  # the message at offset 4


def test_start_time_uses_record_timestamps_not_arrival(
    any_broker: KafkaBroker, broker_topic: Callable[..., str]
) -> None:
    """Producer CreateTimes an hour old: Kafka's offsets_for_times finds them by timestamp,
    Tansu's by arrival (all "now"); the source's start/end times agree on both."""
    topic = broker_topic(1)
    producer = Producer({"bootstrap.servers": any_broker.bootstrap_servers, "linger.ms": 0})
    old_ms = int(time.time() * 1000) - 3_600_000
    for i in range(20):
        producer.produce(topic, tick(i), partition=0, timestamp=old_ms + i * 1000)
    assert producer.flush(10) == 0
    start_ns, end_ns = (old_ms + 4_500) * 1_000_000, (old_ms + 9_500) * 1_000_000
    got = run_flow(
        source(any_broker, topic, start="time", start_time_ns=start_ns, end="time", end_time_ns=end_ns)
    )
    assert read_offsets(got) == [(f"{topic}/0", i) for i in range(5, 10)]


def test_offsets_lost_to_retention_are_reported_as_a_gap(
    kafka_broker: ApacheKafka, kafka_topic: Callable[..., str]
) -> None:
    """Apache Kafka only: Tansu has no DeleteRecords, so its log start never moves. A run
    that starts below the log start reads from the oldest message and reports the hole."""
    from confluent_kafka.admin import AdminClient

    topic = kafka_topic(1)
    send(kafka_broker, topic, [tick(i) for i in range(10)])
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers})
    (deleted,) = admin.delete_records([TopicPartition(topic, 0, 4)]).values()
    deleted.result(timeout=10)
    batches = run_flow(source(kafka_broker, topic, start="offsets", start_offsets={0: 1}, end="launch"))
    src = f"{topic}/0"
    assert read_offsets(batches) == [(src, i) for i in range(4, 10)]
    (gap,) = [e for b in batches for e in b.events]
    assert gap.type == EventType.SEQUENCE_GAP
    payload = msgspec.json.decode(gap.payload)
    assert payload == {"src": src, "first_missing": 1, "last_missing": 3, "count": 3, "kind": "offset"}


def test_lag_metric_and_offsets_are_exported(
    kafka_broker: KafkaBroker, kafka_topic: Callable[..., str]
) -> None:
    topic = kafka_topic(1)
    send(kafka_broker, topic, [tick(i) for i in range(300)])
    stats = RunStats()
    src = source(kafka_broker, topic, end="launch", batch_size=100, stats=stats)
    assert len(stats.collectors) == 1
    part = src.build_part("in", f"{topic}/0", None)
    poll_until(part, lambda got: sum(b.n_read for b in got) >= 100)
    stop = serve_metrics(stats, port=0)
    try:
        url = f"http://127.0.0.1:{stop.port}/metrics"  # type: ignore[attr-defined]
        text = urllib.request.urlopen(url, timeout=5).read().decode()
    finally:
        stop()
    label = f'partition="{topic}/0"'
    lag = next(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith(f"ticktape_kafka_consumer_lag{{{label}")
    )
    assert lag == 300 - part.next_offset > 0
    assert f"ticktape_kafka_next_offset{{{label}}} {float(part.next_offset)}" in text
    assert f"ticktape_kafka_offset_gaps_total{{{label}}} 0.0" in text
    drain(part)
    part.close()
    assert part.lag == 0


def test_group_commit_is_visible_to_the_group(
    kafka_broker: KafkaBroker, kafka_topic: Callable[..., str]
) -> None:
    topic = kafka_topic(1)
    group = f"g-{topic}"
    send(kafka_broker, topic, [tick(i) for i in range(100)])
    src = source(kafka_broker, topic, group=group, batch_size=40)
    part = src.build_part("in", f"{topic}/0", None)
    poll_until(part, lambda got: sum(b.n_read for b in got) >= 40)
    state = part.snapshot()  # commits asynchronously
    other = Consumer({"bootstrap.servers": kafka_broker.bootstrap_servers, "group.id": group})
    try:
        deadline = time.monotonic() + 10
        while True:
            committed = other.committed([TopicPartition(topic, 0)], timeout=5)[0].offset
            if committed == state[0] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert committed == state[0]
        poll_until(part, lambda got: sum(b.n_read for b in got) >= 1)
    finally:
        other.close()
        part.close()  # commits the last position synchronously
    assert part.next_offset > state[0]
    resumed = source(kafka_broker, topic, group=group, start="committed", end="launch")
    later = drain(resumed.build_part("in", f"{topic}/0", None))
    assert read_offsets(later) == [(f"{topic}/0", i) for i in range(part.next_offset, 100)]


def test_secrets_only_from_the_environment(
    kafka_broker: KafkaBroker, kafka_topic: Callable[..., str], monkeypatch: pytest.MonkeyPatch, capfd: Any
) -> None:
    with pytest.raises(
        ConfigError, match="secrets only from the environment: set TICKTAPE_KAFKA_SASL_PASSWORD"
    ):
        KafkaSourceConfig(consumer={"sasl.password": "hunter2"})
    with pytest.raises(ConfigError, match="TICKTAPE_KAFKA_SSL_KEY_PASSWORD"):
        msgspec.convert({"consumer": {"ssl.key.password": "x"}}, KafkaSourceConfig)
    env = {"TICKTAPE_KAFKA_SASL_PASSWORD": "hunter2", "TICKTAPE_KAFKA_SECURITY_PROTOCOL": "plaintext",
           "TICKTAPE_KAFKA_BOOTSTRAP": "elsewhere:1"}  # fmt: skip
    conf = librdkafka_config("127.0.0.1:1", {"client.id": "t"}, env=env)
    assert conf == {"bootstrap.servers": "127.0.0.1:1", "client.id": "t", "sasl.password": "hunter2",
                    "security.protocol": "plaintext"}  # fmt: skip
    assert redacted(conf)["sasl.password"] == "***"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with captured_logs() as records:
        topic = kafka_topic(1)
        send(kafka_broker, topic, [tick(0)])
        src = source(kafka_broker, topic, end="launch")
        assert src._conf["sasl.password"] == "hunter2"
        assert "hunter2" not in repr(src)
        assert "hunter2" not in repr(src.cfg)
        assert read_offsets(run_flow(src)) == [(f"{topic}/0", 0)]
    out, err = capfd.readouterr()
    logged = "\n".join(r.getMessage() for r in records)
    assert records
    assert "hunter2" not in logged + out + err


@pytest.mark.parametrize("broker_cls", [ApacheKafka, TansuBroker], ids=["kafka", "tansu"])
def test_consumer_errors_are_counted_and_retried(tmp_path: Any, broker_cls: type[KafkaBroker]) -> None:
    """A broker that goes away: errors are logged and counted, polls back off, no crash."""
    broker = broker_cls(tmp_path, name="kafka-private").start()
    try:
        from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        admin.create_topics([NewTopic("t", 1, 1)])["t"].result(timeout=15)
        send(broker, "t", [tick(i) for i in range(10)])
        part = source(broker, "t").build_part("in", "t/0", None)
        poll_until(part, lambda got: sum(b.n_read for b in got) == 10)
    finally:
        broker.stop()
    try:
        with captured_logs() as records:
            deadline = time.monotonic() + 10
            while part.events.errors == 0 and time.monotonic() < deadline:
                assert part.next_batch() == []
                time.sleep(0.01)
        assert part.events.errors > 0
        wake = part.next_awake()
        assert wake is not None
        assert (wake - datetime.now(UTC)).total_seconds() > 0.05  # error backoff, not the idle 1 ms
        warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
        assert any("Kafka consumer error (retrying)" in m for m in warnings), warnings
    finally:
        part.consumer.close()


def test_config_section_from_toml() -> None:
    text = """
    topic = "trades"
    format = "binance"
    start = "offsets"
    start_offsets = { "0" = 42, "3" = 7 }
    end = "time"
    end_time_ns = 1775572202789012000
    poll_timeout = "250ms"
    consumer = { "fetch.max.bytes" = 1048576, "check.crcs" = true }
    """
    cfg = msgspec.convert(tomllib.loads(text), KafkaSourceConfig, dec_hook=dec_hook)
    assert cfg.start_offsets == {0: 42, 3: 7}
    assert cfg.poll_timeout == 250_000_000
    assert cfg.consumer == {"fetch.max.bytes": 1048576, "check.crcs": True}
    for bad, message in [
        ({"format": "nyse"}, "format: expected one of"),
        ({"start_offsets": {"zero": 1}}, "expected partition numbers as keys"),
        ({"consumer": {"group.id": "g"}}, "use `group`"),
        ({"consumer": {"enable.auto.commit": True}}, "the source manages this setting"),
        ({"end": "time"}, "end_time_ns"),
        ({"start": "committed"}, "needs `group`"),
        ({"offsets": 1}, "unknown field"),
    ]:
        with pytest.raises(msgspec.ValidationError, match=message):
            msgspec.convert(bad, KafkaSourceConfig, dec_hook=dec_hook)
