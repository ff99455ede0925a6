"""``[outputs.questdb]``: configuration of the QuestDB sink and its client conf string.

The client is configured the QuestDB way, by a conf string (``http::addr=host:port;``,
``tcp::addr=host:9009;``, see QuestDB's client docs): ``conf`` in the config, else the
``QDB_CLIENT_CONF`` environment variable, else :data:`DEFAULT_CONF`. Secrets
(``password``, ``token``, ...) are accepted only from ``QDB_CLIENT_CONF``: a ``conf`` in
the config (file, ``TICKTAPE__`` override or ``--set``) that holds one is a
:class:`~ticktape.schemas.errors.ConfigError`. Conf strings are logged only through
:meth:`ResolvedConf.redacted`. Nothing here imports the ``questdb`` package, so the
configuration loads without the optional dependency.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

import msgspec

from ticktape.schemas.bounds import between
from ticktape.schemas.durations import Duration, PositiveDuration
from ticktape.schemas.errors import ConfigError

DEFAULT_CONF: Final = "http::addr=127.0.0.1:9000;"
ENV_CONF: Final = "QDB_CLIENT_CONF"
#: ILP over HTTP(S) (default; retries, errors name the line) and over TCP(S).
SCHEMAS: Final = frozenset(("http", "https", "tcp", "tcps"))
SECRET_KEYS: Final = frozenset(("password", "token", "token_x", "token_y", "tls_roots_password"))
#: Flushing is the sink's job (rows, interval, every snapshot): the client's is turned off.
_OWNED_KEYS: Final = frozenset(("auto_flush", "auto_flush_rows", "auto_flush_interval", "auto_flush_bytes"))
_KEY = re.compile(r"[a-z][a-z0-9_]*\Z")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,126}\Z")


class QuestDBConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[outputs.questdb]``: price updates, candles and quotes into QuestDB over ILP.

    * ``enabled`` - write to QuestDB at all.
    * ``conf`` - QuestDB client conf string without secrets; empty: ``QDB_CLIENT_CONF``,
      then ``http::addr=127.0.0.1:9000;``. ``auto_flush*`` keys are not allowed (below).
    * ``prices_table`` / ``candles_table`` / ``quotes_table`` - table names (letters,
      digits, ``_``); quotes come from venue feeds (top of book).
    * ``auto_flush_rows`` / ``auto_flush_interval`` - a sink partition flushes when this
      many rows are buffered or this long after its last flush (checked as rows arrive),
      and always before every recovery snapshot and at close.
    * ``retry_timeout`` - how long an HTTP sender retries a failed flush (client-side).
    * ``partitions`` - Bytewax sink partitions per table, i.e. senders per table.
    * ``timestamp_type`` - column type of every timestamp: ``TIMESTAMP_NS`` (ns, QuestDB
      9.1 or later) or ``TIMESTAMP`` (µs, QuestDB 8.x; values are truncated to µs).
    """

    enabled: bool = False
    conf: str = ""
    prices_table: str = "ticktape_prices"
    candles_table: str = "ticktape_candles"
    quotes_table: str = "ticktape_quotes"
    auto_flush_rows: Annotated[int, between(1, 100_000_000)] = 10_000
    auto_flush_interval: PositiveDuration = PositiveDuration.parse("1s")
    retry_timeout: Duration = Duration.parse("10s")
    partitions: Annotated[int, between(1, 4096)] = 2
    timestamp_type: Literal["TIMESTAMP_NS", "TIMESTAMP"] = "TIMESTAMP_NS"

    def __post_init__(self) -> None:
        for name in ("prices_table", "candles_table", "quotes_table"):
            check_identifier(getattr(self, name), f"outputs.questdb.{name}")
        tables = (self.prices_table, self.candles_table, self.quotes_table)
        if len(set(tables)) != 3:
            raise ConfigError(f"outputs.questdb: prices_table, candles_table and quotes_table must differ, got {tables!r}")  # fmt: skip
        if self.conf:
            schema, params = parse_conf(self.conf, "outputs.questdb.conf")
            secrets = sorted(SECRET_KEYS & params.keys())
            if secrets:
                raise ConfigError(
                    f"outputs.questdb.conf holds {', '.join(k + '=' for k in secrets)}: secrets only "
                    f"from the environment: set {ENV_CONF}"
                )
            check_conf(schema, params, "outputs.questdb.conf")


def check_identifier(name: str, where: str) -> str:
    """``name`` if it is a plain SQL identifier (never quoted from user input)."""
    if not IDENTIFIER.match(name):
        raise ConfigError(f"{where}: expected a name of letters, digits and '_' (not starting with a digit, at most 127 characters), got {name!r}")  # fmt: skip
    return name


def parse_conf(conf: str, where: str) -> tuple[str, dict[str, str]]:
    """``schema::key=value;...`` -> (schema, {key: value}); ``;;`` is a literal ``;``.
    Errors never echo the string (it may hold a secret)."""
    schema, sep, rest = conf.strip().partition("::")
    if not sep or not schema.isalpha():
        raise ConfigError(f"{where}: expected a QuestDB conf string like {DEFAULT_CONF!r}")
    params: dict[str, str] = {}
    pos, end = 0, len(rest)
    while pos < end:
        eq = rest.find("=", pos)
        key = rest[pos:eq] if eq >= 0 else ""
        if not _KEY.match(key):
            raise ConfigError(f"{where}: expected 'key=value;' at character {len(schema) + 3 + pos} of the conf string (1-based)")  # fmt: skip
        value, i = [], eq + 1
        while i < end and not (rest[i] == ";" and rest[i + 1 : i + 2] != ";"):
            value.append(rest[i])
            i += 2 if rest[i] == ";" else 1
        params[key] = "".join(value)
        pos = i + 1
    return schema.lower(), params


def check_conf(schema: str, params: Mapping[str, str], where: str) -> None:
    if schema not in SCHEMAS:
        raise ConfigError(f"{where}: expected one of the ILP protocols {sorted(SCHEMAS)}, got {schema!r}")
    if not params.get("addr"):
        raise ConfigError(f"{where}: expected addr=host:port")
    owned = sorted(_OWNED_KEYS & params.keys())
    if owned:
        raise ConfigError(f"{where}: {', '.join(owned)} is set by the sink: use outputs.questdb.auto_flush_rows / auto_flush_interval")  # fmt: skip


class ResolvedConf(msgspec.Struct, frozen=True):
    """The conf string in effect, where it came from, and its parsed settings. ``text``
    may hold secrets: hand it to the client only; log :meth:`redacted`."""

    text: str
    source: str
    schema: str
    params: dict[str, str]

    @property
    def is_http(self) -> bool:
        return self.schema in ("http", "https")

    @property
    def addr(self) -> str:
        return self.params["addr"]

    def redacted(self) -> str:
        parts = [
            f"{k}={'***' if k in SECRET_KEYS else v.replace(';', ';;')};" for k, v in self.params.items()
        ]
        return f"{self.schema}::{''.join(parts)}"

    def scrub(self, text: str) -> str:
        """``text`` (e.g. a client error) with every secret value masked."""
        for key in SECRET_KEYS & self.params.keys():
            if self.params[key]:
                text = text.replace(self.params[key], "***")
        return text


def resolve_conf(cfg: QuestDBConfig, env: Mapping[str, str] | None = None) -> ResolvedConf:
    """``cfg.conf``, else ``QDB_CLIENT_CONF`` from ``env`` (default ``os.environ``), else
    :data:`DEFAULT_CONF`."""
    env = os.environ if env is None else env
    if cfg.conf:
        text, source = cfg.conf, "outputs.questdb.conf"
    elif env.get(ENV_CONF, "").strip():
        text, source = env[ENV_CONF], ENV_CONF
    else:
        text, source = DEFAULT_CONF, "default"
    schema, params = parse_conf(text, source)
    check_conf(schema, params, source)
    return ResolvedConf(text, source, schema, params)


def sender_options(cfg: QuestDBConfig, conf: ResolvedConf) -> dict[str, Any]:
    """Keyword arguments for ``Sender.from_conf`` (settings in the conf string win):
    no client auto-flush; ``retry_timeout`` (HTTP only); over TCP with ``TIMESTAMP_NS`` columns, ILP
    protocol version 2 (ns timestamp columns; HTTP negotiates it with the server)."""
    options: dict[str, Any] = {"auto_flush": False}
    if conf.is_http and "retry_timeout" not in conf.params:
        options["retry_timeout"] = int(cfg.retry_timeout // 1_000_000)
    if not conf.is_http and cfg.timestamp_type == "TIMESTAMP_NS" and "protocol_version" not in conf.params:
        options["protocol_version"] = 2
    return options
