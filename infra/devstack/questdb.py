"""QuestDB: the server jar from Maven Central run as a local process on loopback.

``org.questdb:questdb`` (pinned in ``maven/questdb/pom.xml``, fetched by
:mod:`ticktape.infra.devstack.jars`) is started as ``java io.questdb.ServerMain -d <root>``
with a generated ``<root>/conf/server.conf``: HTTP (SQL ``/exec``, ILP over HTTP, the web
console) on the service port, the PostgreSQL wire and ILP over TCP on two more free
ports, all bound to 127.0.0.1; UDP ILP, the health server and telemetry off. The data
stays under ``<root>/db`` across restarts (a restart keeps the ports). Clients point at it
with ``QDB_CLIENT_CONF`` (ILP over HTTP) and ``TICKTAPE_QUESTDB_PG`` (a
``postgresql://admin@127.0.0.1:<port>/qdb`` URL; the password is QuestDB's default,
``quest``).
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any, ClassVar, Self

from ticktape.infra.devstack import jars, ports
from ticktape.infra.devstack.errors import ServiceError
from ticktape.infra.devstack.http import http_request

#: JVM options of the server (QuestDB keeps its data off-heap; the heap stays small).
QUESTDB_JVM_OPTIONS: tuple[str, ...] = (
    "-Xms128m", "-Xmx512m", "-XX:+UseParallelGC", "-Djava.awt.headless=true",
)  # fmt: skip
PG_USER = "admin"
PG_PASSWORD = "quest"  # noqa: S105 - QuestDB's well-known default; this server listens on 127.0.0.1 only
PG_DATABASE = "qdb"


def taken_port(port: int | None) -> int:
    """``port``, chosen by :meth:`QuestDBServer.prepare` (never None there)."""
    if port is None:
        raise ServiceError("questdb", "a port was not chosen")
    return port


class QuestDBServer(jars.JvmService):
    """QuestDB on ``127.0.0.1``: HTTP on :attr:`port`, PG wire on :attr:`pg_port`, ILP/TCP
    on :attr:`ilp_port`. Stopped with SIGTERM (QuestDB closes its tables), SIGKILL after
    the grace period."""

    kind = "questdb"
    server = "questdb"
    #: Worker threads of the shared pools (a 2-core machine).
    workers: ClassVar[int] = 2

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pg_port: int | None = None
        self.ilp_port: int | None = None

    @property
    def root(self) -> Path:
        """QuestDB's root folder (``conf/``, ``db/``, ``public/``)."""
        return self.work_dir / "root"

    def argv(self, port: int) -> list[str]:
        return self.java_argv(QUESTDB_JVM_OPTIONS, "io.questdb.ServerMain", "-d", str(self.root))

    def server_conf(self, port: int, pg_port: int, ilp_port: int) -> str:
        """``server.conf``: every listener on loopback, nothing that phones home."""
        lo, n = ports.LOOPBACK, self.workers
        settings = {
            "http.bind.to": f"{lo}:{port}",
            "http.min.enabled": "false",
            "pg.net.bind.to": f"{lo}:{pg_port}",
            "line.tcp.net.bind.to": f"{lo}:{ilp_port}",
            "line.udp.enabled": "false",
            "telemetry.enabled": "false",
            "shared.worker.count": str(n),
            "http.worker.count": "1",
            "pg.worker.count": "1",
            "line.tcp.io.worker.count": "1",
            "line.tcp.writer.worker.count": "1",
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def prepare(self, port: int) -> None:
        super().prepare(port)
        taken = {port}
        for attr in ("pg_port", "ilp_port"):
            current = getattr(self, attr)
            if current is None or current in taken or not ports.port_is_free(current):
                current = ports.free_port()
                while current in taken:
                    current = ports.free_port()
                setattr(self, attr, current)
            taken.add(current)
        conf = self.root / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        (conf / "server.conf").write_text(
            self.server_conf(port, taken_port(self.pg_port), taken_port(self.ilp_port))
        )

    # -- client addresses ----------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def http_url(self) -> str:
        """``http://127.0.0.1:<port>``: SQL ``/exec``, ILP ``/write``, the web console."""
        return self.url

    @property
    def client_conf(self) -> str:
        """The QuestDB client conf string for ILP over HTTP (``QDB_CLIENT_CONF``)."""
        return f"http::addr={self.address};"

    @property
    def pg_address(self) -> str:
        """``127.0.0.1:<pg port>``."""
        if self.pg_port is None:
            raise ServiceError(self.name, "has no PG wire port yet: call start() first")
        return f"{ports.LOOPBACK}:{self.pg_port}"

    @property
    def pg_url(self) -> str:
        """``postgresql://admin@127.0.0.1:<pg port>/qdb`` (password: QuestDB's default)."""
        return f"postgresql://{PG_USER}@{self.pg_address}/{PG_DATABASE}"

    def pg_connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect`` (user, password, host, port, dbname)."""
        return {
            "host": ports.LOOPBACK, "port": self.pg_port, "user": PG_USER,
            "password": PG_PASSWORD, "dbname": PG_DATABASE,
        }  # fmt: skip

    def env(self) -> dict[str, str]:
        return {"QDB_CLIENT_CONF": self.client_conf, "TICKTAPE_QUESTDB_PG": self.pg_url}

    # -- readiness and SQL ---------------------------------------------------------------

    def probe(self) -> None:
        """Ready when ``SELECT 1`` answers over HTTP and the PG wire port accepts."""
        self.sql("SELECT 1", timeout=2.0)
        if self.pg_port is None or not ports.port_accepts(self.pg_port):
            raise ConnectionRefusedError(f"PG wire not listening on {self.pg_port}")

    def sql(self, query: str, *, timeout: float = 30.0) -> dict[str, Any]:
        """Run ``query`` over HTTP ``/exec``; QuestDB's JSON answer (an error raises)."""
        url = f"{self.url}/exec?" + urllib.parse.urlencode({"query": query})
        status, body = http_request(url, timeout=timeout)
        try:
            doc: dict[str, Any] = json.loads(body or b"{}")
        except ValueError:
            doc = {"error": body[:300].decode("utf-8", "replace")}
        if status != 200 or "error" in doc:
            raise ServiceError(self.name, f"`{query[:200]}`: HTTP {status}: {doc.get('error', doc)}")
        return doc

    # -- persistence ---------------------------------------------------------------------

    def record(self) -> dict[str, Any]:
        return {**super().record(), "pg_port": self.pg_port, "ilp_port": self.ilp_port}

    def attach(self, record: dict[str, Any]) -> Self:
        super().attach(record)
        for attr in ("pg_port", "ilp_port"):
            value = record.get(attr)
            setattr(self, attr, int(value) if value is not None else None)
        return self
