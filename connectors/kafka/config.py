"""Kafka client configuration: librdkafka settings shared by the Kafka source and sink
(file settings, environment secrets, a redacted view for logs), the source's config
section :class:`KafkaSourceConfig` and the consumer callbacks :class:`ClientEvents`.

Settings come from three places, later ones winning:

1. ``bootstrap`` (the config's ``bootstrap_servers``);
2. ``overrides`` from the config file (``[source.kafka] consumer = {...}``, the sink's
   equivalent), passed to librdkafka verbatim;
3. the environment: ``TICKTAPE_KAFKA_<KEY>=value`` sets librdkafka key ``<key>``
   lowercased with ``_`` turned into ``.`` (``TICKTAPE_KAFKA_SASL_PASSWORD`` ->
   ``sasl.password``, ``TICKTAPE_KAFKA_SECURITY_PROTOCOL`` -> ``security.protocol``).

Secrets (passwords, private keys, client secrets, keytabs) are refused in the file with a
:class:`~ticktape.schemas.errors.ConfigError` that names the variable to set instead, so they only
ever live in the environment. Nothing here logs: use :func:`redacted` before printing a
configuration. ``TICKTAPE_KAFKA_BOOTSTRAP`` is not a librdkafka key: it is how
``ticktape dev up`` announces the local broker, and is left to the CLI.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import msgspec

from ticktape.infra.observability.logs import get_logger
from ticktape.schemas.bounds import EpochNs
from ticktape.schemas.durations import PositiveDuration
from ticktape.schemas.errors import ConfigError
from ticktape.schemas.feed import format_names

if TYPE_CHECKING:  # importable without the `kafka` extra: ticktape.flows.config uses the config
    from confluent_kafka import KafkaError, TopicPartition

ConfValue: TypeAlias = str | int | float | bool
#: The header ``ticktape produce --file`` puts on history rows: the message was produced
#: long after its trade, so its broker timestamp is no receive clock for it. The source
#: then skips the future/past rule for that message, as it does for the history file
#: itself; messages without it (live feeds) keep the rule against the broker time.
HISTORY_HEADER = ("ticktape-origin", b"history")
ENV_PREFIX = "TICKTAPE_KAFKA_"
#: Variables with the prefix that are not librdkafka keys.
RESERVED_ENV = frozenset({"TICKTAPE_KAFKA_BOOTSTRAP"})
#: librdkafka keys that hold secrets (plus any key matching :data:`SECRET_MARKERS`).
SECRET_KEYS = frozenset({
    "sasl.password",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.config",
    "sasl.oauthbearer.assertion.private.key.pem",
    "sasl.oauthbearer.assertion.private.key.passphrase",
    "sasl.kerberos.keytab",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl.keystore.password",
    "ssl.truststore.password",
})  # fmt: skip
SECRET_MARKERS = ("password", "secret", "passphrase", "private.key", "keytab")
MASK = "***"
#: Consumer settings the source always uses (offsets live in recovery state).
FORCED: dict[str, ConfValue] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "enable.partition.eof": True,
}
#: Consumer defaults file settings may override. ``fetch.queue.backoff.ms`` at librdkafka's
#: default (1000 ms) stalls consumers on Tansu; ``fetch.wait.max.ms`` at its default
#: (500 ms) adds ~50 ms of latency per message there (measured; Apache Kafka answers a
#: fetch as soon as data arrives, ~2 ms either way), 100 ms gives ~2 ms;
#: ``earliest`` makes an offset lost to retention resume at the oldest message (the
#: lost range is reported as a gap).
DEFAULTS: dict[str, ConfValue] = {
    "fetch.queue.backoff.ms": 10,
    "fetch.wait.max.ms": 100,
    "auto.offset.reset": "earliest",
}
log = get_logger("kafka")
#: librdkafka's own log lines (syslog levels mapped). WARNING by default: at INFO it
#: reports every closed idle connection; ``[log] levels = {"kafka.client" = "DEBUG"}``.
client_log = get_logger("kafka.client")
client_log.setLevel(logging.WARNING)


def is_secret(key: str) -> bool:
    """Whether librdkafka key ``key`` holds a secret."""
    k = key.strip().lower()
    return k in SECRET_KEYS or any(marker in k for marker in SECRET_MARKERS)


def env_name(key: str) -> str:
    """The environment variable that sets librdkafka key ``key``."""
    return ENV_PREFIX + key.strip().upper().replace(".", "_")


def env_settings(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """librdkafka settings from ``TICKTAPE_KAFKA_*`` variables of ``env`` (default:
    ``os.environ``)."""
    source = os.environ if env is None else env
    out: dict[str, str] = {}
    for name, value in source.items():
        if not name.startswith(ENV_PREFIX) or name in RESERVED_ENV:
            continue
        key = name[len(ENV_PREFIX) :].lower().replace("_", ".")
        if key:
            out[key] = value
    return out


def check_file_settings(overrides: Mapping[str, ConfValue], where: str = "consumer") -> None:
    """Refuse secrets in file settings; the message names the variable to use instead."""
    for key in overrides:
        if is_secret(key):
            raise ConfigError(
                f"{where}.{key}: secrets only from the environment: set {env_name(key)} "
                "(and remove the key from the configuration file)"
            )


def librdkafka_config(
    bootstrap: str,
    overrides: Mapping[str, ConfValue] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    where: str = "consumer",
) -> dict[str, Any]:
    """The librdkafka configuration: ``bootstrap.servers``, then the file ``overrides``
    (secrets refused, see the module docstring), then ``TICKTAPE_KAFKA_*`` from ``env``
    (default ``os.environ``). Values are passed verbatim (librdkafka validates them)."""
    settings = dict(overrides or {})
    check_file_settings(settings, where)
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap}
    conf.update(settings)
    conf.update(env_settings(env))
    return conf


def redacted(conf: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``conf`` safe to log: secret values masked, callbacks and loggers named
    by type instead of shown."""
    out: dict[str, Any] = {}
    for key, value in conf.items():
        if is_secret(key):
            out[key] = MASK
        elif callable(value) or not isinstance(value, str | int | float | bool):
            out[key] = f"<{type(value).__name__}>"
        else:
            out[key] = value
    return out


class KafkaSourceConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[source.kafka]``: which topic, how to decode it, and where to start and stop.

    - ``bootstrap_servers``: librdkafka ``bootstrap.servers`` (``host:port,...``).
    - ``topic``: the topic to read; every partition of it is read.
    - ``format``: the messages' wire format, a name in ``ticktape.schemas.decoding.FORMATS``
      (``generic``, ``binance``, ``coinbase``, ``kraken``, ``bybit``, ...), or a feed
      format of ``ticktape.schemas.feed`` (``binance-ws``, ...: frames that ``ticktape
      record`` wrote, with their receive time in the ``ts_recv`` header).
    - ``start``: where a run without recovery state starts, per partition:
      ``beginning`` (oldest message), ``end`` (only new messages), ``offsets``
      (``start_offsets``), ``time`` (first message whose broker timestamp is at or
      after ``start_time_ns``), ``committed`` (the offsets last committed to ``group``;
      partitions without one start at the beginning). Recovery state always wins.
    - ``start_offsets``: partition -> first offset to read (``start = "offsets"``);
      missing partitions start at the beginning. TOML keys are strings: ``{"0" = 42}``.
    - ``start_time_ns``: ns since the epoch (``start = "time"``).
    - ``end``: where each partition stops: ``none`` (never: a live run), ``launch``
      (the partition's true end when the source starts; in a cluster resolve it once
      with :func:`end_offsets_at` and pass ``offsets``), ``offsets`` (``end_offsets``),
      ``time`` (before the first message with broker timestamp >= ``end_time_ns``).
    - ``end_offsets``: partition -> first offset NOT read; missing partitions have no
      bound (so the run only ends if every partition is listed).
    - ``end_time_ns``: ns since the epoch (``end = "time"``). If no message that late
      exists yet, a partition ends when it is read to its end after that time.
    - ``group``: consumer group to which the position is committed after each snapshot
      (monitoring only; recovery state stays the source of truth); also what
      ``start = "committed"`` reads. Empty: nothing is committed.
    - ``poll_timeout``: the longest an idle partition sleeps between polls (an upper
      bound on the latency added when a quiet partition gets a message).
    - ``consumer``: librdkafka settings passed through verbatim (``fetch.max.bytes``,
      ``security.protocol``, ...). Secrets are refused here: set them in the environment
      as ``TICKTAPE_KAFKA_<KEY>`` (e.g. ``TICKTAPE_KAFKA_SASL_PASSWORD``).
    """

    bootstrap_servers: str = "127.0.0.1:9092"
    topic: str = "ticks"
    format: str = "generic"
    start: Literal["beginning", "end", "offsets", "time", "committed"] = "beginning"
    start_offsets: dict[int | str, int] = {}
    start_time_ns: EpochNs = 0
    end: Literal["none", "launch", "offsets", "time"] = "none"
    end_offsets: dict[int | str, int] = {}
    end_time_ns: EpochNs = 0
    group: str = ""
    poll_timeout: PositiveDuration = PositiveDuration.parse("100ms")
    consumer: dict[str, ConfValue] = {}

    def __post_init__(self) -> None:
        check_file_settings(self.consumer, "consumer")  # ConfigError naming the env var
        if self.format not in format_names():
            raise ValueError(f"format: expected one of {', '.join(format_names())}, got {self.format!r}")
        for key in (*FORCED, "group.id", "bootstrap.servers"):
            if key in self.consumer:
                hint = {"group.id": "use `group`", "bootstrap.servers": "use `bootstrap_servers`"}
                raise ValueError(f"consumer.{key}: {hint.get(key, 'the source manages this setting')}")
        if self.start == "committed" and not self.group:
            raise ValueError('start: "committed" needs `group`')
        if self.end == "time" and self.end_time_ns <= 0:
            raise ValueError('end_time_ns: expected ns since the epoch > 0 with end = "time"')
        for name in ("start_offsets", "end_offsets"):
            msgspec.structs.force_setattr(self, name, _partition_map(name, getattr(self, name)))


def _partition_map(name: str, raw: dict[int | str, int]) -> dict[int | str, int]:
    out: dict[int | str, int] = {}
    for key, offset in raw.items():
        try:
            p = int(key)
        except ValueError:
            raise ValueError(f"{name}: expected partition numbers as keys, got {key!r}") from None
        if p < 0 or offset < 0:
            raise ValueError(f"{name}: expected non-negative partition and offset, got {key!r} = {offset}")
        out[p] = offset
    return out


class ClientEvents:
    """librdkafka callbacks of one partition's consumer (served inside ``consume()``):
    errors are counted and logged (at most once per code every 10 s), fatal ones kept
    for the partition to raise."""

    def __init__(self, src: str) -> None:
        self.src = src
        self.errors = 0
        self.fatal: str | None = None
        self._logged: dict[int, float] = {}

    def on_error(self, err: KafkaError) -> None:
        self.errors += 1
        if err.fatal():
            self.fatal = err.str()
        now = time.monotonic()
        if now - self._logged.get(err.code(), -1e9) >= 10.0:
            self._logged[err.code()] = now
            log.warning("%s: Kafka consumer error (retrying): %s", self.src, err.str())

    def on_commit(self, err: KafkaError | None, _partitions: list[TopicPartition]) -> None:
        if err is not None:  # monitoring only: the run goes on
            log.warning("%s: committing the position to the group failed: %s", self.src, err.str())
