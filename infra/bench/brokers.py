"""The Kafka broker of the Kafka benches (``kafka``, ``quix``) and the topic they read.

``broker="kafka"`` (the default) is Apache Kafka 4.x in KRaft mode
(:class:`~ticktape.infra.devstack.kafka.ApacheKafka`, the jars ``ticktape dev fetch``
brings from Maven Central; Java 17+), the broker production runs on and the only one
Quix Streams works with (it asks ``describe_configs``, which Tansu does not answer).
``broker="tansu"`` is the light Kafka API without a JVM, kept so the numbers measured
on it before can be compared. Either runs as a local process on 127.0.0.1 with its data
in a temporary folder, for the duration of one scenario.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec

from ticktape.infra.bench.common import synthetic_messages
from ticktape.infra.devstack.kafka import KafkaBroker

BROKERS = ("kafka", "tansu")
_symbol_of = msgspec.json.Decoder(dict[str, object])


@contextlib.contextmanager
def bench_broker(kind: str = "kafka") -> Iterator[KafkaBroker]:
    """A started broker of ``kind`` (see :data:`BROKERS`), stopped on exit."""
    if kind not in BROKERS:
        raise ValueError(f"unknown broker {kind!r}; known: {', '.join(BROKERS)}")
    with tempfile.TemporaryDirectory(prefix="ticktape-bench-broker-") as tmp:
        broker: KafkaBroker
        if kind == "kafka":
            from ticktape.infra.devstack.kafka import ApacheKafka

            broker = ApacheKafka(Path(tmp))
        else:
            from ticktape.infra.devstack.services import TansuBroker

            broker = TansuBroker(Path(tmp))
        with broker:
            yield broker


def broker_version(broker: KafkaBroker) -> str:
    """What ran: ``apache-kafka <version>`` or ``tansu``."""
    version = getattr(broker, "version", None)
    return f"apache-kafka {version}" if version else broker.kind


def recent_messages(ticks: int, symbols: int, rate: float) -> list[bytes]:
    """``ticks`` synthetic trades at ``rate`` per second of event time, ending about ten
    seconds before now (the job judges event time against the broker's clock)."""
    start = time.time_ns() - 10_000_000_000 - int(ticks * 1e9 / rate)
    return synthetic_messages(ticks, symbols, start_ns=start, rate=rate)["bench/0"]


def fill_topic(servers: str, topic: str, partitions: int, raw: list[bytes]) -> int:
    """Create ``topic`` and produce ``raw`` keyed by symbol (a symbol stays in one
    partition, in order); returns the number of messages delivered."""
    from ticktape.connectors.kafka.produce import ensure_topic, produce_messages

    ensure_topic(servers, topic, partitions, {})
    msgs = [(str(_symbol_of.decode(m)["symbol"]).encode(), m) for m in raw]
    return produce_messages(servers, topic, msgs).delivered
