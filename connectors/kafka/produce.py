"""What ``ticktape produce`` does: create a topic, build messages, send them to Kafka.

- :func:`ensure_topic` creates the topic with N partitions (an existing one is fine);
- :func:`produce_messages` sends ``(key, value)`` pairs with an idempotent producer
  (``acks=all``, ``enable.idempotence=true``; ``murmur2_random`` partitioner, like the
  Java client, so every producer puts a symbol in the same partition), optionally at a
  fixed rate. A full local queue is waited out (poll, retry), never dropped; every
  message is flushed at the end and a failed delivery raises
  :class:`~ticktape.schemas.errors.SourceError`;
- message builders, each yielding ``(key = symbol, value)``:
  :func:`history_messages` (history file rows as generic JSON ticks: the topic then
  holds format ``generic``; sent with :data:`HISTORY_HEADER`, so consumers do not judge
  years-old trades by the time they were produced), :func:`synthetic_messages` (the synthetic feed, generic
  JSON) and :func:`venue_sample_messages` (recorded venue JSON as it is: the topic then
  holds that venue's format).

librdkafka settings and secrets follow :mod:`ticktape.connectors.kafka.config` (file settings,
then ``TICKTAPE_KAFKA_*`` from the environment).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import msgspec

from ticktape.connectors.kafka.config import ConfValue, client_log, librdkafka_config
from ticktape.connectors.synthetic.feed import SyntheticConfig, SyntheticGenerator
from ticktape.infra.observability.logs import get_logger
from ticktape.schemas.errors import DataError, InputError, MissingDependencyError, SourceError
from ticktape.schemas.history import HistorySpec, open_history

try:
    from confluent_kafka import KafkaError, KafkaException, Message, Producer
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingDependencyError("confluent-kafka", "kafka") from exc

log = get_logger("kafka.produce")
#: Producer settings that make delivery safe; they cannot be overridden.
PRODUCER_FORCED: dict[str, ConfValue] = {"acks": "all", "enable.idempotence": True}
PRODUCER_DEFAULTS: dict[str, ConfValue] = {"linger.ms": 5, "partitioner": "murmur2_random"}
_enc = msgspec.json.Encoder()
_SYMBOL_KEYS = ("s", "symbol", "product_id")


class ProduceReport(msgspec.Struct, frozen=True):
    """What :func:`produce_messages` did: messages handed to the producer (``sent``),
    acknowledged by the broker (``delivered``) per ``partitions``, and ``seconds``."""

    topic: str
    sent: int
    delivered: int
    failed: int
    seconds: float
    partitions: dict[int, int]
    first_error: str = ""

    @property
    def rate(self) -> float:
        """Delivered messages per second."""
        return self.delivered / self.seconds if self.seconds > 0 else 0.0


def ensure_topic(
    bootstrap: str,
    topic: str,
    partitions: int,
    conf: Mapping[str, ConfValue] | None = None,
    *,
    replication: int = -1,
    env: Mapping[str, str] | None = None,
) -> bool:
    """Create ``topic`` with ``partitions`` partitions (``replication`` -1: the broker's
    default); True if it was created, False if it already existed (its partition count
    is then left as it is)."""
    settings: dict[str, Any] = librdkafka_config(bootstrap, conf, env=env, where="admin")
    settings["logger"] = client_log
    admin = AdminClient(settings)
    future = admin.create_topics([NewTopic(topic, partitions, replication)], operation_timeout=15)[topic]
    try:
        future.result(timeout=20)
    except KafkaException as exc:
        err: KafkaError = exc.args[0]
        if err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
            return False
        raise SourceError(f"cannot create Kafka topic {topic!r} on {bootstrap}: {err.str()}") from None
    log.info("created topic %s with %d partitions", topic, partitions)
    return True


class _Deliveries:
    def __init__(self) -> None:
        self.delivered = 0
        self.failed = 0
        self.first_error = ""
        self.partitions: dict[int, int] = {}

    def __call__(self, err: KafkaError | None, msg: Message | None) -> None:
        if err is not None or msg is None:
            self.failed += 1
            self.first_error = self.first_error or (err.str() if err is not None else "unknown error")
            return
        self.delivered += 1
        p = msg.partition() or 0
        self.partitions[p] = self.partitions.get(p, 0) + 1


def produce_messages(
    bootstrap: str,
    topic: str,
    messages: Iterable[tuple[bytes, bytes]],
    *,
    rate: float = 0.0,
    conf: Mapping[str, ConfValue] | None = None,
    progress: Callable[[int], None] | None = None,
    flush_timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
    headers: Mapping[str, bytes] | None = None,
) -> ProduceReport:
    """Send ``(key, value)`` pairs to ``topic``; see the module docstring.

    ``rate`` is messages/s (0: as fast as the broker takes them); ``conf`` are file
    librdkafka settings (``acks``/``enable.idempotence`` are forced); ``progress`` is
    called with the number of messages sent so far about twice a second and at the end;
    ``headers`` go on every message (:data:`HISTORY_HEADER` for history rows).
    Raises :class:`SourceError` if any message was not delivered.
    """
    deliveries = _Deliveries()
    settings: dict[str, Any] = {
        **PRODUCER_DEFAULTS,
        **librdkafka_config(bootstrap, conf, env=env, where="producer"),
    }
    settings.update(PRODUCER_FORCED, on_delivery=deliveries, logger=client_log)
    try:
        producer = Producer(settings)
    except KafkaException as exc:
        raise SourceError(f"cannot create a Kafka producer: {exc.args[0].str()}") from None
    started = time.monotonic()
    next_report = started + 0.5
    sent = 0
    message_headers: list[tuple[str, str | bytes | None]] | None = list(headers.items()) if headers else None
    for key, value in messages:
        if rate > 0:
            wait = started + sent / rate - time.monotonic()
            if wait > 0.0005:
                producer.poll(wait)
        while True:
            try:
                producer.produce(topic, value, key, headers=message_headers)
                break
            except BufferError:  # local queue full: let deliveries drain it, then retry
                producer.poll(0.05)
            except KafkaException as exc:  # refused at once (e.g. too large): a failed delivery
                deliveries(exc.args[0], None)
                break
        sent += 1
        if not sent % 1000:
            producer.poll(0)
        if progress is not None and time.monotonic() >= next_report:
            progress(sent)
            next_report = time.monotonic() + 0.5
    remaining = producer.flush(flush_timeout)
    if progress is not None:
        progress(sent)
    seconds = time.monotonic() - started
    failed = deliveries.failed + remaining
    first_error = deliveries.first_error or (
        f"{remaining} not acknowledged after {flush_timeout:.0f}s" if remaining else ""
    )
    report = ProduceReport(
        topic,
        sent,
        deliveries.delivered,
        failed,
        seconds,
        dict(sorted(deliveries.partitions.items())),
        first_error,
    )
    if failed:
        raise SourceError(f"{failed} of {sent} messages to {topic!r} were not delivered: {first_error}")
    return report


def history_messages(path: str | Path, spec: HistorySpec | None = None) -> Iterator[tuple[bytes, bytes]]:
    """A history file's trades as generic JSON ticks keyed by symbol (send them with
    ``headers=[HISTORY_HEADER]``). A row that does not decode is sent as it is (key
    ``b""``): the consumer turns it into a dead letter, and a warning here says why."""
    rows, decode = open_history(path, spec)
    src = f"file:{Path(path).name}"
    bad = 0
    for row, raw in rows:
        try:
            ticks = decode(raw, src, row, 0, 0)
        except DataError as exc:
            bad += 1
            if bad <= 5:
                log.warning("%s row %d does not decode (%s); sent as it is", src, row, exc.describe())
            yield b"", raw
            continue
        for t in ticks:
            tick = {"venue": t.venue, "symbol": t.symbol, "price": t.price, "size": t.size, "side": t.side,
                    "trade_id": t.trade_id, "ts_event": t.ts_event}  # fmt: skip
            yield t.symbol.encode(), _enc.encode(tick)
    if bad:
        log.warning("%s: %d rows did not decode and were sent as they are", src, bad)


class _Symbol(msgspec.Struct):
    symbol: str = ""


_symbol_decoder = msgspec.json.Decoder(_Symbol)


def synthetic_messages(cfg: SyntheticConfig, *, live: bool = True) -> Iterator[tuple[bytes, bytes]]:
    """The synthetic feed of ``cfg`` (``cfg.total`` messages, faults included) as generic
    JSON keyed by symbol. ``live``: event times are the wall clock when each chunk of
    messages is generated (so a consumer's clock checks pass); otherwise the generator's
    deterministic times from ``cfg.start_ns``."""
    gens = [
        SyntheticGenerator(
            p, cfg.partitions, cfg.symbols, cfg.rate, cfg.total, venue=cfg.venue, seed=cfg.seed,
            start_ns=cfg.start_ns, duplicate_rate=cfg.duplicate_rate, out_of_order_rate=cfg.out_of_order_rate,
            gap_rate=cfg.gap_rate, malformed_rate=cfg.malformed_rate,
        )
        for p in range(cfg.partitions)
    ]  # fmt: skip
    while gens:
        for gen in list(gens):
            for raw in gen.take(100, now_ns=time.time_ns() if live else None):
                try:
                    key = _symbol_decoder.decode(raw).symbol.encode()
                except msgspec.DecodeError:  # an injected malformed message
                    key = b""
                yield key, raw
            if gen.exhausted:
                gens.remove(gen)


def _find_symbol(doc: Any) -> str:
    """The first ``s``/``symbol``/``product_id`` text in a venue message, depth first."""
    if isinstance(doc, dict):
        for name in _SYMBOL_KEYS:
            value = doc.get(name)
            if isinstance(value, str) and value:
                return value
        doc = list(doc.values())
    if isinstance(doc, list):
        for item in doc:
            found = _find_symbol(item)
            if found:
                return found
    return ""


def venue_sample_messages(paths: Iterable[str | Path]) -> Iterator[tuple[bytes, bytes]]:
    """Recorded venue messages as they are, keyed by the symbol found in each. A file
    holds one JSON message, a JSON array of messages, or one message per line."""
    for raw_path in paths:
        path = Path(raw_path)
        try:
            data = path.read_bytes().strip()
        except OSError as exc:
            raise InputError(f"cannot read venue sample {path}: {exc.strerror or exc}") from None
        try:
            docs = (
                [data]
                if not data.startswith(b"[")
                else [bytes(r) for r in msgspec.json.decode(data, type=list[msgspec.Raw])]
            )
            parsed = [msgspec.json.decode(d) for d in docs]
        except msgspec.DecodeError:
            docs = [line for line in data.splitlines() if line.strip()]
            try:
                parsed = [msgspec.json.decode(d) for d in docs]
            except msgspec.DecodeError as exc:
                raise InputError(
                    f"venue sample {path} is not JSON (one message, an array, or lines): {exc}"
                ) from None
        for raw, doc in zip(docs, parsed, strict=True):
            yield _find_symbol(doc).encode(), raw


class _OrderId(msgspec.Struct):
    order_id: str = ""


_order_id_decoder = msgspec.json.Decoder(_OrderId)


def order_messages(paths: Iterable[str | Path]) -> Iterator[tuple[bytes, bytes]]:
    """Order messages from JSON-lines files (one message per line, ``.gz`` too), keyed by
    ``order_id`` so every message of an order lands in one partition, in file order. A
    line without a readable ``order_id`` is sent as it is with key ``b""`` (the consumer
    turns it into a dead letter)."""
    from ticktape.connectors.files.orders import read_lines

    for raw_path in paths:
        path = Path(raw_path)
        if not path.is_file():
            raise InputError(f"orders file not found: {path}")
        for _, raw in read_lines(path):
            try:
                key = _order_id_decoder.decode(raw).order_id.encode()
            except msgspec.DecodeError:
                key = b""
            yield key, raw
