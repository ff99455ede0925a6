"""The :class:`Service` abstraction: one local server process on a loopback port.

A service knows how to build its command line for a port, how to check that it answers
(``probe``) and which ``TICKTAPE_*`` variables point a client at it. The base class does
the rest: pick a free port on 127.0.0.1 (and retry on a collision), spawn the process in
its own session with its output in ``<state_dir>/<name>/<name>.log``, wait for readiness
(failing with the log tail), stop it (SIGTERM, SIGKILL after a grace period, reap), and
restart it on the same port.

A service started by another process (``ticktape dev up``) is re-attached from its
persisted record (:meth:`Service.record` / :meth:`Service.attach`) to check or stop it.
"""

from __future__ import annotations

import abc
import contextlib
import os
import signal
import subprocess
import time
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

from ticktape.infra.devstack import ports, process
from ticktape.infra.devstack.errors import ServiceError, ServiceNotReadyError, tail

#: Log phrases that mean "someone else took the port": start() then retries on a new port.
_COLLISION_MARKERS = (
    "address already in use", "addrinuse", "address in use", "errno 98", "could not bind socket",
)  # fmt: skip

#: Environment variables stripped from every child: they could make a server listen on, or
#: export telemetry to, something other than loopback (Tansu reads several from the env).
_SCRUBBED_ENV_PREFIXES = ("OTEL_",)
_SCRUBBED_ENV = ("LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "SCHEMA_REGISTRY")


class Service(abc.ABC):
    """A server process on ``127.0.0.1:<port>``, its logs under ``state_dir/<name>/``."""

    #: Kind of service (``kafka``, ``tansu``, ``questdb``, ``s3``, ``redis``, ``prometheus``);
    #: also the default name.
    kind: ClassVar[str]
    #: Default readiness timeout in seconds.
    ready_timeout: ClassVar[float] = 30.0
    #: Attempts with a fresh port when the port was taken between choice and bind.
    port_attempts: ClassVar[int] = 3
    #: First signal of :meth:`stop` (SIGKILL follows after the grace period).
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM

    def __init__(self, state_dir: str | Path, *, name: str | None = None, port: int | None = None):
        self.name = name or self.kind
        self.state_dir = Path(state_dir).resolve()
        self._port = port
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        self._ticks: int | None = None
        self.started_at: float | None = None
        #: Seconds from spawn to the first successful probe of the last start.
        self.startup_seconds: float | None = None

    # -- hooks for concrete services ---------------------------------------------------

    @abc.abstractmethod
    def argv(self, port: int) -> list[str]:
        """The command line that runs this service on ``port`` (raises if not installed)."""

    @abc.abstractmethod
    def probe(self) -> None:
        """One readiness check; returns if the service answers, raises otherwise."""

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """What a client is given: bootstrap ``host:port``, ``http://...``, ``redis://...``."""

    @abc.abstractmethod
    def env(self) -> dict[str, str]:
        """``TICKTAPE_*`` (and related) variables that point a client at this service."""

    def prepare(self, port: int) -> None:
        """Create files the service needs before it starts (config, data dir)."""
        self.work_dir.mkdir(parents=True, exist_ok=True)

    def child_env(self) -> dict[str, str]:
        """Environment of the child process: ours, minus variables that could leak off-host."""
        return {
            key: value
            for key, value in os.environ.items()
            if key not in _SCRUBBED_ENV and not key.startswith(_SCRUBBED_ENV_PREFIXES)
        }

    # -- properties --------------------------------------------------------------------

    @property
    def work_dir(self) -> Path:
        """Directory with this service's log, config and data."""
        return self.state_dir / self.name

    @property
    def log_path(self) -> Path:
        """File that receives the service's stdout and stderr."""
        return self.work_dir / f"{self.name}.log"

    @property
    def port(self) -> int:
        """The loopback port (raises if the service was never started)."""
        if self._port is None:
            raise ServiceError(self.name, "has no port yet: call start() first")
        return self._port

    @property
    def host(self) -> str:
        """Always ``127.0.0.1``."""
        return ports.LOOPBACK

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"{ports.LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        """Pid of the service process, if started."""
        return self._pid

    # -- lifecycle ---------------------------------------------------------------------

    def is_alive(self) -> bool:
        """True if the process runs (a recycled pid does not count)."""
        if self._proc is not None:
            return self._proc.poll() is None
        return self._pid is not None and process.pid_alive(self._pid, self._ticks)

    def is_ready(self) -> bool:
        """True if the process runs and answers one probe."""
        if not self.is_alive():
            return False
        try:
            self.probe()
        except Exception:
            return False
        return True

    def start(self, *, timeout: float | None = None, wait: bool = True) -> Self:
        """Start on the configured port (or a free one) and, by default, wait until ready.

        Raises :class:`~ticktape.infra.devstack.errors.BinaryNotFoundError` when the program is not
        installed and :class:`~ticktape.infra.devstack.errors.ServiceNotReadyError` (with the log tail) when it
        does not answer within ``timeout`` seconds.
        """
        if self.is_alive():
            raise ServiceError(self.name, f"already running (pid {self._pid}, {self.address})")
        fixed = self._port is not None
        attempts = 1 if fixed else self.port_attempts
        for attempt in range(1, attempts + 1):
            port = self._port if fixed and self._port is not None else ports.free_port()
            try:
                log_offset = self._launch(port)
            except BaseException:
                if not fixed:
                    self._port = None
                raise
            if not wait:
                return self
            try:
                self.wait_ready(self.ready_timeout if timeout is None else timeout)
            except ServiceNotReadyError:
                collided = self._collided(log_offset)
                self.stop(grace=2.0)
                if not fixed:
                    self._port = None
                if not collided or attempt == attempts:
                    raise
                continue
            return self
        raise AssertionError("unreachable")  # pragma: no cover

    def _launch(self, port: int) -> int:
        """Spawn the process on ``port``; return the log size before the spawn."""
        argv = self.argv(port)  # raises BinaryNotFoundError before anything is created
        self._port = port
        self.prepare(port)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._proc = process.spawn(argv, self.log_path, env=self.child_env(), cwd=self.work_dir)
        self._pid = self._proc.pid
        self._ticks = process.start_ticks(self._pid)
        self.started_at = time.time()
        self.startup_seconds = None
        return offset

    def _collided(self, log_offset: int) -> bool:
        """True if the log written since ``log_offset`` says the port was taken."""
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(log_offset)
                text = fh.read().decode("utf-8", errors="replace").lower()
        except OSError:
            return False
        return any(marker in text for marker in _COLLISION_MARKERS)

    def wait_ready(self, timeout: float | None = None) -> None:
        """Poll :meth:`probe` until it succeeds; raise ServiceNotReadyError on exit or timeout."""
        limit = self.ready_timeout if timeout is None else timeout
        begin = time.monotonic()
        deadline = begin + limit
        last_error = "no probe completed"
        while True:
            if not self.is_alive():
                code = self._proc.returncode if self._proc is not None else None
                raise ServiceNotReadyError(
                    self.name,
                    f"process exited (code {code}) before it was ready",
                    self.log_path,
                    tail(self.log_path),
                )
            try:
                self.probe()
            except Exception as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            else:
                if not self.is_alive():
                    continue  # something else answered on the port; ours just died
                spawned = self.started_at or time.time()
                self.startup_seconds = max(0.0, time.time() - spawned)
                return
            if time.monotonic() >= deadline:
                raise ServiceNotReadyError(
                    self.name,
                    f"not ready on {self.address} after {limit:.1f}s (last probe: {last_error})",
                    self.log_path,
                    tail(self.log_path),
                )
            time.sleep(0.05)

    def stop(self, grace: float = 5.0) -> None:
        """:attr:`stop_signal`, then SIGKILL after ``grace`` seconds; reap. Idempotent."""
        if self._pid is None:
            return
        gone = process.terminate(
            self._pid, ticks=self._ticks, grace=grace, proc=self._proc, sig=self.stop_signal
        )
        if not gone:
            raise ServiceError(self.name, f"pid {self._pid} survived SIGKILL")
        self._proc = None
        self._pid = None
        self._ticks = None

    def restart(self, *, timeout: float | None = None, grace: float = 5.0) -> Self:
        """Stop and start again on the same port (its in-memory data is gone)."""
        port = self.port
        self.stop(grace=grace)
        if not ports.wait_port_bindable(port, timeout=10.0):
            raise ServiceError(self.name, f"port {port} still busy 10s after stop")
        self._port = port
        return self.start(timeout=timeout)

    def detach(self) -> None:
        """Forget the child handle so the process outlives this object (and this command)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            self._proc = None

    # -- persistence -------------------------------------------------------------------

    def record(self) -> dict[str, Any]:
        """JSON-able description of the running service (for the dev stack's state file)."""
        return {
            "name": self.name, "kind": self.kind, "pid": self._pid, "ticks": self._ticks,
            "port": self.port, "address": self.address, "url": self.url,
            "log": str(self.log_path), "started_at": self.started_at,
        }  # fmt: skip

    def attach(self, record: dict[str, Any]) -> Self:
        """Take over a service started elsewhere, from its :meth:`record`."""
        self._port = int(record["port"])
        self._pid = int(record["pid"]) if record.get("pid") is not None else None
        self._ticks = int(record["ticks"]) if record.get("ticks") is not None else None
        self.started_at = record.get("started_at")
        return self

    def __enter__(self) -> Self:
        if not self.is_alive():
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        with contextlib.suppress(ServiceError):
            self.stop()

    def __repr__(self) -> str:
        where = f"{ports.LOOPBACK}:{self._port}" if self._port is not None else "not started"
        return f"<{type(self).__name__} {self.name} {where} pid={self._pid}>"
