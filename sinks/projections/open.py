"""Open the projection store a configuration names (SQLite or PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ticktape.schemas.errors import ConfigError
from ticktape.sinks.projections.store import ProjectionStore, SqliteDialect


def is_postgres(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


def open_store(target: str, default_dir: Path) -> ProjectionStore:
    """The projection store named by ``target``: ``""``/``"sqlite"`` (``default_dir/
    projections.sqlite``), a ``.sqlite`` path, or a ``postgresql://`` URL (the password
    only from the environment: ``PGPASSWORD`` or ``~/.pgpass``)."""
    if is_postgres(target):
        from ticktape.sinks.projections.postgres import PostgresDialect

        dialect: Any = PostgresDialect(target)
        return ProjectionStore(dialect, dialect.redacted)
    if target in ("", "sqlite"):
        path = default_dir / "projections.sqlite"
    elif target.endswith((".sqlite", ".db")):
        path = Path(target)
    else:
        raise ConfigError(
            f"projections: expected 'sqlite', a .sqlite path or a postgresql:// URL, got {target[:60]!r}"
        )
    return ProjectionStore(SqliteDialect(path), str(path.resolve()))
