"""Kafka outputs: prices, candles, events, dead letters and quotes as JSON objects on topics.

:class:`KafkaSink` - unit of parallelism: the sink partitions (``partitions`` of them;
items ``(str(key), [records])`` go to partition ``int(key) % partitions``), each owning
one idempotent producer (``acks=all``, ``enable.idempotence``; see
:mod:`ticktape.sinks.kafka.producer`). Delivery: at-least-once. Every snapshot waits until the
broker acknowledged everything produced so far and, with ``on_delivery_error = "fail"``,
fails when a message was not delivered, so Bytewax does not commit the epoch and the job
restarts from the previous snapshot. Duplicates after a restart carry the same
``event_id`` header (the event log's id), so consumers can drop them. Resume state: none.
A full local queue never crashes or drops (unlike Bytewax's KafkaSink, bytewax#522).
Order: the flow keys batches by shard, so a symbol always goes through one sink
partition, one producer and one topic partition: its messages keep their order.

Values are JSON objects with named fields (consumers need not know our array layout);
an event's ``payload`` is embedded as JSON; a dead letter's ``raw`` is text when it is
UTF-8, else base64 (``raw_encoding``). Keys: the symbol (prices, quotes), ``symbol|interval``
(candles), the aggregate (events), the source partition (dead letters).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from ticktape.connectors.kafka.config import redacted
from ticktape.infra.observability.metrics import RunStats
from ticktape.schemas.errors import SinkError, SourceError
from ticktape.schemas.ids import candle_event_id, event_id, price_event_id
from ticktape.schemas.records import Candle, DeadLetter, Event, PriceUpdate, Quote, dead_letter_json
from ticktape.sinks.base.partitioned import PartitionedSink
from ticktape.sinks.kafka.config import KafkaOutputConfig
from ticktape.sinks.kafka.producer import ProducerPartition, RecordFormat

__all__ = [
    "KafkaOutputConfig", "KafkaSink", "RecordFormat", "candle_value", "candles_sink", "dead_letter_value",
    "dead_letters_sink", "event_value", "events_sink", "object_encoder", "price_value", "prices_sink",
    "quote_value", "quotes_sink",
]  # fmt: skip

R = TypeVar("R")
log = logging.getLogger("ticktape.sinks.kafka")
_enc = msgspec.json.Encoder()
_astuple = msgspec.structs.astuple
_topic_lock = threading.Lock()


class KafkaSink(PartitionedSink[list[R], None]):
    """Records of type ``R`` to ``topic``: ``encode(r)`` is the value, ``key(r)`` the key,
    headers ``event_id`` = ``event_id(r)`` and ``ticktape-type`` = ``kind(r)``; ``name``
    labels the metrics (``stats.count_sink``, ``ticktape_kafka_*{sink}``)."""

    def __init__(
        self,
        topic: str,
        cfg: KafkaOutputConfig,
        *,
        encode: Callable[[R], bytes],
        key: Callable[[R], bytes],
        event_id: Callable[[R], str],
        kind: Callable[[R], str],
        name: str,
        stats: RunStats | None = None,
    ) -> None:
        super().__init__(cfg.partitions)
        self.topic = topic
        self.cfg = cfg
        self.fmt = RecordFormat(encode, key, event_id, kind)
        self.name = name
        self.stats = stats
        self._logged: set[tuple[str, int]] = set()
        self._started = False

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> ProducerPartition[R]:
        conf = self.cfg.producer_config()
        with _topic_lock:
            if not self._started:
                log.info("kafka sink %s: producing to %s with %s", self.name, self.topic, redacted(conf))
                if self.cfg.create_topics:
                    self._create_topic()
                self._started = True
        return ProducerPartition(
            conf, self.topic, self.fmt, name=self.name, stats=self.stats,
            on_delivery_error=self.cfg.on_delivery_error, logged=self._logged,
        )  # fmt: skip

    def _create_topic(self) -> None:
        from ticktape.connectors.kafka.produce import ensure_topic

        try:
            ensure_topic(self.cfg.bootstrap_servers, self.topic, self.cfg.topic_partitions, self.cfg.producer)
        except SourceError as exc:
            raise SinkError(f"kafka sink {self.name}: {exc}") from exc


def object_encoder(cls: type[msgspec.Struct]) -> Callable[[Any], bytes]:
    """JSON objects with named fields for records of the ``array_like`` struct ``cls``,
    through a field-for-field twin without ``array_like`` (1.5x faster than ``asdict``)."""
    fields = [(f.name, f.type) for f in msgspec.structs.fields(cls)]
    twin = msgspec.defstruct(f"{cls.__name__}Object", fields, gc=False)
    return lambda record: _enc.encode(twin(*_astuple(record)))


class _EventObject(msgspec.Struct, gc=False):
    event_id: str
    type: str
    aggregate: str
    seq: int
    ts_event: int
    ts_logged: int
    payload: msgspec.Raw | None  # the event's JSON, embedded as is
    causation: str


price_value = object_encoder(PriceUpdate)
candle_value = object_encoder(Candle)
quote_value = object_encoder(Quote)


def quote_event_id(q: Quote) -> str:
    """The id of a quote (as in the market log): its symbol and per-symbol ``seq``."""
    return event_id(q.ts_event, "Q", q.venue, q.symbol, q.seq)


def event_value(e: Event) -> bytes:
    """The event envelope with its JSON ``payload`` embedded (``null`` when empty)."""
    payload = msgspec.Raw(e.payload) if e.payload else None
    return _enc.encode(_EventObject(e.event_id, e.type, e.aggregate, e.seq, e.ts_event, e.ts_logged, payload, e.causation))  # fmt: skip


def dead_letter_value(dl: DeadLetter) -> bytes:
    """:func:`ticktape.schemas.records.dead_letter_json` as bytes."""
    return _enc.encode(dead_letter_json(dl))


def prices_sink(cfg: KafkaOutputConfig, stats: RunStats | None = None) -> KafkaSink[PriceUpdate] | None:
    """Price updates keyed by symbol, ``event_id`` as in the event log; None when off."""
    if not (cfg.enabled and cfg.prices_topic):
        return None
    return KafkaSink(
        cfg.prices_topic, cfg, encode=price_value, key=lambda u: u.symbol.encode(),
        event_id=price_event_id, kind=lambda _: "PriceUpdate", name="kafka_prices", stats=stats,
    )  # fmt: skip


def candles_sink(cfg: KafkaOutputConfig, stats: RunStats | None = None) -> KafkaSink[Candle] | None:
    """Candles keyed by ``symbol|interval`` (a revision has its own ``event_id``); None when off."""
    if not (cfg.enabled and cfg.candles_topic):
        return None
    return KafkaSink(
        cfg.candles_topic, cfg, encode=candle_value, key=lambda c: f"{c.symbol}|{c.interval}".encode(),
        event_id=candle_event_id, kind=lambda _: "Candle", name="kafka_candles", stats=stats,
    )  # fmt: skip


def events_sink(cfg: KafkaOutputConfig, stats: RunStats | None = None) -> KafkaSink[Event] | None:
    """Events keyed by aggregate; ``ticktape-type`` is the event type; None when off."""
    if not (cfg.enabled and cfg.events_topic):
        return None
    return KafkaSink(
        cfg.events_topic, cfg, encode=event_value, key=lambda e: e.aggregate.encode(),
        event_id=lambda e: e.event_id, kind=lambda e: e.type, name="kafka_events", stats=stats,
    )  # fmt: skip


def dead_letters_sink(cfg: KafkaOutputConfig, stats: RunStats | None = None) -> KafkaSink[DeadLetter] | None:
    """Dead letters keyed by source partition; ``event_id`` is the ``dl_id``; None when off."""
    if not (cfg.enabled and cfg.dead_letters_topic):
        return None
    return KafkaSink(
        cfg.dead_letters_topic, cfg, encode=dead_letter_value, key=lambda d: d.src.encode(),
        event_id=lambda d: d.dl_id, kind=lambda _: "DeadLetter", name="kafka_deadletters", stats=stats,
    )  # fmt: skip


def quotes_sink(cfg: KafkaOutputConfig, stats: RunStats | None = None) -> KafkaSink[Quote] | None:
    """Quotes of venue feeds keyed by symbol; ``event_id`` as in the market log; None when off."""
    if not (cfg.enabled and cfg.quotes_topic):
        return None
    return KafkaSink(
        cfg.quotes_topic, cfg, encode=quote_value, key=lambda q: q.symbol.encode(),
        event_id=quote_event_id, kind=lambda _: "Quote", name="kafka_quotes", stats=stats,
    )  # fmt: skip
