"""Kafka API servers: the :class:`KafkaBroker` base and :class:`ApacheKafka` (KRaft, one node).

:class:`ApacheKafka` runs the Apache Kafka broker from Maven Central
(``org.apache.kafka:kafka_2.13``, pinned in ``maven/kafka/pom.xml``, fetched by
:mod:`ticktape.infra.devstack.jars`) as one JVM that is both broker and KRaft controller:
no ZooKeeper. Before its first start the data folder is formatted
(``kafka.tools.StorageTool format``, the ``kafka-storage.sh`` of a distribution, with a
fresh cluster id); a restart keeps the data. The client listener is the service port, the
controller listener a second free port; both on 127.0.0.1 only, and the broker advertises
``127.0.0.1:<port>``. Internal topics are small (one replica, few partitions) so that
the first consumer group or transaction of a test run is ready in a moment.

:class:`~ticktape.infra.devstack.services.TansuBroker` is the light alternative (no JVM).
Both are ready once a metadata request lists a broker.
"""

from __future__ import annotations

import base64
import logging
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar, Self

from ticktape.infra.devstack import jars, ports
from ticktape.infra.devstack.base import Service
from ticktape.infra.devstack.errors import ServiceError, tail
from ticktape.schemas.errors import MissingDependencyError

#: JVM options of the broker (a 2-core machine shared with the tests).
KAFKA_JVM_OPTIONS: tuple[str, ...] = (
    "-Xms128m", "-Xmx512m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
    "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true",
    "-Djava.net.preferIPv4Stack=true",
)  # fmt: skip
#: JVM options of the short-lived format tool: start fast, run briefly.
_TOOL_JVM_OPTIONS = ("-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xshare:auto")
_LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
"""


class KafkaBroker(Service):
    """A Kafka API endpoint on ``127.0.0.1:<port>``: clients use :attr:`bootstrap_servers`."""

    kind = "kafka"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._admin: Any = None
        self._admin_port: int | None = None

    @property
    def url(self) -> str:
        return self.address

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:<port>`` for librdkafka's ``bootstrap.servers``."""
        return self.address

    def env(self) -> dict[str, str]:
        return {"TICKTAPE_KAFKA_BOOTSTRAP": self.address}

    def probe(self) -> None:
        """Ready when a metadata request answers and lists at least one broker."""
        if not ports.port_accepts(self.port):
            raise ConnectionRefusedError(f"nothing listens on {self.address}")
        try:
            from confluent_kafka.admin import AdminClient
        except ImportError as exc:
            raise MissingDependencyError("confluent-kafka", "kafka") from exc
        if self._admin is None or self._admin_port != self.port:
            quiet = logging.getLogger("ticktape.infra.kafka-probe")
            quiet.addHandler(logging.NullHandler())
            quiet.propagate = False
            conf: dict[str, Any] = {"bootstrap.servers": self.address, "logger": quiet}
            self._admin = AdminClient(conf)
            self._admin_port = self.port
        metadata = self._admin.list_topics(timeout=2.0)
        if not metadata.brokers:
            raise ConnectionError(f"{self.address} answers but lists no broker yet")

    def stop(self, grace: float = 5.0) -> None:
        self._admin = None
        super().stop(grace)


def cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (22 chars),
    never starting with ``-`` (the format tool would take it for an option; Kafka's own
    ``Uuid.randomUuid`` draws again in that case too)."""
    while True:
        ident = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not ident.startswith("-"):
            return ident


class ApacheKafka(jars.JvmService, KafkaBroker):
    """Apache Kafka 4.x in KRaft mode, one node (broker and controller), data on disk.

    Stopped with SIGTERM (a controlled shutdown, a few seconds), SIGKILL after the grace.
    ``controller_port`` is the KRaft controller listener (kept across restarts).
    """

    server = "kafka"
    #: Partitions of the internal ``__consumer_offsets`` / ``__transaction_state`` topics.
    internal_partitions: ClassVar[int] = 1

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.controller_port: int | None = None
        #: Seconds the last format of the data folder took (None: not formatted by this object).
        self.format_seconds: float | None = None

    @property
    def data_dir(self) -> Path:
        """The broker's ``log.dirs`` (also the KRaft metadata log)."""
        return self.work_dir / "data"

    @property
    def _log4j(self) -> str:
        return f"-Dlog4j2.configurationFile={self.work_dir / 'log4j2.properties'}"

    def argv(self, port: int) -> list[str]:
        return self.java_argv(
            (*KAFKA_JVM_OPTIONS, self._log4j), "kafka.Kafka", str(self.work_dir / "server.properties")
        )

    def properties(self, port: int, controller_port: int) -> str:
        """``server.properties`` of the node (loopback listeners, small internal topics)."""
        n = self.internal_partitions
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{ports.LOOPBACK}:{controller_port}",
            "listeners": f"PLAINTEXT://{ports.LOOPBACK}:{port},CONTROLLER://{ports.LOOPBACK}:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://{ports.LOOPBACK}:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "default.replication.factor": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": str(n),
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": str(n),
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "share.coordinator.state.topic.num.partitions": str(n),
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "1",
            "log.retention.check.interval.ms": "60000",
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def prepare(self, port: int) -> None:
        super().prepare(port)
        if (
            self.controller_port is None
            or self.controller_port == port
            or not ports.port_is_free(self.controller_port)
        ):
            self.controller_port = ports.free_port()
        (self.work_dir / "log4j2.properties").write_text(_LOG4J2)
        (self.work_dir / "server.properties").write_text(self.properties(port, self.controller_port))
        if not (self.data_dir / "meta.properties").exists():
            self._format()

    def _format(self) -> None:
        """``kafka-storage.sh format`` equivalent: a new cluster id, metadata version of the jar."""
        argv = self.java_argv(
            (*_TOOL_JVM_OPTIONS, self._log4j), "kafka.tools.StorageTool", "format",
            "-t", cluster_id(), "-c", str(self.work_dir / "server.properties"),
        )  # fmt: skip
        t0 = time.monotonic()
        with self.log_path.open("ab") as log:
            log.write(f"\n=== format: {' '.join(argv)}\n".encode())
            log.flush()
            done = subprocess.run(  # noqa: S603 - argv built above
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.work_dir, env=self.child_env(), timeout=120, check=False,
            )  # fmt: skip
        if done.returncode != 0:
            raise ServiceError(
                self.name,
                f"formatting {self.data_dir} failed (exit {done.returncode})\n--- last lines of "
                f"{self.log_path} ---\n{tail(self.log_path)}",
            )
        self.format_seconds = time.monotonic() - t0

    def record(self) -> dict[str, Any]:
        return {**super().record(), "controller_port": self.controller_port}

    def attach(self, record: dict[str, Any]) -> Self:
        super().attach(record)
        port = record.get("controller_port")
        self.controller_port = int(port) if port is not None else None
        return self
