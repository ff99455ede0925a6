"""An orders Kafka topic as a seekable, bounded source of order messages.

Same contract as the tick source (:mod:`ticktape.connectors.kafka.source`), with order
messages decoded by :class:`~ticktape.schemas.orders.decoding.OrderBatchDecoder`:
unit of parallelism a topic partition (``assign()``, no group membership); delivery
at-least-once across restarts and exactly the messages of ``[start, end)`` once per run,
in offset order; start and end from ``[orders.kafka]`` (``start``/``end`` as for ticks,
resolved by :func:`~ticktape.connectors.kafka.offsets.plan_partition`). A null value is
a ``DECODE_ERROR`` dead letter, a hole in the offsets a ``SequenceGap`` event of the
partition's source aggregate. Resume state per partition: ``(next_offset, dl_seq)``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from ticktape.connectors.kafka.config import ClientEvents, KafkaSourceConfig, librdkafka_config, redacted
from ticktape.connectors.kafka.offsets import (
    gap_event,
    open_consumer,
    part_names,
    plan_partition,
    tombstone,
)
from ticktape.infra.observability.logs import get_logger
from ticktape.schemas.errors import MissingDependencyError, SourceError
from ticktape.schemas.orders.decoding import OrderBatch, OrderBatchDecoder

try:
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingDependencyError("confluent-kafka", "kafka") from exc

log = get_logger("kafka.orders")
_EOF = KafkaError._PARTITION_EOF
_NO_END = 1 << 62
State = tuple[int, int]


class _OrdersPartition(StatefulSourcePartition[OrderBatch, State]):
    def __init__(
        self, consumer: Consumer, topic: str, p: int, decoder: OrderBatchDecoder, events: ClientEvents,
        start: int, end: int | None, batch_size: int, poll_timeout: float,
    ) -> None:  # fmt: skip
        self.consumer, self.topic, self.p, self.decoder, self.events = consumer, topic, p, decoder, events
        self.src = decoder.src
        self.next_offset = start
        self.end = end if end is not None else _NO_END
        self.batch_size, self.poll_timeout = batch_size, poll_timeout
        self.eof_at = -1
        self.done = start >= self.end
        self._idle = 0.0
        self._wake: datetime | None = None
        consumer.assign([TopicPartition(topic, p, start)])

    def next_batch(self) -> list[OrderBatch]:
        if self.done:
            raise StopIteration
        if self.events.fatal is not None:
            raise SourceError(f"{self.src}: fatal Kafka consumer error: {self.events.fatal}")
        try:
            msgs = self.consumer.consume(self.batch_size, 0)
        except KafkaException as exc:
            self.events.on_error(exc.args[0])
            msgs = []
        ts_recv = time.time_ns()
        rows: list[tuple[int, bytes, int, int]] = []
        batches: list[OrderBatch] = []
        expected = self.next_offset
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.code() == _EOF:
                    self.eof_at = max(self.eof_at, msg.offset() or 0)
                elif err.fatal():
                    raise SourceError(f"{self.src}: fatal Kafka consumer error: {err.str()}")
                else:
                    self.events.on_error(err)
                continue
            off: int = msg.offset()  # type: ignore[assignment]
            if off < expected:
                continue
            if off >= self.end:
                self.done = True
                break
            ms = msg.timestamp()[1]
            ts_kafka = ms * 1_000_000 if ms > 0 else 0
            if off > expected:  # a hole in the offsets
                batches.append(self._flush(rows))
                gap = gap_event(self.src, self.decoder.next_seq(), expected, off - 1, off, ts_kafka)
                batches.append(OrderBatch(self.src, [], [], 0, [gap]))
            value = msg.value()
            if value is None:
                batches.append(self._flush(rows))
                dl, event = tombstone(self.src, self.decoder.next_seq(), off, ts_recv, ts_kafka)
                batches.append(OrderBatch(self.src, [], [dl], 1, [event]))
            else:
                rows.append((off, value, ts_recv, ts_kafka))
            expected = off + 1
        self.next_offset = expected
        batches.append(self._flush(rows))
        out = [b for b in batches if b.n_read or b.events]
        if max(self.next_offset, self.eof_at) >= self.end:
            self.done = True
        if out or self.done:
            self._idle, self._wake = 0.0, None
        else:
            self._idle = min(max(self._idle * 2, 0.001), self.poll_timeout)
            self._wake = datetime.now(UTC) + timedelta(seconds=self._idle)
        return out

    def _flush(self, rows: list[tuple[int, bytes, int, int]]) -> OrderBatch:
        batch = self.decoder.decode(rows)
        rows.clear()
        return batch

    def next_awake(self) -> datetime | None:
        return self._wake

    def snapshot(self) -> State:
        return (self.next_offset, self.decoder.state())

    def close(self) -> None:
        self.consumer.close()


class KafkaOrderSource(FixedPartitionedSource[OrderBatch, State]):
    """Read an orders topic (``cfg.topic``) as order batches (see the module docstring)."""

    def __init__(self, cfg: KafkaSourceConfig, *, batch_size: int = 1000) -> None:
        self.cfg = cfg
        self.batch_size = batch_size
        self._conf = librdkafka_config(cfg.bootstrap_servers, cfg.consumer)

    def __repr__(self) -> str:
        return f"KafkaOrderSource(topic={self.cfg.topic!r}, conf={redacted(self._conf)!r})"

    def list_parts(self) -> list[str]:
        return part_names(self._conf, self.cfg.topic)

    def build_part(self, step_id: str, for_part: str, resume_state: State | None) -> _OrdersPartition:
        p = int(for_part.rsplit("/", 1)[1])
        events = ClientEvents(for_part)
        conf = {**self._conf, "error_cb": events.on_error}
        start, bounds, why = plan_partition(conf, self.cfg, p, resume_state[0] if resume_state else None)
        if bounds.time_ns is not None:
            raise SourceError("the orders source supports end = none | launch | offsets (not time)")
        decoder = OrderBatchDecoder(for_part, dl_seq=resume_state[1] if resume_state else 0)
        log.info("%s: start at offset %d (%s), %s", for_part, start, why, bounds.describe())
        return _OrdersPartition(
            open_consumer(conf), self.cfg.topic, p, decoder, events, start, bounds.offset,
            self.batch_size, self.cfg.poll_timeout.seconds,
        )  # fmt: skip
