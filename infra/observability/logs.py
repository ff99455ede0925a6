"""Logging for people and for log pipelines (docs/architecture.md, "Logs and metrics").

Every record carries the run id, the component (logger name below ``ticktape.``) and the
operation it belongs to (``run``, ``replay``, ``backfill``, an archive batch, ...), set
with :func:`operation`. ``text`` format is human-readable; ``json`` emits one JSON
object per line. Levels can be set per component. Secrets never reach a log: config
values are not logged, and :func:`redact` masks credentials in URLs.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import sys
import time
import uuid
from collections.abc import Iterator

import msgspec

# Bytewax workers are threads that do not inherit context variables, so the run id and the
# process's main operation are process-wide; `operation()` can narrow it per context.
_process = {"run_id": "-", "operation": "-"}
_operation: contextvars.ContextVar[str | None] = contextvars.ContextVar("operation", default=None)
_enc = msgspec.json.Encoder()
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][\w+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@")


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def redact(text: str) -> str:
    """Mask the password of ``scheme://user:password@host`` URLs."""
    return _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.run_id = _process["run_id"]
        record.operation = _operation.get() or _process["operation"]
        name = record.name
        record.component = name[len("ticktape.") :] if name.startswith("ticktape.") else name
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": record.created,
            "level": record.levelname.lower(),
            "run_id": getattr(record, "run_id", "-"),
            "component": getattr(record, "component", record.name),
            "operation": getattr(record, "operation", "-"),
            "msg": redact(record.getMessage()),
        }
        if record.exc_info:
            doc["exc"] = redact(self.formatException(record.exc_info))
        return _enc.encode(doc).decode()


#: Control characters (but newline and tab), C1 controls and bidi overrides: input text in
#: a log line must not drive the terminal (the JSON format escapes them anyway).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape_control(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-5s [%(component)s|%(operation)s] %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        return _CONTROL.sub(_escape_control, redact(super().format(record)))


def setup_logging(
    level: str = "INFO",
    fmt: str = "text",
    levels: dict[str, str] | None = None,
    run_id: str | None = None,
) -> str:
    """Configure the ``ticktape`` loggers; returns the run id."""
    rid = run_id or new_run_id()
    _process["run_id"] = rid
    root = logging.getLogger("ticktape")
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_ContextFilter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
    for component, lvl in (levels or {}).items():
        logging.getLogger(f"ticktape.{component}").setLevel(lvl.upper())
    return rid


def get_logger(component: str) -> logging.Logger:
    return logging.getLogger(f"ticktape.{component}")


def set_process_operation(name: str) -> None:
    """The operation this process runs (``run``, ``replay``, ``backfill``, ...)."""
    _process["operation"] = name


@contextlib.contextmanager
def operation(name: str) -> Iterator[None]:
    """Tag every log record inside the block (this context) with ``operation=name``."""
    token = _operation.set(name)
    try:
        yield
    finally:
        _operation.reset(token)
