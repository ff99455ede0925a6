"""``ticktape record``: venue WebSockets -> raw frames with their receive times in Kafka.

Each connection of the ``[source.websocket]`` feeds (:func:`~ticktape.connectors.venues.source.plan_connections`)
runs as for the direct source; every frame it delivers (venue frames and the handler's
control frames, REST snapshots included) is produced to one topic **as it arrived**:

* value: the frame's bytes, unchanged;
* key: the connection (``ws:binance/0``), so a connection's frames stay in order in one
  partition;
* timestamp: the receive time (ms); header ``ts_recv``: the receive time in ns (8 bytes,
  big-endian), plus ``session`` and ``seq`` (the frame's coordinates at the socket).

The recorder keeps the same local books as the job (:class:`~ticktape.schemas.feed.FeedBatchDecoder`)
only to ask for resyncs (REST snapshots, resubscriptions), so the log holds everything a
replay needs to rebuild them: the job on ``[source] kind = "kafka"`` with ``format =
"<venue>-ws"`` produces what the direct source produces from the same frames.

Delivery: an idempotent producer (``acks=all``, ``enable.idempotence``): no duplicates or
reordering within a run; a failed delivery stops the recorder with an error. Frames in
flight when the recorder dies are lost (at-most-once, like the direct source); the next
session's ``FeedConnected`` frame, trade-id gaps and book resyncs reveal it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from ticktape.connectors.kafka.config import ConfValue, client_log, librdkafka_config
from ticktape.connectors.kafka.produce import PRODUCER_DEFAULTS, PRODUCER_FORCED
from ticktape.connectors.venues.config import WebSocketSourceConfig
from ticktape.connectors.venues.protocols import FEED_FORMAT
from ticktape.connectors.venues.rest import SnapshotClient
from ticktape.connectors.venues.runner import FeedRunner
from ticktape.connectors.venues.source import plan_connections
from ticktape.infra.observability.logs import get_logger
from ticktape.schemas.books.keeper import KeeperSettings
from ticktape.schemas.errors import ConfigError, MissingDependencyError, SourceError
from ticktape.schemas.feed import FeedBatchDecoder, make_batch_decoder
from ticktape.schemas.validation import ValidationRules

try:
    from confluent_kafka import KafkaError, KafkaException, Message, Producer
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingDependencyError("confluent-kafka", "kafka") from exc

log = get_logger("record")


class RecordReport(msgspec.Struct):
    """What a recording did: frames produced and acknowledged per connection, failures."""

    topic: str
    format: str
    frames: dict[str, int]
    delivered: int
    failed: int
    seconds: float
    first_error: str = ""


def record_format(cfg: WebSocketSourceConfig) -> str:
    """The feed format of the topic (one venue per topic)."""
    venues = sorted({f.venue for f in cfg.feeds})
    if len(venues) != 1:
        raise ConfigError(
            f"record: one venue per topic (the topic's format is per venue), got {', '.join(venues) or 'none'}: "
            "run one recorder per venue"
        )
    return FEED_FORMAT[venues[0]]


class Recorder:
    """Record the feeds of ``cfg`` to ``topic`` (see the module docstring)."""

    def __init__(
        self,
        cfg: WebSocketSourceConfig,
        bootstrap: str,
        topic: str,
        *,
        conf: Mapping[str, ConfValue] | None = None,
        keeper_settings: KeeperSettings | None = None,
        rest: SnapshotClient | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.cfg = cfg
        self.topic = topic
        self.format = record_format(cfg)
        self.keeper_settings = keeper_settings
        self.rest = rest
        self.plan = plan_connections(cfg)
        settings: dict[str, Any] = {
            **PRODUCER_DEFAULTS,
            **librdkafka_config(bootstrap, conf, env=env, where="producer"),
        }
        settings.update(PRODUCER_FORCED, on_delivery=self._delivered, logger=client_log)
        try:
            self.producer = Producer(settings)
        except KafkaException as exc:
            raise SourceError(f"cannot create a Kafka producer: {exc.args[0].str()}") from None
        self.delivered = 0
        self.failed = 0
        self.first_error = ""
        self.frames: dict[str, int] = dict.fromkeys(self.plan, 0)
        self.runners: dict[str, FeedRunner] = {}
        self.decoders: dict[str, FeedBatchDecoder] = {}

    def _delivered(self, err: KafkaError | None, msg: Message | None) -> None:
        if err is not None:
            self.failed += 1
            self.first_error = self.first_error or err.str()
        else:
            self.delivered += 1

    def run(
        self,
        *,
        stop: threading.Event | None = None,
        duration: float | None = None,
        progress: Callable[[RecordReport], None] | None = None,
    ) -> RecordReport:
        """Record until ``stop`` is set or ``duration`` seconds passed; then flush."""
        stop = stop or threading.Event()
        started = time.monotonic()
        rules = ValidationRules()
        for name, (protocol, streams) in self.plan.items():
            decoder = make_batch_decoder(
                self.format, name, rules, check_clock=False, keeper_settings=self.keeper_settings
            )
            assert isinstance(decoder, FeedBatchDecoder)
            self.decoders[name] = decoder
            self.runners[name] = FeedRunner(name, protocol, streams, rest=self.rest).start()
        next_report = started + 1.0
        try:
            while not stop.is_set() and (duration is None or time.monotonic() - started < duration):
                got = 0
                for name, runner in self.runners.items():
                    got += self._pump(name, runner)
                    if runner.failed is not None:
                        raise SourceError(f"{name}: the feed connection stopped: {runner.failed!r}")
                if self.failed:
                    raise SourceError(
                        f"{self.failed} frames were not delivered to {self.topic!r}: {self.first_error}"
                    )
                self.producer.poll(0 if got else 0.005)
                if progress is not None and time.monotonic() >= next_report:
                    progress(self.report(time.monotonic() - started))
                    next_report = time.monotonic() + 1.0
        finally:
            for runner in self.runners.values():
                runner.stop()
            for name, runner in self.runners.items():
                while self._pump(name, runner):
                    pass
            remaining = self.producer.flush(60)
            if remaining:
                self.failed += remaining
                self.first_error = self.first_error or f"{remaining} not acknowledged after 60s"
        report = self.report(time.monotonic() - started)
        if self.failed:
            raise SourceError(
                f"{self.failed} frames were not delivered to {self.topic!r}: {self.first_error}"
            )
        return report

    def _pump(self, name: str, runner: FeedRunner) -> int:
        frames = runner.drain(1000)
        if not frames:
            return 0
        key = name.encode()
        produce = self.producer.produce
        for f in frames:
            headers: list[tuple[str, str | bytes | None]] = [
                ("ts_recv", f.ts_recv.to_bytes(8, "big")), ("session", str(f.session).encode()),
                ("seq", str(f.seq).encode()),
            ]  # fmt: skip
            while True:
                try:
                    produce(self.topic, f.raw, key, timestamp=f.ts_recv // 1_000_000, headers=headers)
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    self.producer.poll(0.05)
        self.frames[name] += len(frames)
        decoder = self.decoders[name]
        decoder.decode([(0, f.raw, f.ts_recv, 0) for f in frames])  # the books, for their resyncs
        for _venue, symbol, reason in decoder.keeper.take_resyncs():
            runner.request_resync(symbol, reason)
        return len(frames)

    def report(self, seconds: float) -> RecordReport:
        return RecordReport(self.topic, self.format, dict(self.frames), self.delivered, self.failed, seconds,
                            self.first_error)  # fmt: skip
