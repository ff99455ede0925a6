"""PostgreSQL as a local service: Debian's ``postgresql`` server in a throwaway cluster.

``prepare`` runs ``initdb`` into a fresh directory (trust authentication for the
``ticktape`` role, ``C`` locale, no fsync: test data only), and the server runs in the
foreground (``postgres -D``) on ``127.0.0.1:<port>`` with Unix sockets off, so nothing
listens anywhere else. PostgreSQL refuses to run as root: as root both programs run as
the ``postgres`` account (created by the Debian package), else ``nobody``, through
``runuser``; the cluster then lives in a directory of its own under the system temp dir
(owned by that account: the state dir may not be readable by it). Stopped with SIGINT
(fast shutdown); the cluster directory is removed on stop.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ticktape.infra.devstack import ports
from ticktape.infra.devstack.base import Service
from ticktape.infra.devstack.errors import BinaryNotFoundError, ServiceError
from ticktape.infra.devstack.process import find_program

PG_HINT = "install it with `apt-get install postgresql` (or run infra/install-system-deps.sh)"
ROLE = "ticktape"


def pg_program(name: str) -> str | None:
    """``name`` (``initdb``, ``postgres``) from PATH or the newest /usr/lib/postgresql/*/bin."""
    found = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    return found[-1] if found else find_program(name)


def _run_as() -> tuple[list[str], int | None, int | None]:
    """(argv prefix, uid, gid) to run the server as a non-root account when we are root."""
    if os.geteuid() != 0:
        return [], None, None
    for account in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(account)
        except KeyError:
            continue
        runuser = find_program("runuser")
        if runuser is None:
            raise BinaryNotFoundError("postgres", "runuser", "install util-linux")
        return [runuser, "-u", account, "--"], entry.pw_uid, entry.pw_gid
    raise ServiceError(
        "postgres", "running as root and no `postgres` or `nobody` account to run the server as"
    )


class PostgresServer(Service):
    """A PostgreSQL server; ``url`` is ``postgresql://ticktape@127.0.0.1:<port>/postgres``."""

    kind = "postgres"
    ready_timeout = 60.0
    stop_signal = signal.SIGINT

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.pgdata: Path | None = None

    def _binary(self, name: str) -> str:
        found = pg_program(name)
        if found is None:
            raise BinaryNotFoundError(self.name, name, PG_HINT)
        return found

    def prepare(self, port: int) -> None:
        super().prepare(port)
        if self.pgdata is not None and (self.pgdata / "PG_VERSION").is_file():
            return  # initialised by _launch already
        prefix, uid, gid = _run_as()
        initdb = self._binary("initdb")
        pgdata = Path(tempfile.mkdtemp(prefix="ticktape-pg-"))
        if uid is not None and gid is not None:
            os.chown(pgdata, uid, gid)
        cmd = [
            *prefix,
            initdb,
            "-D",
            str(pgdata),
            "-U",
            ROLE,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]
        done = subprocess.run(cmd, cwd=pgdata, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
        if done.returncode != 0:
            shutil.rmtree(pgdata, ignore_errors=True)
            raise ServiceError(
                self.name, f"initdb failed ({done.returncode}): {(done.stderr or done.stdout)[-600:]}"
            )
        self.pgdata = pgdata

    def argv(self, port: int) -> list[str]:
        postgres = self._binary("postgres")
        prefix, _, _ = _run_as()
        data = str(self.pgdata) if self.pgdata is not None else "<initdb in prepare()>"
        return [
            *prefix, postgres, "-D", data, "-p", str(port),
            "-c", f"listen_addresses={ports.LOOPBACK}", "-c", "unix_socket_directories=",
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "max_connections=60", "-c", "shared_buffers=32MB",
        ]  # fmt: skip

    def _launch(self, port: int) -> int:
        self._binary("postgres")  # fail before initdb when the server is missing
        self._port = port
        self.prepare(port)
        return super()._launch(port)

    @property
    def url(self) -> str:
        return f"postgresql://{ROLE}@{ports.LOOPBACK}:{self.port}/postgres"

    def env(self) -> dict[str, str]:
        return {"TICKTAPE_PG_URL": self.url}

    def probe(self) -> None:
        import psycopg

        with psycopg.connect(self.url, connect_timeout=2) as conn:
            conn.execute("SELECT 1")

    def record(self) -> dict[str, Any]:
        return {**super().record(), "pgdata": str(self.pgdata) if self.pgdata is not None else None}

    def attach(self, record: dict[str, Any]) -> PostgresServer:
        super().attach(record)
        self.pgdata = Path(record["pgdata"]) if record.get("pgdata") else None
        return self

    def stop(self, grace: float = 5.0) -> None:
        super().stop(grace)
        if self.pgdata is not None:
            with contextlib.suppress(OSError):
                shutil.rmtree(self.pgdata)
            self.pgdata = None
