"""Process plumbing for local services: spawn detached, check liveness, stop and reap.

Services run in their own session (``start_new_session=True``) so they outlive the command
that started them (``ticktape dev up``) and do not receive the terminal's Ctrl-C. A process
is identified by its pid *and* its start time (from ``/proc/<pid>/stat``), so a recycled
pid is never mistaken for one of ours and never signalled.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def find_program(program: str) -> str | None:
    """``shutil.which`` that also looks in the Debian system directories."""
    return shutil.which(program) or shutil.which(program, path="/usr/bin:/usr/sbin:/bin")


def spawn(
    argv: Sequence[str], log_path: Path, *, env: Mapping[str, str] | None = None, cwd: Path
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session, stdout and stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} start: {' '.join(argv)}\n".encode())
        log.flush()
        return subprocess.Popen(  # noqa: S603 - argv is built by the service classes
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            close_fds=True,
        )


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name, or None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """The process start time in clock ticks since boot (None if the pid does not exist)."""
    fields = _stat_fields(pid)
    # Field 22 of stat is starttime; fields[0] here is field 3 (state).
    return int(fields[19]) if fields is not None and len(fields) > 19 else None


def pid_alive(pid: int, ticks: int | None = None) -> bool:
    """True if ``pid`` runs (not a zombie) and, when given, started at ``ticks``."""
    fields = _stat_fields(pid)
    if fields is None:
        return False
    if fields[0] in ("Z", "X"):
        return False
    return ticks is None or int(fields[19]) == ticks


def _try_reap(pid: int) -> None:
    """Collect the exit status of ``pid`` if it is our child and has exited."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _signal(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group led by ``pid`` (or to ``pid`` alone)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def terminate(
    pid: int,
    *,
    ticks: int | None = None,
    grace: float = 5.0,
    proc: subprocess.Popen[bytes] | None = None,
    sig: signal.Signals = signal.SIGTERM,
) -> bool:
    """Stop a service process: ``sig`` (SIGTERM), then SIGKILL after ``grace`` s; reap it.

    ``ticks`` guards against pid reuse (see :func:`start_ticks`). Returns True if the
    process is gone afterwards (also when it had already exited).
    """
    if proc is not None and proc.poll() is not None:
        return True
    if not pid_alive(pid, ticks):
        _try_reap(pid)
        return True
    _signal(pid, sig)
    if _wait_gone(pid, grace, proc):
        return True
    _signal(pid, signal.SIGKILL)
    return _wait_gone(pid, 5.0, proc)


def _wait_gone(pid: int, timeout: float, proc: subprocess.Popen[bytes] | None) -> bool:
    """Wait for ``pid`` to exit, reaping it when it is our child."""
    if proc is not None:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _try_reap(pid)
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    _try_reap(pid)
    return not pid_alive(pid)
