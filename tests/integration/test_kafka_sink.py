"""ticktape.sinks.kafka.sink against a real broker (Apache Kafka on loopback): Bytewax flows into topics,
read back with an ``assign()``-ed consumer; backpressure; delivery failures; throughput
against a bare confluent-kafka produce loop."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bytewax.operators as op
import msgspec
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition

from tests.support import records
from ticktape.infra.devstack.kafka import ApacheKafka, KafkaBroker
from ticktape.infra.devstack.services import TansuBroker
from ticktape.infra.observability.metrics import RunStats
from ticktape.schemas.errors import SinkError
from ticktape.schemas.ids import candle_event_id, price_event_id
from ticktape.schemas.records import Candle, DeadLetter, Event, PriceUpdate, dead_letter_json
from ticktape.sinks.kafka.sink import (
    KafkaOutputConfig,
    KafkaSink,
    candles_sink,
    dead_letters_sink,
    events_sink,
    price_value,
    prices_sink,
)

pytestmark = pytest.mark.integration

S = 1_000_000_000
T0 = 1_700_000_000 * S


def updates(n: int, symbols: int = 6) -> list[PriceUpdate]:
    """``n`` updates over ``symbols`` symbols; every 7th has no trade id."""
    out = []
    for i in range(n):
        sym = f"S{i % symbols:03d}-USD"
        trade = "" if i % 7 == 3 else str(i)
        out.append(records.price_update(
            venue="binance", symbol=sym, price=100.0 + i / 8, size=0.5, side="buy", trade_id=trade, ts_event=T0 + i,
            ts_kafka=0, ts_recv=T0 + i, ts_proc=T0 + i, seq=i // symbols + 1, src="trades/0", offset=i,
        ))  # fmt: skip
    return out


def candles() -> list[Candle]:
    out = []
    for sym in ("BTC-USDT", "ETH-USDT", "XRP-ETH"):
        for interval in (60, 300):
            for w in range(4):
                start = T0 + w * interval * S
                for rev in (0, 1) if w == 1 else (0,):
                    out.append(records.candle(
                        venue="binance", symbol=sym, interval=interval, start=start, end=start + interval * S,
                        open=1.0, high=2.0, low=0.5, close=1.5, volume=3.0, notional=4.5, vwap=1.5, trades=3,
                        buy_volume=2.0, sell_volume=1.0, first_trade_id="10", last_trade_id="12", revision=rev,
                        ts_final=start + interval * S,
                    ))  # fmt: skip
    return out


def events() -> list[Event]:
    out = []
    for i in range(40):
        payload = msgspec.json.encode({"i": i, "note": "gap" if i % 2 else "stale"}) if i % 10 else b""
        out.append(records.event(
            event_id=f"{T0 + i:016x}{i:016x}", type="SequenceGap" if i % 2 else "SymbolStale",
            aggregate=f"S{i % 4}@binance", seq=i, ts_event=T0 + i, ts_logged=T0, payload=payload,
            causation=f"trades/0@{i}",
        ))  # fmt: skip
    return out


def dead_letters() -> list[DeadLetter]:
    raws = [b'{"price": -1}', b"\xff\xfe\x00binary", b"", "caf\u00e9".encode()]
    return [
        records.dead_letter(
            dl_id=f"dl{i}", code="BAD_PRICE", message=f"message {i}", raw=raws[i % 4], src=f"trades/{i % 3}",
            offset=i, ts_recv=T0 + i,
        )
        for i in range(12)
    ]  # fmt: skip


def keyed(records: list[Any], shard: Callable[[Any], int], size: int = 25) -> list[tuple[str, list[Any]]]:
    """Keyed batches as the flow emits them: per shard, in order."""
    by_shard: dict[int, list[Any]] = defaultdict(list)
    for r in records:
        by_shard[shard(r)].append(r)
    return [(str(k), rs[i : i + size]) for k, rs in sorted(by_shard.items()) for i in range(0, len(rs), size)]


def run_flow(*outputs: tuple[KafkaSink[Any] | None, list[tuple[str, list[Any]]]]) -> None:
    flow = Dataflow("kafka_sink_test")
    for i, (sink, items) in enumerate(outputs):
        assert sink is not None
        op.output(f"out{i}", op.input(f"in{i}", flow, TestingSource(items)), sink)
    run_main(flow)


def consume(bootstrap: str, topic: str, n: int, timeout: float = 30.0) -> list[Message]:
    """Every message of ``topic`` (at least ``n``; then waits 0.5 s for extra ones)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "ticktape-test", "enable.auto.commit": False, "fetch.queue.backoff.ms": 10})  # fmt: skip
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        got: list[Message] = []
        deadline, settle = time.monotonic() + timeout, None
        while time.monotonic() < deadline and (settle is None or time.monotonic() < settle):
            for m in consumer.consume(1000, 0.2):
                assert m.error() is None, m.error()
                got.append(m)
            if len(got) >= n and settle is None:
                settle = time.monotonic() + 0.5
        return got
    finally:
        consumer.close()


def metric(stats: RunStats, name: str, sink: str) -> float:
    for collect in stats.collectors:
        for family in collect():
            for sample in family.samples:
                if sample.name == name and sample.labels == {"sink": sink}:
                    return float(sample.value)
    raise AssertionError(f"no sample {name}{{sink={sink}}}")


def headers(m: Message) -> dict[str, bytes]:
    return {k: v for k, v in (m.headers() or []) if v is not None}


def as_json(record: Any) -> Any:
    """What a consumer should decode from a value: every field by name."""
    if isinstance(record, DeadLetter):
        return dead_letter_json(record)
    doc = msgspec.structs.asdict(record)
    if isinstance(record, Event):
        doc["payload"] = json.loads(record.payload) if record.payload else None
    return doc


def check_topic(msgs: list[Message], records: list[Any], ident: Callable[[Any], str], key: Callable[[Any], str], kind: str | None) -> None:  # fmt: skip
    """Each record arrived once, with its key, value and headers; one key, one partition.
    ``kind`` None: the ``ticktape-type`` header is the record's ``type``."""
    by_id = {ident(r): r for r in records}
    assert len(by_id) == len(records)  # the test data has unique ids
    assert sorted(headers(m)["event_id"].decode() for m in msgs) == sorted(by_id)  # each once
    partitions_of_key: dict[bytes, set[int]] = defaultdict(set)
    for m in msgs:
        record = by_id[headers(m)["event_id"].decode()]
        assert m.key() == key(record).encode()
        assert headers(m)["ticktape-type"].decode() == (kind or record.type)
        assert json.loads(m.value() or b"") == as_json(record)
        partitions_of_key[m.key() or b""].add(m.partition() or 0)
    assert all(len(p) == 1 for p in partitions_of_key.values())
    assert len(set().union(*partitions_of_key.values())) > 1  # and the keys spread


@pytest.fixture
def fresh_topics(kafka_admin: Any) -> Iterator[Callable[[], str]]:
    """Names of topics that do not exist yet; deleted after the test if created."""
    names: list[str] = []

    def make() -> str:
        names.append(f"sink-{uuid.uuid4().hex[:12]}")
        return names[-1]

    yield make
    existing = [t for t in names if t in kafka_admin.list_topics(timeout=10).topics]
    if existing:
        for future in kafka_admin.delete_topics(existing, operation_timeout=10).values():
            future.result(timeout=15)


def test_flow_outputs_arrive_once_with_keys_values_and_headers(kafka_broker: KafkaBroker, kafka_admin: Any, fresh_topics: Callable[[], str]) -> None:  # fmt: skip
    bootstrap = kafka_broker.bootstrap_servers
    cfg = KafkaOutputConfig(
        enabled=True, bootstrap_servers=bootstrap, prices_topic=fresh_topics(), candles_topic=fresh_topics(),
        events_topic=fresh_topics(), dead_letters_topic=fresh_topics(), partitions=3, topic_partitions=3,
    )  # fmt: skip
    stats = RunStats()
    ups, cds, evs, dls = updates(300), candles(), events(), dead_letters()
    run_flow(
        (prices_sink(cfg, stats), keyed(ups, lambda u: int(u.symbol[1:4]) % 8)),
        (candles_sink(cfg, stats), keyed(cds, lambda c: len(c.symbol))),
        (events_sink(cfg, stats), keyed(evs, lambda e: int(e.aggregate[1]))),
        (dead_letters_sink(cfg, stats), keyed(dls, lambda d: d.offset % 2, size=5)),
    )
    for topic in (cfg.prices_topic, cfg.candles_topic, cfg.events_topic, cfg.dead_letters_topic):
        assert len(kafka_admin.list_topics(topic, timeout=10).topics[topic].partitions) == 3  # created

    check_topic(consume(bootstrap, cfg.prices_topic, len(ups)), ups, price_event_id, lambda u: u.symbol, "PriceUpdate")  # fmt: skip
    check_topic(consume(bootstrap, cfg.candles_topic, len(cds)), cds, candle_event_id, lambda c: f"{c.symbol}|{c.interval}", "Candle")  # fmt: skip
    check_topic(consume(bootstrap, cfg.events_topic, len(evs)), evs, lambda e: e.event_id, lambda e: e.aggregate, None)  # fmt: skip
    check_topic(consume(bootstrap, cfg.dead_letters_topic, len(dls)), dls, lambda d: d.dl_id, lambda d: d.src, "DeadLetter")  # fmt: skip
    seqs: dict[bytes, list[int]] = defaultdict(list)  # a symbol keeps its order
    for m in sorted(consume(bootstrap, cfg.prices_topic, len(ups)), key=lambda m: m.offset() or 0):
        seqs[m.key() or b""].append(json.loads(m.value() or b"")["seq"])
    assert all(s == sorted(s) for s in seqs.values())
    for name, n in (("kafka_prices", 300), ("kafka_candles", len(cds)), ("kafka_events", 40), ("kafka_deadletters", 12)):  # fmt: skip
        assert stats.sink_writes[name] == n
        assert metric(stats, "ticktape_kafka_delivered_total", name) == n
    assert not stats.sink_errors
    assert len(stats.collectors) == 1  # one collector for all Kafka sinks of a RunStats


def test_full_local_queue_waits_instead_of_crashing(kafka_broker: KafkaBroker, kafka_topic: Callable[..., str]) -> None:  # fmt: skip
    topic = kafka_topic(3)
    cfg = KafkaOutputConfig(
        enabled=True, bootstrap_servers=kafka_broker.bootstrap_servers, prices_topic=topic, create_topics=False,
        partitions=2, producer={"queue.buffering.max.messages": 500},
    )  # fmt: skip
    stats = RunStats()
    ups = updates(20_000, symbols=50)
    run_flow((prices_sink(cfg, stats), [(str(k), ups[k * 5000 : (k + 1) * 5000]) for k in range(4)]))
    msgs = consume(kafka_broker.bootstrap_servers, topic, len(ups))
    assert len(msgs) == len(ups)
    assert {headers(m)["event_id"].decode() for m in msgs} == {price_event_id(u) for u in ups}
    assert metric(stats, "ticktape_kafka_producer_waits_total", "kafka_prices") > 0
    assert metric(stats, "ticktape_kafka_delivered_total", "kafka_prices") == len(ups)
    assert not stats.sink_errors


@pytest.fixture
def sink_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Records of ``ticktape.sinks.kafka`` (whatever propagation the session set up)."""
    logger = logging.getLogger("ticktape.sinks.kafka")
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


#: The broker refuses it (TOPIC_EXCEPTION) or, once librdkafka has its metadata,
#: ``produce`` itself does (_UNKNOWN_TOPIC): both are failed deliveries.
INVALID_TOPIC = "not a valid topic!"


@pytest.mark.parametrize("mode", ["fail", "log"])
def test_rejected_delivery_fails_the_snapshot_or_is_counted(kafka_broker: KafkaBroker, sink_log: pytest.LogCaptureFixture, mode: Any) -> None:  # fmt: skip
    cfg = KafkaOutputConfig(
        enabled=True, bootstrap_servers=kafka_broker.bootstrap_servers, prices_topic=INVALID_TOPIC,
        create_topics=False, partitions=1, on_delivery_error=mode,
    )  # fmt: skip
    stats = RunStats()
    sink = prices_sink(cfg, stats)
    assert sink is not None
    part = sink.build_part("out", "0", None)
    part.write_batch([updates(30), updates(20)])
    if mode == "fail":
        with pytest.raises(SinkError, match=re.escape(repr(INVALID_TOPIC))) as info:
            part.snapshot()
        assert "50 message(s)" in str(info.value)
        assert re.search("TOPIC_EXCEPTION|_UNKNOWN_TOPIC", str(info.value))
    else:
        part.snapshot()
        part.close()
    assert stats.sink_errors["kafka_prices"] == 50
    assert metric(stats, "ticktape_kafka_delivery_failures_total", "kafka_prices") == 50
    records = {id(r): r for r in sink_log.records}.values()  # root and our handler: same record
    errors = [r for r in records if r.name == "ticktape.sinks.kafka" and r.levelno == logging.ERROR]
    texts = [r.getMessage() for r in errors]
    assert 1 <= len(texts) <= 2  # once per kind of error (one or both of the above)
    assert len({re.sub(".*failed: ", "", t) for t in texts}) == len(texts)
    assert all(INVALID_TOPIC in t and "S000-USD" not in t for t in texts)  # the topic, never the payload


def test_flow_stops_when_a_delivery_fails(kafka_broker: KafkaBroker) -> None:
    """Bytewax reports the failed snapshot (and does not commit the epoch); closing the
    other partitions while it unwinds must not raise (that would abort the process)."""
    cfg = KafkaOutputConfig(enabled=True, bootstrap_servers=kafka_broker.bootstrap_servers, prices_topic=INVALID_TOPIC, create_topics=False)  # fmt: skip
    with pytest.raises(Exception, match="snapshot") as info:
        run_flow((prices_sink(cfg), keyed(updates(40), lambda u: int(u.symbol[1:4]))))
    causes = []
    exc: BaseException | None = info.value
    while exc is not None:
        causes.append(exc)
        exc = exc.__cause__ or exc.__context__
    assert any(isinstance(c, SinkError) and repr(INVALID_TOPIC) in str(c) for c in causes), causes


@pytest.mark.parametrize("broker_cls", [ApacheKafka, TansuBroker], ids=["kafka", "tansu"])
def test_broker_gone_mid_run_fails_the_snapshot(tmp_path: Path, broker_cls: type[KafkaBroker]) -> None:
    with broker_cls(tmp_path, name="kafka-private") as broker:
        cfg = KafkaOutputConfig(
            enabled=True, bootstrap_servers=broker.bootstrap_servers, prices_topic="prices", partitions=1,
            producer={"message.timeout.ms": 1500, "reconnect.backoff.max.ms": 200},
        )  # fmt: skip
        stats = RunStats()
        sink = prices_sink(cfg, stats)
        assert sink is not None
        part = sink.build_part("out", "0", None)  # creates the topic
        part.write_batch([updates(10)])
        part.snapshot()  # delivered
        broker.stop()
        part.write_batch([updates(25)])
        with pytest.raises(SinkError, match=r"25 message\(s\) to topic 'prices'.*timed out"):
            part.snapshot()
    assert stats.sink_errors["kafka_prices"] == 25


def test_throughput_against_a_bare_producer(
    kafka_broker: KafkaBroker, kafka_topic: Callable[..., str]
) -> None:
    """200k PriceUpdates through write_batch + snapshot (flush) vs the same messages
    pre-encoded in a bare produce loop, on the same producer settings, interleaved."""
    n = 200_000
    ups = updates(n, symbols=500)
    cfg = KafkaOutputConfig(enabled=True, bootstrap_servers=kafka_broker.bootstrap_servers, create_topics=False, partitions=1)  # fmt: skip
    conf = cfg.producer_config()
    frames = [(price_value(u), u.symbol.encode(), [("event_id", price_event_id(u)), ("ticktape-type", "PriceUpdate")]) for u in ups]  # fmt: skip
    batches = [ups[i : i + 2000] for i in range(0, n, 2000)]

    def through_sink() -> tuple[float, float]:
        sink = KafkaSink(kafka_topic(3), cfg, encode=price_value, key=lambda u: u.symbol.encode(), event_id=price_event_id, kind=lambda _: "PriceUpdate", name="bench")  # fmt: skip
        part = sink.build_part("out", "0", None)
        t0 = time.perf_counter()
        for b in batches:
            part.write_batch([b])
        t1 = time.perf_counter()
        part.snapshot()
        return t1 - t0, time.perf_counter() - t0

    def bare() -> tuple[float, float]:
        topic = kafka_topic(3)
        producer = Producer(conf)
        t0 = time.perf_counter()
        for i, (value, key, hdrs) in enumerate(frames):
            while True:
                try:
                    producer.produce(topic, value, key, headers=hdrs)
                    break
                except BufferError:
                    producer.poll(0.05)
            if i % 2000 == 1999:
                producer.poll(0)
        t1 = time.perf_counter()
        while producer.flush(1.0):
            pass
        return t1 - t0, time.perf_counter() - t0

    runs: dict[str, list[tuple[float, float]]] = {"sink": [], "bare": []}
    for _ in range(2):
        runs["bare"].append(bare())
        runs["sink"].append(through_sink())
    best = {k: (n / min(r[0] for r in v), n / min(r[1] for r in v)) for k, v in runs.items()}
    ratio = best["sink"][1] / best["bare"][1]
    print(
        f"\nkafka throughput, {n} PriceUpdates (best of 2): KafkaSink {best['sink'][1]:,.0f}/s end to end "
        f"({best['sink'][0]:,.0f}/s enqueue), bare produce loop {best['bare'][1]:,.0f}/s "
        f"({best['bare'][0]:,.0f}/s enqueue); ratio {ratio:.2f}"
    )
    assert ratio > 0.2


def test_quotes_arrive_once_keyed_by_symbol(
    kafka_broker: TansuBroker, fresh_topics: Callable[[], str]
) -> None:
    from ticktape.schemas.records import Quote
    from ticktape.sinks.kafka.sink import quote_event_id, quotes_sink

    bootstrap = kafka_broker.bootstrap_servers
    cfg = KafkaOutputConfig(enabled=True, bootstrap_servers=bootstrap, quotes_topic=fresh_topics(), partitions=2,
                            topic_partitions=3)  # fmt: skip
    quotes = [
        Quote(
            "binance",
            f"S{i % 7:03d}-USDT",
            1.0 + i,
            1.0,
            2.0 + i,
            1.0,
            T0 + i,
            T0 + i,
            "ws:binance/0",
            i,
            0,
            i,
            i + 1,
        )
        for i in range(70)
    ]
    stats = RunStats()
    run_flow((quotes_sink(cfg, stats), keyed(quotes, lambda q: int(q.symbol[1:4]))))
    check_topic(
        consume(bootstrap, cfg.quotes_topic, len(quotes)), quotes, quote_event_id, lambda q: q.symbol, "Quote"
    )
    assert stats.sink_writes["kafka_quotes"] == 70
