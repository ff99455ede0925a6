"""PostgreSQL as the production projection store (psycopg 3, ``ticktape[postgres]``).

The URL (``postgresql://user@host:port/db``) must not carry a password: libpq takes it
from ``PGPASSWORD`` or ``~/.pgpass`` (secrets never live in the config). Values are
``NUMERIC`` (exact), times ``BIGINT`` ns.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from ticktape.schemas.errors import ConfigError, MissingDependencyError
from ticktape.schemas.orders.fixed import format_fixed
from ticktape.sinks.projections.schema import ddl

try:
    import psycopg
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingDependencyError("psycopg", "postgres") from exc


#: The advisory lock of projection writers (any constant shared by every ticktape process).
_LOCK_KEY = 0x7469636B  # "tick"


class PostgresDialect:
    name = "postgresql"

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.password:
            raise ConfigError(
                "projections: the PostgreSQL URL must not contain a password; set PGPASSWORD "
                "(or ~/.pgpass) in the environment instead"
            )
        self.url = url
        self.redacted = f"{parts.scheme}://{parts.hostname or ''}:{parts.port or 5432}{parts.path}"

    def connection(self) -> Any:
        try:
            return psycopg.connect(self.url, connect_timeout=10)
        except psycopg.Error as exc:
            raise ConfigError(f"cannot connect to {self.redacted}: {str(exc).strip()[:200]}") from None

    def sql(self, text: str) -> str:
        return text.replace("?", "%s")

    def num(self, units: int | None, scale: int) -> Any:
        return None if units is None else Decimal(format_fixed(units, scale))

    def lock(self, cur: Any) -> None:
        """A transaction-scoped advisory lock: projectors serialize across processes."""
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))

    def ddl(self) -> tuple[str, ...]:
        return ddl("NUMERIC", "BIGINT", 'TEXT COLLATE "C"')
