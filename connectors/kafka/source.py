"""A Kafka topic as a seekable, bounded tick source (confluent-kafka).

Unit of parallelism: a topic partition (``<topic>/<p>``); Bytewax spreads them over the
workers of every process. Each partition has its own consumer, positioned with
``assign()`` (no consumer-group membership: ``subscribe()`` takes ~23 s to a first
message on Tansu, and recovery state, not the group, says where to read).

Delivery: at-least-once across restarts (a resumed run re-reads from the last snapshot;
every sink is idempotent); within one run, exactly the messages in ``[start, end)`` of
each partition, once, in offset order. Start: the resume state when there is one, else
``start`` (beginning, end, per-partition offsets, first message at or after a time, or
the group's committed offsets). End: none (a live run), per-partition offsets, the true
end at launch, or the first message at or after a time; when every partition of the
source reached its end the run ends by itself.

Resume state per partition: ``(next_offset, decoder_state)``. Bounds are not part of
it: ``end = "launch"`` is resolved again by a resumed run, so a replay that must stop
at a fixed place passes ``end_offsets`` (:func:`end_offsets_at`). When ``group`` is
set, ``next_offset`` is also committed to that group after each snapshot (every epoch)
and on close, for monitoring tools only (lag dashboards); recovery never reads it.

Messages become ticks through :class:`~ticktape.schemas.decoding.BatchDecoder` (format
``format``); the broker timestamp is ``ts_kafka``, the reference of the future/past
rule, except for messages with :data:`~ticktape.connectors.kafka.config.HISTORY_HEADER`
(history produced from files: no receive clock, the rule is skipped for them). A feed
format (``binance-ws``, ...: what ``ticktape record`` writes) decodes through
:class:`~ticktape.schemas.feed.FeedBatchDecoder` with the partition's local books (part of
its resume state), and each message's ``ts_recv`` header (the receive time at the venue
socket, ns) is its receive time, so a replay rebuilds exactly what the direct
``websocket`` source built; a partition that reaches its end emits a ``final`` L2
snapshot of every book in sync before it stops. A null value (tombstone) is a
``DECODE_ERROR`` dead letter; a hole in the offsets (compaction, retention, transaction
markers) is a ``SequenceGap`` event of the partition's source aggregate. Offset
resolution and broker quirks live in :mod:`ticktape.connectors.kafka.offsets`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from ticktape.connectors.kafka.config import (
    HISTORY_HEADER,
    ClientEvents,
    KafkaSourceConfig,
    librdkafka_config,
    redacted,
)
from ticktape.connectors.kafka.offsets import (
    Bounds,
    ceil_ms,
    end_offsets_at,
    gap_event,
    merge_batches,
    open_consumer,
    part_names,
    plan_partition,
    tombstone,
)
from ticktape.infra.observability.logs import get_logger
from ticktape.infra.observability.metrics import RunStats
from ticktape.schemas.books.keeper import KeeperSettings
from ticktape.schemas.decoding import BatchDecoder
from ticktape.schemas.errors import MissingDependencyError, SourceError
from ticktape.schemas.feed import FeedBatchDecoder, is_feed_format, make_batch_decoder
from ticktape.schemas.records import TickBatch
from ticktape.schemas.validation import ValidationRules

try:
    from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingDependencyError("confluent-kafka", "kafka") from exc

__all__ = ["KafkaSource", "KafkaSourceConfig", "end_offsets_at"]
log = get_logger("kafka")
_EOF = KafkaError._PARTITION_EOF
_NO_END = 1 << 62
#: The header ``ticktape record`` puts on every frame: its receive time (ns, 8 bytes big-endian).
TS_RECV_HEADER = "ts_recv"
State = tuple[int, tuple[Any, ...]]
"""``(next_offset, decoder state)`` of one partition: ``(watermark, event seq)``, plus the
local books for feed formats."""


Headers = list[tuple[str, bytes | None]] | None


def _is_history(headers: Headers) -> bool:
    """Whether a message's ``headers`` carry :data:`HISTORY_HEADER` (``ticktape produce --file``)."""
    return bool(headers) and HISTORY_HEADER in headers  # type: ignore[operator]


class _KafkaPartition(StatefulSourcePartition[TickBatch, State]):
    def __init__(
        self,
        consumer: Consumer,
        topic: str,
        partition: int,
        decoder: BatchDecoder,
        events: ClientEvents,
        start: int,
        bounds: Bounds,
        *,
        batch_size: int,
        poll_timeout: float,
        group: str,
        recv_header: bool = False,
    ) -> None:
        self.consumer, self.topic, self.partition = consumer, topic, partition
        self.src = decoder.src
        self.decoder, self.events, self.group = decoder, events, group
        self.next_offset = self._committed = start
        self.end = bounds.offset if bounds.offset is not None else _NO_END
        self.end_ms = ceil_ms(bounds.time_ns) if bounds.time_ns is not None else _NO_END
        self.end_wall_ns = bounds.time_ns
        self.batch_size, self.poll_timeout = batch_size, poll_timeout
        self.hwm = start
        self.eof_at = -1  # offset of the last partition EOF event
        self.gaps = 0
        self.done = start >= self.end
        self._idle = 0.0
        self._backoff = 0.0
        self._errored = False
        self._wake: datetime | None = None
        self.recv_header = recv_header
        self.final_sent = False
        consumer.assign([TopicPartition(topic, partition, start)])

    @property
    def position(self) -> int:
        """Next offset, or the partition's end when read up to a hole at its end."""
        return max(self.next_offset, self.eof_at)

    @property
    def lag(self) -> int:
        return max(self.hwm - self.position, 0)

    def next_batch(self) -> list[TickBatch]:
        if self.done:
            if isinstance(self.decoder, FeedBatchDecoder) and not self.final_sent:
                self.final_sent = True  # a bounded feed replay ends with the books' final state
                return [self.decoder.final(self.next_offset, time.time_ns())]
            raise StopIteration
        if self.events.fatal is not None:
            raise SourceError(f"{self.src}: fatal Kafka consumer error: {self.events.fatal}")
        errors = self.events.errors
        self._errored = False
        try:
            msgs = self.consumer.consume(self.batch_size, 0)
        except KafkaException as exc:
            self._error(exc.args[0])
            msgs = []
        self._errored = self._errored or self.events.errors > errors  # error_cb ran in consume()
        batch = self._read(msgs) if msgs else None
        self._update_hwm()
        if self.position >= self.end or (
            self.end_wall_ns is not None
            and self.eof_at >= self.next_offset
            and time.time_ns() >= self.end_wall_ns
        ):
            self.done = True
        self._schedule(batch is not None)
        return [] if batch is None else [batch]

    def _read(self, msgs: list[Message]) -> TickBatch | None:
        ts_recv = time.time_ns()
        rows: list[tuple[int, bytes, int, int]] = []
        history = False  # whether ``rows`` are history rows (HISTORY_HEADER)
        parts: list[TickBatch] = []
        expected, end, end_ms = self.next_offset, self.end, self.end_ms
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.code() == _EOF:
                    self.eof_at = max(self.eof_at, msg.offset() or 0)
                else:
                    self._error(err)
                continue
            off: int = msg.offset()  # type: ignore[assignment]
            if off < expected:  # already read (a re-fetch after a reset)
                continue
            ms = msg.timestamp()[1]
            ts_kafka = ms * 1_000_000 if ms > 0 else 0
            if off > expected and expected < end:  # a hole in the offsets, inside the range
                parts.extend(self._flush(rows, history))
                parts.append(self._gap(expected, min(off, end) - 1, off, ts_kafka))
            if off >= end or ms >= end_ms:
                self.done = True
                break
            value = msg.value()
            if value is None:
                parts.extend(self._flush(rows, history))
                parts.append(self._tombstone(off, ts_recv, ts_kafka))
            else:
                headers: Headers = msg.headers()  # type: ignore[assignment]
                marked = _is_history(headers)
                if marked != history:
                    parts.extend(self._flush(rows, history))
                    history = marked
                rows.append(
                    (off, value, _recv_of(headers, ts_recv) if self.recv_header else ts_recv, ts_kafka)
                )
            expected = off + 1
        self.next_offset = expected
        parts.extend(self._flush(rows, history))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else merge_batches(parts)

    def _flush(self, rows: list[tuple[int, bytes, int, int]], history: bool = False) -> list[TickBatch]:
        """Decode ``rows``; history rows without the future/past rule (no receive clock)."""
        if not rows:
            return []
        batch = self.decoder.decode(rows, clocked=not history)
        rows.clear()
        return [batch]

    def _gap(self, first: int, last: int, at: int, ts_kafka: int) -> TickBatch:
        self.gaps += 1
        event = gap_event(self.src, self.decoder.next_seq(), first, last, at, ts_kafka)
        return TickBatch(self.src, [], [], 0, self.decoder.wmark, [event])

    def _tombstone(self, offset: int, ts_recv: int, ts_kafka: int) -> TickBatch:
        dl, event = tombstone(self.src, self.decoder.next_seq(), offset, ts_recv, ts_kafka)
        return TickBatch(self.src, [], [dl], 1, self.decoder.wmark, [event])

    def _error(self, err: KafkaError) -> None:
        if err.fatal():
            raise SourceError(f"{self.src}: fatal Kafka consumer error: {err.str()}")
        self.events.on_error(err)
        self._errored = True

    def _schedule(self, got_data: bool) -> None:
        """Next wake-up: at once with data, error backoff (0.1 s doubling to 5 s), or idle
        backoff (1 ms doubling to ``poll_timeout``)."""
        if self._errored:
            self._backoff = min(max(self._backoff * 2, 0.1), 5.0)
            delay = self._backoff
        elif got_data or self.done:
            self._backoff = self._idle = 0.0
            self._wake = None
            return
        else:
            delay = self._idle = min(max(self._idle * 2, 0.001), self.poll_timeout)
        self._wake = datetime.now(UTC) + timedelta(seconds=delay)

    def _update_hwm(self) -> None:
        try:
            high = self.consumer.get_watermark_offsets(
                TopicPartition(self.topic, self.partition), cached=True
            )[1]
        except KafkaException:
            return
        if high >= 0:
            self.hwm = max(high, self.position)

    def next_awake(self) -> datetime | None:
        return self._wake

    def snapshot(self) -> State:
        if self.group and self.next_offset != self._committed:
            self._commit(asynchronous=True)
        return (self.next_offset, self.decoder.state())

    def _commit(self, *, asynchronous: bool) -> None:
        try:
            tp = TopicPartition(self.topic, self.partition, self.next_offset)
            if asynchronous:
                self.consumer.commit(offsets=[tp], asynchronous=True)
            else:
                self.consumer.commit(offsets=[tp], asynchronous=False)
            self._committed = self.next_offset
        except KafkaException as exc:
            log.warning("%s: committing offset %d failed: %s", self.src, self.next_offset, exc.args[0].str())

    def close(self) -> None:
        if self.group and self.next_offset != self._committed:
            self._commit(asynchronous=False)
        self.consumer.close()


def _recv_of(headers: Headers, default: int) -> int:
    """The ``ts_recv`` header of a recorded frame, else ``default``."""
    for key, value in headers or ():
        if key == TS_RECV_HEADER and isinstance(value, bytes) and len(value) == 8:
            return int.from_bytes(value, "big")
    return default


class KafkaSource(FixedPartitionedSource[TickBatch, State]):
    """Read a Kafka topic as tick batches (see the module docstring). ``stats`` gets the
    consumer lag, next offset, offset gaps and errors per partition as metrics."""

    def __init__(
        self,
        cfg: KafkaSourceConfig,
        *,
        batch_size: int = 2000,
        rules: ValidationRules | None = None,
        check_clock: bool = True,
        stats: RunStats | None = None,
        keeper_settings: KeeperSettings | None = None,
    ) -> None:
        self.cfg = cfg
        self.batch_size = batch_size
        self.rules = rules or ValidationRules()
        self.check_clock = check_clock
        self.keeper_settings = keeper_settings
        self._conf = librdkafka_config(cfg.bootstrap_servers, cfg.consumer)  # env secrets too
        self._parts: dict[str, _KafkaPartition] = {}
        if stats is not None:
            stats.collectors.append(self._collect)

    def __repr__(self) -> str:
        return f"KafkaSource(topic={self.cfg.topic!r}, conf={redacted(self._conf)!r})"

    def list_parts(self) -> list[str]:
        return part_names(self._conf, self.cfg.topic)

    def build_part(self, step_id: str, for_part: str, resume_state: State | None) -> _KafkaPartition:
        p = int(for_part.rsplit("/", 1)[1])
        events = ClientEvents(for_part)
        conf = {**self._conf, "error_cb": events.on_error, "on_commit": events.on_commit}
        resume_offset = resume_state[0] if resume_state is not None else None
        start, bounds, why = plan_partition(conf, self.cfg, p, resume_offset)
        decoder: BatchDecoder = make_batch_decoder(
            self.cfg.format, for_part, self.rules, check_clock=self.check_clock,
            state=resume_state[1] if resume_state is not None else None, keeper_settings=self.keeper_settings,
        )  # fmt: skip
        part = _KafkaPartition(
            open_consumer(conf, self.cfg.group), self.cfg.topic, p, decoder, events, start, bounds,
            batch_size=self.batch_size, poll_timeout=self.cfg.poll_timeout.seconds, group=self.cfg.group,
            recv_header=is_feed_format(self.cfg.format),
        )  # fmt: skip
        self._parts[for_part] = part
        log.info("%s: start at offset %d (%s), %s", for_part, start, why, bounds.describe())
        return part

    def _collect(self) -> Iterable[Metric]:
        lag = GaugeMetricFamily(
            "ticktape_kafka_consumer_lag",
            "High watermark minus the next offset to read.",
            labels=["partition"],
        )
        nxt = GaugeMetricFamily("ticktape_kafka_next_offset", "Next offset to read.", labels=["partition"])
        gaps = CounterMetricFamily(
            "ticktape_kafka_offset_gaps", "Holes in the offsets.", labels=["partition"]
        )
        errors = CounterMetricFamily(
            "ticktape_kafka_consumer_errors", "Consumer errors (retried).", labels=["partition"]
        )
        for src, part in list(self._parts.items()):
            lag.add_metric([src], part.lag)
            nxt.add_metric([src], part.next_offset)
            gaps.add_metric([src], part.gaps)
            errors.add_metric([src], part.events.errors)
        yield from (lag, nxt, gaps, errors)
