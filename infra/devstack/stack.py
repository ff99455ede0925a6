"""The dev stack: detached local services whose state survives between CLI invocations.

``stack_up`` starts the requested services as processes in their own sessions (they
outlive the command) and records pid, process start time, port, url and log path of each
in ``<state_dir>/stack.json``; ``stack_status`` re-reads that file and checks which are
alive and answering; ``stack_down`` stops them all and removes the state. The state dir
(default ``./ticktape-data/devstack/``) is locked while ``up``/``down`` run, so two
commands never start the same stack twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ticktape.infra.devstack import ports
from ticktape.infra.devstack.base import Service
from ticktape.infra.devstack.errors import ServiceError, StackError
from ticktape.infra.devstack.services import SERVICE_CLASSES, service_for
from ticktape.schemas.errors import ConfigError

DEFAULT_STATE_DIR = Path("ticktape-data/devstack")
#: Every kind a stack can run, in start order.
ALL_SERVICES: tuple[str, ...] = tuple(SERVICE_CLASSES)
#: What ``ticktape dev up`` starts: Apache Kafka and QuestDB (JVM) with S3, Redis, Prometheus.
DEFAULT_SERVICES: tuple[str, ...] = ("kafka", "questdb", "s3", "redis", "prometheus", "postgres")
#: ``ticktape dev up --light``: no JVM; Tansu is the Kafka API, no QuestDB.
LIGHT_SERVICES: tuple[str, ...] = ("tansu", "s3", "redis", "prometheus", "postgres")
#: Kinds of which a stack runs at most one (they export the same variables).
EXCLUSIVE: tuple[frozenset[str], ...] = (frozenset(("kafka", "tansu")),)
STATE_FILE = "stack.json"
_STATE_VERSION = 1


@dataclass(frozen=True)
class ServiceInfo:
    """One service of the stack as seen by ``status``."""

    name: str
    kind: str
    pid: int | None
    port: int
    address: str
    url: str
    log: str
    alive: bool
    ready: bool
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StackInfo:
    """The services recorded in a state dir, and how to point clients at them."""

    state_dir: Path
    services: tuple[ServiceInfo, ...] = ()

    @property
    def running(self) -> bool:
        """True if at least one recorded service is alive."""
        return any(s.alive for s in self.services)

    def get(self, kind: str) -> ServiceInfo | None:
        """The service of ``kind`` (``kafka``, ``s3``, ...), if recorded."""
        return next((s for s in self.services if s.kind == kind), None)

    def __getitem__(self, kind: str) -> ServiceInfo:
        """The service of ``kind``; KeyError if the stack has none."""
        found = self.get(kind)
        if found is None:
            recorded = ", ".join(s.kind for s in self.services) or "none"
            raise KeyError(f"service {kind!r} is not in the stack (recorded: {recorded})")
        return found

    def env(self) -> dict[str, str]:
        """Merged ``TICKTAPE_*`` variables of the alive services."""
        merged: dict[str, str] = {}
        for service in self.services:
            if service.alive:
                merged.update(service.env)
        return merged

    def env_block(self, *, export: bool = True) -> str:
        """Shell lines (``export KEY=value``, values shell-quoted where needed, e.g. the
        ``;`` of ``QDB_CLIENT_CONF``) for :meth:`env`, ready for ``eval``."""
        prefix = "export " if export else ""
        return "".join(f"{prefix}{key}={shlex.quote(value)}\n" for key, value in sorted(self.env().items()))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able view (for ``status --json``)."""
        return {
            "state_dir": str(self.state_dir),
            "services": [asdict(s) for s in self.services],
            "env": self.env(),
        }


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the state dir (flock on the directory itself)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _load(state_dir: Path) -> dict[str, dict[str, Any]]:
    """Records by service name from the state file (empty if there is none)."""
    path = state_dir / STATE_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise StackError(f"state file {path}: expected JSON, got unreadable data: {exc}") from exc
    if not isinstance(data, dict) or data.get("version") != _STATE_VERSION:
        raise StackError(f"state file {path}: expected version {_STATE_VERSION}, got {data!r}")
    services: dict[str, dict[str, Any]] = data.get("services", {})
    return services


def _save(state_dir: Path, records: dict[str, dict[str, Any]]) -> None:
    """Write the state file atomically (temp file + rename)."""
    path = state_dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    doc = {"version": _STATE_VERSION, "updated_at": time.time(), "services": records}
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(path)


def _attach(state_dir: Path, record: dict[str, Any]) -> Service:
    return service_for(str(record["kind"]), state_dir, name=str(record["name"])).attach(record)


def _info(service: Service, *, probe: bool) -> ServiceInfo:
    alive = service.is_alive()
    return ServiceInfo(
        name=service.name, kind=service.kind, pid=service.pid, port=service.port,
        address=service.address, url=service.url, log=str(service.log_path), alive=alive,
        ready=alive and (service.is_ready() if probe else True), env=service.env(),
    )  # fmt: skip


def check_services(services: Sequence[str], running: Sequence[str] = ()) -> None:
    """:class:`ConfigError` for an unknown kind, or two Kafka APIs (``kafka`` and ``tansu``)
    in one stack (counting the ``running`` ones)."""
    unknown = [kind for kind in services if kind not in SERVICE_CLASSES]
    if unknown:
        known = ", ".join(SERVICE_CLASSES)
        raise ConfigError(f"services: expected some of {known}, got {', '.join(unknown)}")
    chosen = set(services) | set(running)
    for group in EXCLUSIVE:
        both = sorted(group & chosen)
        if len(both) > 1:
            raise ConfigError(
                f"services: {' and '.join(both)} are both a Kafka API on TICKTAPE_KAFKA_BOOTSTRAP: "
                "pick one (`ticktape dev down` first to switch)"
            )


def stack_up(
    state_dir: str | Path = DEFAULT_STATE_DIR,
    services: Sequence[str] = DEFAULT_SERVICES,
    *,
    timeout: float = 120.0,
) -> StackInfo:
    """Start the requested services detached (keeping ones already running); record them.

    If one service fails, the services started by this call are stopped again and the
    error (:class:`~ticktape.infra.devstack.errors.ServiceError` with the log tail) is raised.
    """
    check_services(services)
    root = Path(state_dir).resolve()
    started: list[Service] = []
    with _locked(root):
        records = _load(root)
        alive = [str(r["kind"]) for r in records.values() if _attach(root, r).is_alive()]
        check_services(services, alive)
        try:
            for kind in services:
                record = records.get(kind)
                port: int | None = None
                if record is not None:
                    if _attach(root, record).is_alive():
                        continue  # already up: keep it, clients keep working
                    if ports.wait_port_free(int(record["port"]), timeout=3.0):
                        port = int(record["port"])  # came back where clients expect it
                service = service_for(kind, root, port=port)
                service.start(timeout=timeout)
                started.append(service)
                records[kind] = service.record()
                _save(root, records)
        except BaseException:
            for service in reversed(started):
                with contextlib.suppress(ServiceError):
                    service.stop(grace=2.0)
                records.pop(service.name, None)
            _save(root, records)
            raise
        for service in started:
            service.detach()
    return stack_status(root, probe=False)


def stack_status(state_dir: str | Path = DEFAULT_STATE_DIR, *, probe: bool = True) -> StackInfo:
    """Which recorded services are alive (and, with ``probe``, answering) and where."""
    root = Path(state_dir).resolve()
    records = _load(root)
    infos = tuple(_info(_attach(root, rec), probe=probe) for rec in records.values())
    return StackInfo(state_dir=root, services=infos)


def stack_down(state_dir: str | Path = DEFAULT_STATE_DIR, *, grace: float = 5.0) -> None:
    """Stop every recorded service (SIGTERM, then SIGKILL) and remove the state dir."""
    root = Path(state_dir).resolve()
    if not root.exists():
        return
    failures: list[str] = []
    with _locked(root):
        records = _load(root)
        for record in reversed(list(records.values())):
            service = _attach(root, record)
            try:
                service.stop(grace=grace)
            except ServiceError as exc:
                failures.append(str(exc))
                continue
            records.pop(service.name, None)
            if service.work_dir.parent == root:
                shutil.rmtree(service.work_dir, ignore_errors=True)
        if failures:
            _save(root, records)
            raise StackError("could not stop: " + "; ".join(failures))
        (root / STATE_FILE).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        root.rmdir()  # only if empty: never removes files we did not create
