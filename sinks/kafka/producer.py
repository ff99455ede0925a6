"""The partition of :class:`ticktape.sinks.kafka.sink.KafkaSink`: one idempotent producer.

:class:`ProducerPartition` turns records into messages with a :class:`RecordFormat` and
produces them to one topic. A full local queue (``BufferError``) is backpressure, not an
error: the partition serves delivery reports (``poll``) and retries the same message
until librdkafka takes it, counting the waits; nothing is dropped and nothing crashes.
Delivery reports are counted per sink (only failures call back into Python: delivered =
produced - failed - outstanding). ``snapshot`` waits until nothing is outstanding, then
raises :class:`~ticktape.schemas.errors.SinkError` for failures since the previous snapshot when
``on_delivery_error = "fail"``, so the epoch is not committed (at-least-once).

Metrics (``ticktape_kafka_producer_waits_total``, ``_delivered_total``,
``_delivery_failures_total``, ``_outstanding``, all by ``sink``) come from one collector
per :class:`~ticktape.infra.observability.metrics.RunStats`; the hot path only increments plain integers.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from bytewax.outputs import StatefulSinkPartition
from confluent_kafka import KafkaError, KafkaException, Producer
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from ticktape.infra.observability.metrics import RunStats
from ticktape.schemas.errors import SinkError

R = TypeVar("R")
Headers = list[tuple[str, str | bytes | None]]
log = logging.getLogger("ticktape.sinks.kafka")
#: How long ``close`` waits for outstanding messages.
CLOSE_FLUSH_S = 30.0
#: A client error or librdkafka log line that repeats (a broker that stays down) is
#: logged at most once per this many seconds.
REPEAT_LOG_S = 60.0


class _Repeats(logging.Filter):
    """Drops a record whose text (digits aside) was let through less than
    :data:`REPEAT_LOG_S` ago."""

    def __init__(self) -> None:
        super().__init__()
        self.last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        text = re.sub(r"\([^)]*\)|\d+", "#", f"{record.name} {record.getMessage()}")
        now = time.monotonic()
        if now - self.last.get(text, -REPEAT_LOG_S) < REPEAT_LOG_S:
            return False
        if len(self.last) > 1000:
            self.last.clear()
        self.last[text] = now
        return True


_rdkafka_log = logging.getLogger("ticktape.kafka.librdkafka")
_rdkafka_log.addFilter(_Repeats())
_client_log = logging.getLogger("ticktape.kafka.producer")  # error_cb
_client_log.addFilter(_Repeats())


@dataclass(frozen=True, slots=True)
class RecordFormat(Generic[R]):
    """How a record becomes a message: value, key, and the ``event_id`` and
    ``ticktape-type`` headers."""

    encode: Callable[[R], bytes]
    key: Callable[[R], bytes]
    event_id: Callable[[R], str]
    kind: Callable[[R], str]


class _Counters:
    """One partition's counters; only its worker thread writes them."""

    __slots__ = ("failed", "name", "produced", "producer", "waits")

    def __init__(self, name: str, producer: Producer) -> None:
        self.name = name
        self.producer = producer
        self.produced = self.failed = self.waits = 0


_registry: weakref.WeakKeyDictionary[RunStats, list[_Counters]] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def _register(stats: RunStats, counters: _Counters) -> None:
    """Add a partition's counters to the collector of ``stats`` (registered once)."""
    with _registry_lock:
        parts = _registry.get(stats)
        if parts is None:
            parts = _registry[stats] = []
            stats.collectors.append(lambda: _collect(parts))
        parts.append(counters)


def _collect(parts: list[_Counters]) -> Iterable[Metric]:
    families: tuple[CounterMetricFamily | GaugeMetricFamily, ...] = (
        CounterMetricFamily("ticktape_kafka_producer_waits", "Waits for room in a full producer queue.", labels=["sink"]),
        CounterMetricFamily("ticktape_kafka_delivered", "Messages the broker acknowledged.", labels=["sink"]),
        CounterMetricFamily("ticktape_kafka_delivery_failures", "Messages not delivered.", labels=["sink"]),
        GaugeMetricFamily("ticktape_kafka_outstanding", "Messages awaiting acknowledgement.", labels=["sink"]),
    )  # fmt: skip
    totals: dict[str, list[int]] = {}
    for c in list(parts):
        outstanding = len(c.producer)
        t = totals.setdefault(c.name, [0, 0, 0, 0])
        t[0] += c.waits
        t[1] += c.produced - c.failed - outstanding
        t[2] += c.failed
        t[3] += outstanding
    for name, values in sorted(totals.items()):
        for family, value in zip(families, values, strict=True):
            family.add_metric([name], value)
    return families


class ProducerPartition(StatefulSinkPartition[list[R], None]):
    """Records to ``topic`` through one idempotent producer built from ``conf``.

    ``logged`` is shared by the partitions of one sink: each ``(topic, error code)`` is
    logged once at ERROR (topic and error, never the payload), later ones only counted.
    """

    def __init__(
        self,
        conf: dict[str, Any],
        topic: str,
        fmt: RecordFormat[R],
        *,
        name: str,
        stats: RunStats | None,
        on_delivery_error: Literal["fail", "log"],
        logged: set[tuple[str, int]],
    ) -> None:
        self.topic = topic
        self.fmt = fmt
        self.name = name
        self.stats = stats
        self.on_delivery_error = on_delivery_error
        self.logged = logged
        self.producer = Producer({**conf, "on_delivery": self._delivery, "error_cb": self._error, "logger": _rdkafka_log})  # fmt: skip
        self.counters = _Counters(name, self.producer)
        if stats is not None:
            _register(stats, self.counters)
        self.failures = 0  # since the last snapshot
        self.first_error: KafkaError | None = None  # since the last snapshot
        self.fatal: KafkaError | None = None

    def write_batch(self, values: list[list[R]]) -> None:
        t0 = time.perf_counter()
        topic, produce = self.topic, self.producer.produce
        encode, key, event_id, kind = self.fmt.encode, self.fmt.key, self.fmt.event_id, self.fmt.kind
        n = 0
        for batch in values:
            for r in batch:
                value, k = encode(r), key(r)
                headers: Headers = [("event_id", event_id(r)), ("ticktape-type", kind(r))]
                try:
                    produce(topic, value, k, headers=headers)
                except BufferError:
                    self._wait_and_produce(value, k, headers)
                except KafkaException as exc:
                    self._refused(exc)
            n += len(batch)
        self.producer.poll(0)
        self.counters.produced += n
        if self.stats is not None:
            self.stats.count_sink(self.name, n, time.perf_counter() - t0)

    def _wait_and_produce(self, value: bytes, key: bytes, headers: Headers) -> None:
        """Backpressure: serve delivery reports until the local queue takes the message."""
        while True:
            self.counters.waits += 1
            self.producer.poll(0.05)
            try:
                self.producer.produce(self.topic, value, key, headers=headers)
                return
            except BufferError:
                continue
            except KafkaException as exc:
                self._refused(exc)
                return

    def _refused(self, exc: KafkaException) -> None:
        """``produce`` refused the message itself (too large, fatal producer, ...)."""
        err: KafkaError = exc.args[0]
        if err.fatal():
            self.fatal = err
            self._check()
        self._failed(err)

    def _delivery(self, err: KafkaError | None, msg: object) -> None:
        if err is not None:
            self._failed(err)

    def _failed(self, err: KafkaError) -> None:
        self.counters.failed += 1
        self.failures += 1
        if self.first_error is None:
            self.first_error = err
        if self.stats is not None:
            self.stats.count_sink(self.name, 0, 0.0, failed=True)
        kind = (self.topic, err.code())
        if kind not in self.logged:
            self.logged.add(kind)
            log.error(
                "kafka sink %s: delivery to topic %s failed: %s (%s); further failures of this kind "
                "are counted, not logged", self.name, self.topic, err.str(), err.name(),
            )  # fmt: skip

    def _error(self, err: KafkaError) -> None:
        if err.fatal():
            self.fatal = err
        level = logging.ERROR if err.fatal() else logging.WARNING
        _client_log.log(
            level, "kafka sink %s (topic %s): %s (%s)", self.name, self.topic, err.str(), err.name()
        )

    def _flush(self, limit: float | None = None) -> int:
        """Flush until nothing is outstanding (or ``limit`` seconds); returns what is left."""
        started = time.monotonic()
        waited = 0
        while (left := self.producer.flush(1.0)) > 0:
            waited += 1
            if limit is not None and time.monotonic() - started >= limit:
                return left
            if waited % 10 == 0:
                log.warning("kafka sink %s: %d message(s) to %s unacknowledged after %d s", self.name, left, self.topic, waited)  # fmt: skip
        return 0

    def _check(self) -> None:
        """Raise for a fatal producer error, or for failed deliveries in ``fail`` mode."""
        if self.fatal is not None:
            raise SinkError(f"kafka sink {self.name}: the producer for topic {self.topic!r} failed: {self.fatal.str()} ({self.fatal.name()})")  # fmt: skip
        err, n = self.first_error, self.failures
        if err is None:
            return
        self.first_error, self.failures = None, 0
        what = f"kafka sink {self.name}: {n} message(s) to topic {self.topic!r} not delivered since the last snapshot, first error: {err.str()} ({err.name()})"  # fmt: skip
        if self.on_delivery_error == "fail":
            raise SinkError(
                f"{what}; failing the snapshot so the epoch is replayed (on_delivery_error = 'fail')"
            )
        log.warning("%s; dropped (on_delivery_error = 'log')", what)

    def snapshot(self) -> None:
        """Wait until the broker acknowledged everything, then report failures."""
        self._flush()
        self._check()

    def close(self) -> None:
        """Flush (at most ``CLOSE_FLUSH_S``) and log what is left; never raises: Bytewax
        also closes partitions while unwinding from an error, and an exception there
        aborts the process. The snapshot at the end of input has reported failures."""
        left = self._flush(CLOSE_FLUSH_S)
        if left:
            log.warning("kafka sink %s: closing with %d message(s) to %s unacknowledged", self.name, left, self.topic)  # fmt: skip
        try:
            self._check()
        except SinkError as exc:
            log.error("%s", exc)
