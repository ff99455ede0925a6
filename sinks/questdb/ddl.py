"""QuestDB tables of the QuestDB sink and ``ticktape questdb init``.

Both tables are WAL tables partitioned by day with a designated timestamp ``ts`` and
``DEDUP UPSERT KEYS``, which is what makes the at-least-once sink effectively once:
QuestDB keeps one row per key, the last one written (in commit order).

* prices: ``ts`` = ``ts_event``; keys ``(ts, venue, symbol, tick_id)``. ``tick_id`` is
  the tick's identity (docs/architecture.md, "Dedupe and gaps"): the venue's trade id, or ``src@offset`` for venues
  without one (as in ``ticktape.schemas.ids.price_event_id``). Two trades of one symbol in the
  same nanosecond (or microsecond, with ``TIMESTAMP`` columns) stay two rows; a replayed
  tick hits its own row, whichever source (Kafka, archive) it came through.
* quotes (venue feeds): ``ts`` = ``ts_event``; keys ``(ts, venue, symbol, seq)`` (``seq``
  numbers a symbol's accepted quotes deterministically, so a replay hits the same rows).
* candles: ``ts`` = candle start; keys ``(ts, venue, symbol, interval)``. A revision
  replaces the row; a replay rewrites the revisions in their original order, so the
  stored row is always the latest revision written.

VARCHAR dedup keys need QuestDB 8.1.1 or later; ``TIMESTAMP_NS`` needs 9.1 or later
(``timestamp_type = "TIMESTAMP"`` for 8.x). Identifiers come from this module or from
:func:`~ticktape.sinks.questdb.config.check_identifier`-checked config, never from input data, and
are double-quoted in SQL. The DDL runs over QuestDB's HTTP ``/exec`` endpoint.
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any, Final

from ticktape.schemas.errors import ConfigError, SinkError
from ticktape.sinks.questdb.config import QuestDBConfig, ResolvedConf, check_identifier, resolve_conf

log = logging.getLogger("ticktape.sinks.questdb")
TS: Final = "<ts>"  # replaced by the configured timestamp type
#: (column, type) in table order; SYMBOL columns are ILP tags, the rest ILP fields.
PRICE_COLUMNS: Final = (
    ("ts", TS), ("venue", "SYMBOL"), ("symbol", "SYMBOL"), ("side", "SYMBOL"), ("price", "DOUBLE"),
    ("size", "DOUBLE"), ("trade_id", "VARCHAR"), ("tick_id", "VARCHAR"), ("seq", "LONG"),
    ("ts_kafka", TS), ("ts_recv", TS), ("ts_proc", TS), ("src", "VARCHAR"), ("offset", "LONG"),
)  # fmt: skip
CANDLE_COLUMNS: Final = (
    ("ts", TS), ("venue", "SYMBOL"), ("symbol", "SYMBOL"), ("interval", "INT"), ("open", "DOUBLE"),
    ("high", "DOUBLE"), ("low", "DOUBLE"), ("close", "DOUBLE"), ("volume", "DOUBLE"),
    ("notional", "DOUBLE"), ("vwap", "DOUBLE"), ("trades", "LONG"), ("buy_volume", "DOUBLE"),
    ("sell_volume", "DOUBLE"), ("first_trade_id", "VARCHAR"), ("last_trade_id", "VARCHAR"),
    ("revision", "INT"), ("ts_final", TS),
)  # fmt: skip
QUOTE_COLUMNS: Final = (
    ("ts", TS), ("venue", "SYMBOL"), ("symbol", "SYMBOL"), ("bid", "DOUBLE"), ("bid_size", "DOUBLE"),
    ("ask", "DOUBLE"), ("ask_size", "DOUBLE"), ("mid", "DOUBLE"), ("spread", "DOUBLE"), ("seq", "LONG"),
    ("update_id", "LONG"), ("ts_recv", TS), ("src", "VARCHAR"), ("offset", "LONG"),
)  # fmt: skip
PRICE_KEYS: Final = ("ts", "venue", "symbol", "tick_id")
QUOTE_KEYS: Final = ("ts", "venue", "symbol", "seq")
CANDLE_KEYS: Final = ("ts", "venue", "symbol", "interval")


def _q(name: str) -> str:
    return f'"{check_identifier(name, "identifier")}"'


def create_table(
    table: str, columns: tuple[tuple[str, str], ...], keys: tuple[str, ...], ts_type: str
) -> str:
    cols = ", ".join(f"{_q(name)} {ts_type if typ == TS else typ}" for name, typ in columns)
    return (
        f"CREATE TABLE IF NOT EXISTS {_q(table)} ({cols}) TIMESTAMP({_q('ts')}) "
        f"PARTITION BY DAY WAL DEDUP UPSERT KEYS({', '.join(map(_q, keys))})"
    )


def enable_dedup(table: str, keys: tuple[str, ...]) -> str:
    """Idempotent; also sets the keys on a table that existed before ``init``."""
    return f"ALTER TABLE {_q(table)} DEDUP ENABLE UPSERT KEYS({', '.join(map(_q, keys))})"


def ddl(cfg: QuestDBConfig) -> list[str]:
    """The statements of ``ticktape questdb init``, in order."""
    ts_type = cfg.timestamp_type
    return [
        create_table(cfg.prices_table, PRICE_COLUMNS, PRICE_KEYS, ts_type),
        enable_dedup(cfg.prices_table, PRICE_KEYS),
        create_table(cfg.candles_table, CANDLE_COLUMNS, CANDLE_KEYS, ts_type),
        enable_dedup(cfg.candles_table, CANDLE_KEYS),
        create_table(cfg.quotes_table, QUOTE_COLUMNS, QUOTE_KEYS, ts_type),
        enable_dedup(cfg.quotes_table, QUOTE_KEYS),
    ]


def default_http_addr(conf: ResolvedConf) -> str:
    """QuestDB's HTTP endpoint for ``conf``: its own address over HTTP(S), else port 9000
    of its host (ILP/TCP listens on 9009, SQL over HTTP on 9000 by default)."""
    if conf.is_http:
        return f"{conf.schema}://{conf.addr}"
    host = conf.addr.rsplit(":", 1)[0]
    return f"{'https' if conf.schema == 'tcps' else 'http'}://{host}:9000"


def auth_headers(conf: ResolvedConf) -> dict[str, str]:
    """HTTP basic auth (``username``/``password``) or a bearer ``token`` (HTTP only)."""
    p = conf.params
    if p.get("username") and p.get("password"):
        raw = f"{p['username']}:{p['password']}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}
    if conf.is_http and p.get("token"):
        return {"Authorization": f"Bearer {p['token']}"}
    return {}


def exec_sql(
    http_addr: str, sql: str, *, headers: Mapping[str, str] | None = None, timeout: float = 30.0
) -> dict[str, Any]:
    """Run ``sql`` through ``GET <http_addr>/exec?query=...``; QuestDB's JSON answer.
    Raises :class:`SinkError` with QuestDB's message (and error position) on failure."""
    parsed = urllib.parse.urlsplit(http_addr)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"QuestDB HTTP address: expected http://host:port, got {http_addr!r}")
    url = f"{http_addr.rstrip('/')}/exec?" + urllib.parse.urlencode({"query": sql})
    request = urllib.request.Request(url, headers=dict(headers or {}))  # noqa: S310 - scheme checked above
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            answer: dict[str, Any] = json.loads(response.read() or b"{}")
            return answer
    except urllib.error.HTTPError as exc:
        body = exc.read().decode("utf-8", "replace")
        try:
            doc = json.loads(body)
            detail = f"{doc.get('error', body)} (at character {doc.get('position', '?')})"
        except (ValueError, AttributeError):
            detail = body[:500] or exc.reason
        hint = ""
        if "TIMESTAMP_NS" in sql and "timestamp_ns" in detail.lower():
            hint = (
                ' - QuestDB before 9.1 has no TIMESTAMP_NS: set outputs.questdb.timestamp_type = "TIMESTAMP"'
            )
        raise SinkError(
            f"QuestDB at {http_addr} refused `{sql[:160]}`: HTTP {exc.code}: {detail}{hint}"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SinkError(f"cannot reach QuestDB at {http_addr}: {reason}") from None


def init_tables(cfg: QuestDBConfig, http_addr: str, *, env: Mapping[str, str] | None = None) -> None:
    """Create the tables (if missing) and set their dedup keys, over HTTP ``/exec``;
    credentials, if any, from the resolved conf string (see :func:`auth_headers`)."""
    headers = auth_headers(resolve_conf(cfg, env))
    for sql in ddl(cfg):
        exec_sql(http_addr, sql, headers=headers)
        log.info("questdb init: %s", sql.split(" (", 1)[0])
