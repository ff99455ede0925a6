"""``[cache.redis]``: where the Redis cache is and how the sink treats an outage.

Secrets only from the environment (docs/architecture.md, "Configuration"): the password is read from
``TICKTAPE_REDIS_PASSWORD`` (or ``REDIS_PASSWORD``) when the client is built, never from the
TOML file; a URL that carries one (``redis://:pw@host`` or ``?password=``) is a
:class:`~ticktape.schemas.errors.ConfigError`. ``rediss://`` means TLS; ``tls_ca_file`` names a
private CA. A user name in the URL (Redis ACL) is fine. This module does not import
``redis``, so the configuration loads without the optional dependency.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import parse_qs, urlsplit

import msgspec

from ticktape.schemas.bounds import between
from ticktape.schemas.durations import PositiveDuration
from ticktape.schemas.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    import redis

PASSWORD_ENV = ("TICKTAPE_REDIS_PASSWORD", "REDIS_PASSWORD")
_PREFIX = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class RedisConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[cache.redis]``. The password comes only from ``TICKTAPE_REDIS_PASSWORD`` (or
    ``REDIS_PASSWORD``); a URL with a password is refused. ``rediss://`` means TLS
    (``tls_ca_file``: a private CA). ``batch``: writes per Lua call (one round trip);
    ``buffer_max``: keys buffered per sink partition while Redis is unreachable."""

    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "ticktape:"
    batch: Annotated[int, between(1, 1_000_000)] = 1000
    buffer_max: Annotated[int, between(1, 100_000_000)] = 100_000
    on_unavailable: Literal["buffer", "fail"] = "buffer"
    reconnect_base: PositiveDuration = PositiveDuration.parse("100ms")
    reconnect_cap: PositiveDuration = PositiveDuration.parse("10s")
    timeout: PositiveDuration = PositiveDuration.parse("5s")
    version_ttl: PositiveDuration = PositiveDuration.parse("7d")
    tls_ca_file: str = ""

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(
                f"cache.redis.url: expected redis://, rediss:// or unix://, got {parts.scheme!r}"
            )
        if parts.password is not None or "password" in parse_qs(parts.query):
            raise ConfigError(
                "cache.redis.url: a password in the URL is not allowed: secrets only from the "
                f"environment (set {PASSWORD_ENV[0]})"
            )
        if self.tls_ca_file and parts.scheme != "rediss":
            raise ConfigError("cache.redis.tls_ca_file: only with a rediss:// (TLS) url")
        if not _PREFIX.fullmatch(self.key_prefix):
            raise ConfigError(
                f"cache.redis.key_prefix: expected 1-64 characters of [A-Za-z0-9._:-], got {self.key_prefix!r}"
            )
        if not 0 < self.reconnect_base <= self.reconnect_cap or self.timeout <= 0:
            raise ConfigError("cache.redis: expected 0 < reconnect_base <= reconnect_cap and timeout > 0")


def address(url: str) -> str:
    """``scheme://host:port/db`` of ``url`` for messages (no user, no password)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    return f"{parts.scheme}://{parts.hostname or ''}:{parts.port or 6379}{parts.path}"


def connect(cfg: RedisConfig) -> redis.Redis[bytes]:
    """A client for ``cfg.url``. No connection is made yet, and redis-py's own retries are
    off: :class:`~ticktape.sinks.cache.redis.backend.RedisCache` retries with its backoff and buffer."""
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError as exc:
        raise MissingDependencyError("redis", "redis") from exc
    options: dict[str, Any] = {
        "socket_timeout": cfg.timeout.seconds,
        "socket_connect_timeout": cfg.timeout.seconds,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 30,
    }
    password = next((os.environ[n] for n in PASSWORD_ENV if os.environ.get(n)), None)
    if password:
        options["password"] = password
    if cfg.tls_ca_file:
        options["ssl_ca_certs"] = cfg.tls_ca_file
    return redis.Redis.from_url(cfg.url, **options)
