"""ticktape.sinks.kafka.sink without a broker: message values, the ids in the ``event_id`` header
(equal to what the keyed step puts in the event log) and the config section."""

from __future__ import annotations

import base64
import json

import msgspec
import pytest

from tests.support import records
from ticktape.flows.steps.candles import CandleConfig
from ticktape.flows.steps.shard import ShardProcessor, ShardSettings
from ticktape.schemas.durations import Duration
from ticktape.schemas.errors import ConfigError
from ticktape.schemas.ids import candle_event_id, price_event_id
from ticktape.schemas.records import EventType, Tick
from ticktape.schemas.validation import ValidationRules
from ticktape.sinks.kafka.sink import (
    KafkaOutputConfig,
    candle_value,
    candles_sink,
    dead_letter_value,
    dead_letters_sink,
    event_value,
    events_sink,
    price_value,
    prices_sink,
)

S = 1_000_000_000
T0 = 1_700_000_000 * S
UPDATE = records.price_update(
    venue="binance", symbol="BTC-USDT", price=65000.5, size=0.25, side="buy", trade_id="42", ts_event=T0,
    ts_kafka=T0 + 1, ts_recv=T0 + 2, ts_proc=T0 + 3, seq=7, src="trades/0", offset=99,
)  # fmt: skip
CANDLE = records.candle(
    venue="binance", symbol="BTC-USDT", interval=60, start=T0, end=T0 + 60 * S, open=1.0, high=2.0, low=0.5,
    close=1.5, volume=10.0, notional=12.5, vwap=1.25, trades=4, buy_volume=6.0, sell_volume=4.0,
    first_trade_id="1", last_trade_id="4", revision=1, ts_final=T0 + 61 * S,
)  # fmt: skip


def test_price_and_candle_values_are_objects_with_every_field() -> None:
    assert json.loads(price_value(UPDATE)) == msgspec.structs.asdict(UPDATE)
    assert json.loads(candle_value(CANDLE)) == msgspec.structs.asdict(CANDLE)
    assert next(iter(json.loads(price_value(UPDATE)))) == "venue"  # field order kept


def test_event_value_embeds_the_payload_as_json() -> None:
    payload = msgspec.json.encode({"first": 3, "last": 5, "nested": [1.5, "x"]})
    e = records.event(
        event_id="00ab", type=EventType.SEQUENCE_GAP, aggregate="BTC-USDT@binance", seq=3, ts_event=T0,
        ts_logged=T0 + 9, payload=payload, causation="trades/0@7",
    )  # fmt: skip
    doc = json.loads(event_value(e))
    assert doc == {
        "event_id": "00ab", "type": "SequenceGap", "aggregate": "BTC-USDT@binance", "seq": 3,
        "ts_event": T0, "ts_logged": T0 + 9, "payload": {"first": 3, "last": 5, "nested": [1.5, "x"]},
        "causation": "trades/0@7",
    }  # fmt: skip
    empty = records.event(
        event_id="00ac", type=EventType.SYMBOL_STALE, aggregate="a@b", seq=1, ts_event=0, ts_logged=0,
        payload=b"", causation="",
    )  # fmt: skip
    assert json.loads(event_value(empty))["payload"] is None


def test_dead_letter_value_text_or_base64() -> None:
    text = records.dead_letter(
        dl_id="dl1", code="BAD_PRICE", message="field `price`: expected > 0, got -1", raw=b'{"p": -1}',
        src="trades/1", offset=5, ts_recv=T0,
    )  # fmt: skip
    doc = json.loads(dead_letter_value(text))
    assert (doc["raw"], doc["raw_encoding"], doc["dl_id"], doc["src"]) == (
        '{"p": -1}',
        "utf-8",
        "dl1",
        "trades/1",
    )
    binary = records.dead_letter(
        dl_id="dl2", code="DECODE_ERROR", message="not JSON", raw=b"\xff\x00\xfe", src="trades/1", offset=6,
        ts_recv=T0,
    )  # fmt: skip
    doc = json.loads(dead_letter_value(binary))
    assert doc["raw_encoding"] == "base64"
    assert base64.b64decode(doc["raw"]) == b"\xff\x00\xfe"


def _tick(trade_id: str, trade_no: int, ts: int, price: float, offset: int) -> Tick:
    return records.tick(
        venue="binance", symbol="BTC-USDT", price=price, size=1.0, side="buy", trade_id=trade_id, ts_event=ts,
        ts_recv=ts, src="trades/0", offset=offset, ts_kafka=0, trade_no=trade_no, wmark=ts,
    )  # fmt: skip


def test_ids_equal_the_event_log_ids_of_the_keyed_step() -> None:
    settings = ShardSettings(
        rules=ValidationRules(max_jump_pct=0.0, zscore_threshold=0.0), window=64, reorder=4,
        contiguous_venues=frozenset({"binance"}), stale_after=3600 * S, stale_overrides={}, live=False,
        candles=CandleConfig(intervals=(Duration.parse("1m"),), grace=Duration.parse("0s")),
    )  # fmt: skip
    proc = ShardProcessor(settings)
    ticks = [_tick(str(i), i, T0 + i * 20 * S, 100.0 + i, i) for i in range(1, 8)]
    ticks += [_tick("", -1, T0 + 200 * S, 99.0, 50)]  # no trade id: source coordinates
    outs = [proc.process(ticks[:4]), proc.process(ticks[4:]), proc.flush()]
    updates = [u for o in outs for u in o.updates]
    candles = [c for o in outs for c in o.candles]
    events = [e for o in outs for e in o.events]
    price_ids = [e.event_id for e in events if e.type == EventType.PRICE_UPDATED]
    candle_ids = [e.event_id for e in events if e.type in (EventType.CANDLE_CLOSED, EventType.CANDLE_REVISED)]
    assert len(updates) == 8
    assert len(candles) >= 3
    assert [price_event_id(u) for u in updates] == price_ids
    assert [candle_event_id(c) for c in candles] == candle_ids


def test_config_section_defaults_and_validation() -> None:
    cfg = msgspec.convert({"enabled": True, "producer": {"linger.ms": 20}}, KafkaOutputConfig)
    assert (cfg.partitions, cfg.topic_partitions, cfg.on_delivery_error) == (4, 3, "fail")
    conf = cfg.producer_config(env={"TICKTAPE_KAFKA_SASL_PASSWORD": "s3cret"})
    assert conf["acks"] == "all"
    assert conf["enable.idempotence"] is True
    assert conf["linger.ms"] == 20
    assert conf["sasl.password"] == "s3cret"
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.convert({"topic": "x"}, KafkaOutputConfig)
    with pytest.raises(msgspec.ValidationError, match="partitions"):
        msgspec.convert({"partitions": 0}, KafkaOutputConfig)
    with pytest.raises(ConfigError, match="acks"):
        KafkaOutputConfig(producer={"acks": 1}).producer_config(env={})
    with pytest.raises(ConfigError, match=r"enable\.idempotence"):
        KafkaOutputConfig().producer_config(env={"TICKTAPE_KAFKA_ENABLE_IDEMPOTENCE": "false"})
    with pytest.raises(ConfigError, match="TICKTAPE_KAFKA_SASL_PASSWORD"):
        KafkaOutputConfig(producer={"sasl.password": "x"}).producer_config(env={})


def test_factories_are_off_when_disabled_or_topic_empty() -> None:
    off = KafkaOutputConfig()
    assert [f(off) for f in (prices_sink, candles_sink, events_sink, dead_letters_sink)] == [None] * 4
    some = KafkaOutputConfig(enabled=True, candles_topic="", partitions=2)
    assert candles_sink(some) is None
    sink = prices_sink(some)
    assert sink is not None
    assert (sink.topic, sink.list_parts(), sink.part_fn("7")) == ("ticktape.prices", ["0", "1"], 1)
    assert events_sink(some) is not None
    assert dead_letters_sink(some) is not None
