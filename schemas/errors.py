"""The one error hierarchy of ticktape.

Every error a user can cause or meet derives from :class:`TicktapeError`; the CLI prints
these without a traceback. Errors about data name the field, what was expected and what
arrived, so a dead-letter record or a log line is enough to find the problem.
"""

from __future__ import annotations


class TicktapeError(Exception):
    """Base class of every error ticktape raises on purpose."""


class ConfigError(TicktapeError):
    """The configuration (TOML file, environment override or CLI flag) is invalid.
    ``key``: the dotted config key at fault (``run.workers``) when known, so the CLI can
    name the flag that set it."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class InputError(TicktapeError):
    """An input named by the user cannot be used (missing file, unknown format, ...)."""


class StopFailedError(TicktapeError):
    """A signal stopped the run and the graceful stop could not complete; ``exit_code``
    is ``128 + signal`` (130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, message: str, *, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class MissingDependencyError(TicktapeError):
    """An optional dependency is needed for the chosen feature but is not installed."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"this feature needs the '{package}' package; install it with `pip install 'ticktape[{extra}]'`"
        )
        self.package = package
        self.extra = extra


class DataError(TicktapeError):
    """A message or record is unusable; becomes a dead-letter record, never a crash.

    ``code`` is one of :class:`ticktape.schemas.records.DLCode`; ``field``/``expected``/``got``
    describe the offending value.
    """

    def __init__(self, code: str, field: str, expected: str, got: object) -> None:
        self.code = code
        self.field = field
        self.expected = expected
        self.got = got
        super().__init__(self.describe())

    def describe(self) -> str:
        got = self.got if isinstance(self.got, str) else _short_repr(self.got)
        if len(got) > 120:
            got = got[:117] + "..."
        return f"field `{self.field}`: expected {self.expected}, got {got}"


def _short_repr(value: object) -> str:
    """``repr`` that cannot fail on hostile values (an int of more than 4,300 digits)."""
    if isinstance(value, int) and value.bit_length() > 400:
        return f"an integer of {value.bit_length()} bits"
    return repr(value)


class DecodeError(DataError):
    """The raw bytes could not be decoded into a known message."""


class RejectError(DataError):
    """The message decoded but breaks a validation rule."""


class SinkError(TicktapeError):
    """An output could not be written (after its retries)."""


class BackpressureError(SinkError):
    """An output's bounded local buffer is full; the caller should wait and retry."""


class SourceError(TicktapeError):
    """A source cannot be read (connection, offsets, unknown partition, ...)."""


class ArchiveError(TicktapeError):
    """The archive protocol could not complete a step (docs/architecture.md, "The archive")."""
