"""``[outputs.kafka]``: the Kafka outputs' configuration (importable without confluent-kafka,
so a config file can be checked on a machine without the ``kafka`` extra)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec

from ticktape.connectors.kafka.config import check_file_settings, librdkafka_config
from ticktape.schemas.bounds import between
from ticktape.schemas.errors import ConfigError

#: Producer settings the sink starts from; ``producer`` overrides them.
_DEFAULTS: dict[str, str | int | float | bool] = {
    "linger.ms": 5,
    "partitioner": "murmur2_random",  # the Java client's: same key, same partition
    "delivery.report.only.error": True,  # delivered = produced - failed - outstanding
    "log.connection.close": False,  # brokers close idle connections: not worth a log line
}
#: Settings the delivery guarantee depends on, with the values ``producer`` may repeat.
_REQUIRED: dict[str, tuple[object, ...]] = {
    "acks": ("all", "-1", -1),
    "enable.idempotence": (True, "true", "True"),
}


class KafkaOutputConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[outputs.kafka]``: the Kafka outputs.

    * ``enabled`` - write to Kafka at all.
    * ``bootstrap_servers`` - librdkafka ``bootstrap.servers``.
    * ``prices_topic`` / ``candles_topic`` / ``events_topic`` / ``dead_letters_topic`` /
      ``quotes_topic`` - where each output goes (quotes: the top of book of venue feeds);
      an empty string disables that output.
    * ``create_topics`` - create missing topics (``topic_partitions`` partitions each,
      the broker's default replication) when the first sink partition starts.
    * ``partitions`` - Bytewax sink partitions per output, i.e. producers per output.
    * ``on_delivery_error`` - ``"fail"``: a message the broker did not take fails the next
      snapshot (the job restarts from the previous one: at-least-once); ``"log"``: it is
      logged once per kind of error, counted (``ticktape_sink_errors``) and dropped.
      While no broker answers, a snapshot waits for up to librdkafka's
      ``message.timeout.ms`` (default 5 minutes), after which the messages count as failed.
    * ``producer`` - librdkafka settings passed through (e.g. ``"linger.ms" = 20``,
      ``"compression.type" = "zstd"``); secrets come only from ``TICKTAPE_KAFKA_<KEY>``
      environment variables (:mod:`ticktape.connectors.kafka.config`). ``acks`` stays ``all``
      and ``enable.idempotence`` stays true.
    """

    enabled: bool = False
    bootstrap_servers: str = "127.0.0.1:9092"
    prices_topic: str = "ticktape.prices"
    candles_topic: str = "ticktape.candles"
    events_topic: str = "ticktape.events"
    dead_letters_topic: str = "ticktape.deadletters"
    quotes_topic: str = "ticktape.quotes"
    create_topics: bool = True
    topic_partitions: Annotated[int, between(1, 100_000)] = 3
    partitions: Annotated[int, between(1, 4096)] = 4
    on_delivery_error: Literal["fail", "log"] = "fail"
    producer: dict[str, str | int | float | bool] = {}

    def __post_init__(self) -> None:
        # as the source's `consumer`: refused when the file is read (config check/show
        # too), not only when the outputs start
        check_file_settings(self.producer, "outputs.kafka.producer")

    def producer_config(self, env: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The librdkafka settings of every producer: defaults, ``producer``, then the
        ``TICKTAPE_KAFKA_*`` variables of ``env`` (default ``os.environ``)."""
        overrides = {**_DEFAULTS, **self.producer}
        conf = librdkafka_config(self.bootstrap_servers, overrides, env=env, where="outputs.kafka.producer")
        for key, allowed in _REQUIRED.items():
            value = conf.setdefault(key, allowed[0])
            if value not in allowed:
                raise ConfigError(
                    f"outputs.kafka.producer.{key}: expected {allowed[0]!r} (the Kafka sink is an "
                    f"idempotent producer), got {value!r}"
                )
        return conf
