"""Offset resolution for the Kafka source: partitions, true ends, times to offsets.

Every function here works on Apache Kafka and on Tansu, the light local broker, whose
offset APIs are unreliable in two ways (measured on Tansu 0.6; Apache Kafka 4.4 answers
correctly; both pinned by ``tests/integration/test_services.py``):

- ``list_offsets(latest)`` / ``get_watermark_offsets`` can report a high watermark that
  is too low (the first offset of the last written batch + 1). :func:`probe_ends`
  therefore reads from the reported watermark to the partition EOF, whose offset is the
  true end (a fetch response carries the right watermark);
- ``offsets_for_times`` searches by broker arrival time, not by message timestamp, and
  returns offset 0 instead of -1 when no message is that late. :func:`resolve_time`
  treats its answer as a hint: it checks the last message's timestamp and then scans
  forward to the first message whose timestamp is at or after the time.

On both, ``AdminClient.list_topics(topic)`` creates a missing topic where the broker
auto-creates topics (Tansu: 4 partitions; Kafka: ``num.partitions``).
:func:`partitions_of` asks through a consumer, which does not.

A "time" is a message timestamp (CreateTime as sent, or LogAppendTime): ``t_ns``
arguments are compared with ``timestamp_ms * 1_000_000``. :func:`gap_event` and
:func:`tombstone` build what a hole in the offsets and a null value become.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from ticktape.connectors.kafka.config import (
    DEFAULTS,
    FORCED,
    ConfValue,
    KafkaSourceConfig,
    client_log,
    librdkafka_config,
)
from ticktape.infra.observability.logs import get_logger
from ticktape.schemas.decoding import dead_letter_event
from ticktape.schemas.errors import DecodeError, MissingDependencyError, SourceError
from ticktape.schemas.ids import event_id
from ticktape.schemas.records import DeadLetter, DLCode, Event, EventType, Tally, TickBatch, source_aggregate

try:
    from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingDependencyError("confluent-kafka", "kafka") from exc

#: ``group.id`` librdkafka requires even though assign() never joins or commits to it.
UNUSED_GROUP = "ticktape-unused"
_EOF = KafkaError._PARTITION_EOF
log = get_logger("kafka")
_enc = msgspec.json.Encoder()


def consumer_conf(conf: Mapping[str, Any], group: str = "") -> dict[str, Any]:
    """``conf`` plus the source's defaults and forced settings and ``group.id``."""
    for key in (*FORCED, "group.id"):
        if key in conf:
            hint = "set `group`" if key == "group.id" else "the source manages it"
            raise SourceError(f"librdkafka setting {key!r} cannot be overridden: {hint}")
    return {"logger": client_log, **DEFAULTS, **conf, **FORCED, "group.id": group or UNUSED_GROUP}


def open_consumer(conf: Mapping[str, Any], group: str = "", *, probe: bool = False) -> Consumer:
    """A consumer with :func:`consumer_conf` (never subscribed: callers use assign).
    ``probe``: for reading to a partition's end quickly (the broker answers an empty fetch
    at once instead of holding it ``fetch.wait.max.ms``, 500 ms by default)."""
    settings = consumer_conf(conf, group)
    if probe:
        settings["fetch.wait.max.ms"] = 10
    try:
        return Consumer(settings)
    except KafkaException as exc:
        raise SourceError(f"cannot create a Kafka consumer: {exc.args[0].str()}") from None


def partitions_of(consumer: Consumer, topic: str, timeout: float = 10.0) -> list[int]:
    """The partition ids of ``topic``; :class:`SourceError` if it does not exist."""
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    except KafkaException as exc:
        raise SourceError(f"cannot read the metadata of Kafka topic {topic!r}: {exc.args[0].str()}") from None
    if meta is None or meta.error is not None or not meta.partitions:
        why = meta.error.str() if meta is not None and meta.error is not None else "no partitions"
        raise SourceError(f"Kafka topic {topic!r} is not usable: {why} (create it first)")
    return sorted(meta.partitions)


def part_names(conf: Mapping[str, Any], topic: str) -> list[str]:
    """The Bytewax partition names of ``topic``: ``<topic>/<partition id>``."""
    consumer = open_consumer(conf)
    try:
        return [f"{topic}/{p}" for p in partitions_of(consumer, topic)]
    finally:
        consumer.close()


def _scan(
    consumer: Consumer,
    starts: Mapping[int, int],
    topic: str,
    visit: Callable[[int, Message], bool],
    timeout: float,
) -> dict[int, int]:
    """Read each partition from ``starts[p]`` until ``visit(p, msg)`` returns True or the
    partition's EOF; returns ``{p: offset}`` of the stop (the message, or the EOF)."""
    consumer.assign([TopicPartition(topic, p, off) for p, off in starts.items()])
    stops: dict[int, int] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(stops) < len(starts):
            if time.monotonic() > deadline:
                missing = sorted(set(starts) - set(stops))
                raise SourceError(
                    f"Kafka topic {topic!r}: partitions {missing} not read to their end in {timeout}s"
                )
            for msg in consumer.consume(1000, 0.05):
                p, err = msg.partition(), msg.error()
                if p in stops or p is None:
                    continue
                if err is not None:
                    if err.code() == _EOF:
                        stops[p] = msg.offset() or 0
                    elif err.fatal():
                        raise SourceError(f"Kafka topic {topic!r} partition {p}: {err.str()}")
                    continue
                if (msg.offset() or 0) >= starts[p] and visit(p, msg):
                    stops[p] = msg.offset() or 0
    finally:
        consumer.unassign()
    return stops


def watermarks(consumer: Consumer, topic: str, p: int, timeout: float = 10.0) -> tuple[int, int]:
    """The reported ``(low, high)`` watermarks (on Tansu ``high`` may be too low)."""
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout, cached=False)
    except KafkaException as exc:
        raise SourceError(f"Kafka topic {topic!r} partition {p}: {exc.args[0].str()}") from None
    return int(low), int(high)


def probe_ends(
    consumer: Consumer, topic: str, partitions: list[int], timeout: float = 30.0
) -> dict[int, tuple[int, int]]:
    """``{p: (true_end, last_timestamp_ms)}``: read from just below each reported high
    watermark to the partition EOF (``last_timestamp_ms`` is -1 for an empty partition)."""
    starts = {}
    for p in partitions:
        low, high = watermarks(consumer, topic, p)
        starts[p] = max(high - 1, low)
    last: dict[int, int] = {}

    def visit(p: int, msg: Message) -> bool:
        last[p] = msg.timestamp()[1]
        return False

    ends = _scan(consumer, starts, topic, visit, timeout)
    return {p: (ends[p], last.get(p, -1)) for p in partitions}


def ceil_ms(t_ns: int) -> int:
    """The smallest millisecond timestamp ``ms`` with ``ms * 1_000_000 >= t_ns``."""
    return -(-t_ns // 1_000_000)


def resolve_time(
    consumer: Consumer, topic: str, partitions: list[int], t_ns: int, timeout: float = 30.0
) -> tuple[dict[int, int | None], dict[int, int]]:
    """``({p: first offset with timestamp >= t_ns, or None if none yet}, {p: true end})``."""
    t_ms = ceil_ms(t_ns)
    try:
        hints = consumer.offsets_for_times(
            [TopicPartition(topic, p, t_ms) for p in partitions], timeout=timeout
        )
    except KafkaException as exc:
        raise SourceError(f"Kafka topic {topic!r}: offsets_for_times failed: {exc.args[0].str()}") from None
    ends = probe_ends(consumer, topic, partitions, timeout)
    out: dict[int, int | None] = dict.fromkeys(partitions)
    scan: dict[int, int] = {}
    for tp in hints:
        end, last_ms = ends[tp.partition]
        if 0 <= tp.offset < end and last_ms >= t_ms:  # some message is at/after t_ms
            scan[tp.partition] = tp.offset
    if scan:
        found = _scan(consumer, scan, topic, lambda _p, msg: msg.timestamp()[1] >= t_ms, timeout)
        out.update({p: off if off < ends[p][0] else None for p, off in found.items()})
    return out, {p: end for p, (end, _) in ends.items()}


def committed_offsets(consumer: Consumer, topic: str, partitions: list[int]) -> dict[int, int | None]:
    """The group's committed offsets (``None`` where it has none)."""
    try:
        got = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10.0)
    except KafkaException as exc:
        raise SourceError(f"Kafka topic {topic!r}: no committed offsets: {exc.args[0].str()}") from None
    return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in got}


def end_offsets_at(
    bootstrap: str,
    topic: str,
    conf: Mapping[str, ConfValue] | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> dict[int, int]:
    """``{partition: true end offset}`` of ``topic`` now: what ``end = "launch"`` means.

    The CLI resolves it once and passes it as ``end = "offsets"`` to every process of a
    cluster, so they all stop at the same place. ``conf`` are the file's librdkafka
    settings (``[source.kafka] consumer``); secrets come from ``env`` (default
    ``os.environ``) as in :func:`~ticktape.connectors.kafka.config.librdkafka_config`.
    """
    consumer = open_consumer(librdkafka_config(bootstrap, conf, env=env), probe=True)
    try:
        ends = probe_ends(consumer, topic, partitions_of(consumer, topic))
    finally:
        consumer.close()
    return {p: end for p, (end, _) in ends.items()}


@dataclass(slots=True)
class Bounds:
    """Where a partition stops: before ``offset`` and/or before the first message whose
    timestamp is >= ``time_ns`` (also when read to its end after ``time_ns``)."""

    offset: int | None = None
    time_ns: int | None = None

    def describe(self) -> str:
        if self.offset is not None:
            return f"end before offset {self.offset}"
        if self.time_ns is not None:
            return f"end at the first message at or after {self.time_ns} ns"
        return "no end"


def plan_partition(
    conf: Mapping[str, Any], cfg: KafkaSourceConfig, p: int, resume_offset: int | None
) -> tuple[int, Bounds, str]:
    """``(start offset, bounds, why this start)`` of partition ``p`` under ``cfg``, found
    with a short-lived probe consumer (librdkafka settings ``conf``)."""
    consumer = open_consumer(conf, cfg.group, probe=True)
    try:
        return _plan(consumer, cfg, p, resume_offset)
    finally:
        consumer.close()


def _plan(
    consumer: Consumer, cfg: KafkaSourceConfig, p: int, resume_offset: int | None
) -> tuple[int, Bounds, str]:
    topic = cfg.topic
    true_end: list[int] = []

    def end_now() -> int:
        if not true_end:
            true_end.append(probe_ends(consumer, topic, [p])[p][0])
        return true_end[0]

    bounds = Bounds()
    if cfg.end == "offsets":
        bounds.offset = cfg.end_offsets.get(p)
    elif cfg.end == "launch":
        bounds.offset = end_now()
    elif cfg.end == "time":
        found, ends = resolve_time(consumer, topic, [p], cfg.end_time_ns)
        true_end.append(ends[p])
        if found[p] is not None:
            bounds.offset = found[p]
        elif cfg.end_time_ns <= time.time_ns():
            bounds.offset = ends[p]
        else:  # nothing that late yet: the first such message, or EOF after that time
            bounds.time_ns = cfg.end_time_ns
    low, high = watermarks(consumer, topic, p)
    if resume_offset is not None:
        start, why = resume_offset, "resume state"
    elif cfg.start == "offsets":
        start, why = cfg.start_offsets.get(p, low), "start_offsets"
    elif cfg.start == "end":
        start, why = end_now(), "end"
    elif cfg.start == "time":
        found, ends = resolve_time(consumer, topic, [p], cfg.start_time_ns)
        first = found[p]
        start, why = (first if first is not None else ends[p]), "start_time_ns"
    elif cfg.start == "committed":
        committed = committed_offsets(consumer, topic, [p])[p]
        start, why = (committed, f"committed by {cfg.group}") if committed is not None else (low, "beginning")
    else:
        start, why = low, "beginning"
    if start < low:
        log.warning(
            "%s/%d: offsets %d..%d are gone (retention?): reported as a gap", topic, p, start, low - 1
        )
    if start > high and start > end_now():
        raise SourceError(
            f"{topic}/{p}: start offset {start} ({why}) is past the end of the partition "
            f"({end_now()}); was the topic deleted and recreated?"
        )
    return start, bounds, why


def gap_event(src: str, seq: int, first: int, last: int, at: int, ts_kafka: int) -> Event:
    """The ``SequenceGap`` event of offsets ``first..last`` missing in partition ``src``,
    revealed by the message at offset ``at`` (broker timestamp ``ts_kafka``, ns)."""
    payload = {"src": src, "first_missing": first, "last_missing": last, "count": last - first + 1}
    return Event(
        event_id(ts_kafka, "OG", src, first, last), EventType.SEQUENCE_GAP, source_aggregate(src), seq,
        ts_kafka, 0, _enc.encode(payload | {"kind": "offset"}), f"{src}@{at}",
    )  # fmt: skip


def tombstone(src: str, seq: int, offset: int, ts_recv: int, ts_kafka: int) -> tuple[DeadLetter, Event]:
    """The dead letter (and its event) of a message without a value."""
    exc = DecodeError(DLCode.DECODE_ERROR, "value", "message bytes", "null (a tombstone)")
    dl_id = event_id(ts_kafka, "DL", src, offset, 0)
    dl = DeadLetter(dl_id, exc.code, exc.describe(), b"", src, offset, ts_recv, ts_kafka=ts_kafka)
    return dl, dead_letter_event(dl, source_aggregate(src), seq, ts_kafka)


def merge_batches(parts: list[TickBatch]) -> TickBatch:
    """One batch of consecutive batches of the same partition, in order."""
    ticks = [t for b in parts for t in b.ticks]
    dead = [d for b in parts for d in b.dead]
    events = [e for b in parts for e in b.events]
    merged = TickBatch(parts[0].src, ticks, dead, sum(b.n_read for b in parts), parts[-1].wmark, events)
    if any(b.has_market() or b.decided is not None for b in parts):
        merged.quotes = [q for b in parts for q in b.quotes]
        merged.books = [s for b in parts for s in b.books]
        merged.facts = [f for b in parts for f in b.facts]
        decided = Tally()
        for b in parts:
            if b.decided is not None:
                decided.accepted += b.decided.accepted
                decided.duplicate += b.decided.duplicate
        merged.decided = decided
    return merged
