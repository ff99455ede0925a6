"""Errors of the local dev/test stack (``infra``).

They derive from :class:`ticktape.schemas.errors.TicktapeError`, so the CLI prints them without a
traceback. Each message says which service, what went wrong and what to do about it: a
missing binary names the install command, a service that did not become ready carries the
tail of its log.
"""

from __future__ import annotations

from pathlib import Path

from ticktape.schemas.errors import TicktapeError

#: Install hints per kind of missing program.
APT_HINT = "install it with `apt-get install redis-server prometheus` (or run infra/install-system-deps.sh)"
PIP_HINT = "install it with `pip install 'ticktape[dev]'`"


class ServiceError(TicktapeError):
    """A local service could not be started, reached or stopped."""

    def __init__(self, service: str, message: str) -> None:
        self.service = service
        super().__init__(f"{service}: {message}")


class BinaryNotFoundError(ServiceError):
    """The program a service runs is not installed."""

    def __init__(self, service: str, binary: str, hint: str) -> None:
        self.binary = binary
        self.hint = hint
        super().__init__(service, f"program `{binary}` not found; {hint}")


class ServiceNotReadyError(ServiceError):
    """A service was started but did not answer its readiness check in time (or died)."""

    def __init__(self, service: str, reason: str, log_path: Path | None, log_tail: str = "") -> None:
        self.reason = reason
        self.log_path = log_path
        self.log_tail = log_tail
        text = reason
        if log_path is not None:
            text += f"\n--- last lines of {log_path} ---\n{log_tail or '(empty log)'}"
        super().__init__(service, text)


class StackError(TicktapeError):
    """The dev stack's state file is missing, unreadable or inconsistent."""


def tail(path: Path | None, lines: int = 30, max_bytes: int = 16_384) -> str:
    """Return the last ``lines`` lines of a log file (empty string if it does not exist)."""
    if path is None:
        return ""
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])
