"""Typed, frozen configuration (docs/architecture.md, "Configuration").

One TOML file, every section a frozen ``msgspec.Struct`` that rejects unknown keys, plus
environment overrides ``TICKTAPE__<SECTION>__<KEY>=<value>`` (value parsed as TOML when it
can be, else taken as a string). Secrets never live here: connectors read them from the
environment when they connect. With no file at all, the embedded default runs: a synthetic
feed into the local cache, event log and dead-letter files under ``./ticktape-data``.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from ticktape.connectors.files.history import FileSourceConfig
from ticktape.connectors.kafka.config import KafkaSourceConfig
from ticktape.connectors.synthetic.feed import SyntheticConfig
from ticktape.connectors.venues.config import WebSocketSourceConfig
from ticktape.flows.loader.config import LoaderConfig
from ticktape.flows.steps.candles import CandleConfig
from ticktape.infra.observability.logs import redact
from ticktape.schemas.books.keeper import KeeperSettings
from ticktape.schemas.bounds import INT64_MAX, Count, Port, between
from ticktape.schemas.durations import Duration, PositiveDuration, dec_hook, enc_hook
from ticktape.schemas.errors import ConfigError
from ticktape.schemas.validation import ValidationRules
from ticktape.sinks.archive.config import ArchiveConfig
from ticktape.sinks.cache.redis.config import RedisConfig
from ticktape.sinks.kafka.config import KafkaOutputConfig
from ticktape.sinks.questdb.config import QuestDBConfig

ENV_PREFIX = "TICKTAPE__"
Mode = Literal["live", "replay", "backfill"]


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


class RunConfig(_Section, frozen=True, forbid_unknown_fields=True):
    """``[run]``: how the job runs. ``shards`` is the unit of keyed parallelism (symbols
    hash into shards; shards spread over workers), so it must stay fixed for a recovery
    directory's lifetime."""

    mode: Mode = "live"
    data_dir: Annotated[str, Meta(min_length=1)] = "ticktape-data"
    shards: Annotated[int, between(1, 65_536)] = 32
    batch_size: Annotated[int, between(1, 1_000_000)] = 2000
    epoch_interval: PositiveDuration = PositiveDuration.parse("2s")
    workers: Annotated[int, between(1, 1024)] = 1


class SourceConfig(_Section, frozen=True, forbid_unknown_fields=True):
    """``[source]``: which source feeds the job (``kind``) and the settings of each."""

    kind: Literal["synthetic", "file", "kafka", "websocket"] = "synthetic"
    synthetic: SyntheticConfig = SyntheticConfig()
    file: FileSourceConfig = FileSourceConfig()
    kafka: KafkaSourceConfig = KafkaSourceConfig()
    websocket: WebSocketSourceConfig = WebSocketSourceConfig()

    def __post_init__(self) -> None:
        if self.kind == "websocket" and not self.websocket.feeds:
            raise ValueError('websocket: kind = "websocket" needs at least one [[source.websocket.feeds]]')


class BooksConfig(_Section, frozen=True, forbid_unknown_fields=True):
    """``[books]``: the local L2 books of venue feeds (the ``websocket`` source, and a Kafka
    source of a feed format: both must use the same settings to build the same books).

    ``depth``: levels kept per side; ``snapshot_every``: an L2 snapshot of every book per
    that much event time (and after every resync), with ``snapshot_levels`` levels per side;
    ``buffer``: diffs held per book while it waits for a snapshot; ``market_log``: write
    every accepted quote and L2 snapshot to ``<data_dir>/market`` (archived with the
    archive settings under ``<prefix>/market``)."""

    depth: Annotated[int, between(1, 1_000_000)] = 1000
    snapshot_every: Duration = Duration.parse("10s")
    snapshot_levels: Annotated[int, between(1, 100_000)] = 20
    buffer: Annotated[int, between(1, 100_000_000)] = 10_000
    market_log: bool = True

    def keeper(self) -> KeeperSettings:
        return KeeperSettings(self.depth, int(self.snapshot_every), self.snapshot_levels, self.buffer)


class OutputsConfig(_Section, frozen=True, forbid_unknown_fields=True):
    """``[outputs]``: production outputs beside the embedded ones (all off by default)."""

    kafka: KafkaOutputConfig = KafkaOutputConfig()
    questdb: QuestDBConfig = QuestDBConfig()


class DedupeConfig(_Section, frozen=True, forbid_unknown_fields=True):
    """``[dedupe]``: bounded duplicate detection and gap/stale detection.

    ``window`` ids below the high-water mark are remembered per symbol; a missing id is
    reported as a gap once the high-water mark is ``reorder`` ids past it and the event
    time (the partition's watermark) has moved ``reorder_time`` past the moment an id above
    it was first seen (or once it leaves the window, or at the end of input). An id more than
    ``max_id_jump`` above the high-water mark is rejected (``ID_JUMP``) unless confirmed
    by the ids after it (0: no bound). ``max_keys_per_shard`` bounds the venue+symbol keys
    of one shard (``KEY_LIMIT`` beyond; 0: no bound), so a process holds at most that
    times the shards it runs.
    """

    window: Annotated[int, between(1, 100_000_000)] = 4096
    reorder: Annotated[int, between(0, 100_000_000)] = 256
    reorder_time: PositiveDuration = PositiveDuration.parse("5m")
    max_id_jump: Annotated[int, between(1, INT64_MAX)] = 1_000_000
    max_keys_per_shard: Annotated[int, between(1, 1_000_000_000)] = 10_000
    contiguous_venues: tuple[str, ...] = ("binance", "kraken", "coinbase", "synthetic")
    stale_after: PositiveDuration = PositiveDuration.parse("60s")
    stale_overrides: dict[str, PositiveDuration] = {}

    def __post_init__(self) -> None:
        # Gap maturation reads the window's bitmap up to ``reorder`` ids below the
        # high-water mark: a smaller window would report ids that were seen as missing.
        if self.window < max(self.reorder, 1):
            raise ValueError(
                f"window: expected an integer >= reorder ({self.reorder}) and >= 1, got {self.window}"
            )
        for name in ("max_id_jump", "max_keys_per_shard"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected an integer >= 0 (0: no bound), got {getattr(self, name)}")


class CacheConfig(_Section, frozen=True, forbid_unknown_fields=True):
    """``[cache]``: where the latest values go (``backend``), per-type TTLs (both
    backends), LRU bounds (embedded) and the Redis connection (``[cache.redis]``)."""

    backend: Literal["embedded", "redis"] = "embedded"
    price_ttl: PositiveDuration = PositiveDuration.parse("1s")
    metadata_ttl: PositiveDuration = PositiveDuration.parse("1h")
    history_ttl: PositiveDuration = PositiveDuration.parse("1d")
    max_entries: Count = 100_000
    max_bytes: Annotated[int, between(1024, 2**50)] = 64 * 1024 * 1024
    warm_on_start: bool = True
    redis: RedisConfig = RedisConfig()


class EventLogConfig(_Section, frozen=True, forbid_unknown_fields=True):
    """``[eventlog]``: SQLite (WAL) files, ``partitions`` of them keyed by aggregate."""

    partitions: Annotated[int, between(1, 4096)] = 4
    snapshot_every: Annotated[int, between(0, 1_000_000_000)] = 1000  # 0: no aggregate snapshots
    synchronous: Literal["OFF", "NORMAL", "FULL"] = "NORMAL"


class MetricsConfig(_Section, frozen=True, forbid_unknown_fields=True):
    """``[metrics]``: the Prometheus endpoint (``port`` + process id in a cluster).
    ``symbol_labels``: at most 100 symbols that get ``ticktape_symbol_ticks_total{symbol,venue}``;
    no other metric has a symbol label (bounded cardinality)."""

    enabled: bool = True
    host: Annotated[str, Meta(min_length=1)] = "127.0.0.1"
    port: Port = 9464
    latency_window: Annotated[int, between(1, 100_000_000)] = 100_000
    symbol_labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        symbols = self.symbol_labels
        if len(symbols) > 100:
            raise ValueError(f"symbol_labels: expected at most 100 symbols, got {len(symbols)}")
        twice = sorted({s for s in symbols if symbols.count(s) > 1})
        if twice or "" in symbols:
            raise ValueError(
                f"symbol_labels: expected distinct non-empty symbols, got {twice or ['']!r} twice or empty"
            )


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class LogConfig(_Section, frozen=True, forbid_unknown_fields=True):
    """``[log]``: ``level`` of every component, or per component in ``levels``
    (``{"archive" = "DEBUG"}``); levels are case-insensitive."""

    level: str = "INFO"
    format: Literal["text", "json"] = "text"
    levels: dict[str, str] = {}

    def __post_init__(self) -> None:
        for key, value in [("level", self.level), *((f"levels.{k}", v) for k, v in self.levels.items())]:
            if value.upper() not in LOG_LEVELS:
                raise ValueError(f"{key}: expected one of {', '.join(LOG_LEVELS)}, got {value!r}")


class OrdersConfig(_Section, frozen=True, forbid_unknown_fields=True):
    """``[orders]`` (see README "Orders and projections").

    - ``source``: ``file`` (``files``: JSON lines of order messages) or ``kafka``
      (``[orders.kafka]``, the same settings as ``[source.kafka]``; ``format`` is unused).
    - ``shards``: order ids hash into shards (the unit of keyed parallelism); keep it fixed
      for a recovery directory's lifetime.
    - ``eventlog_partitions``: files of the orders event log, ``<data_dir>/orders/events``.
    - ``projections``: ``sqlite`` (``<data_dir>/orders/projections.sqlite``), a ``.sqlite``
      path, or a ``postgresql://user@host:port/db`` URL (password from ``PGPASSWORD``).
    - ``snapshot_every``: a position snapshot every N executions (for ``--at``).
    """

    source: Literal["file", "kafka"] = "file"
    files: tuple[str, ...] = ()
    kafka: KafkaSourceConfig = KafkaSourceConfig(topic="orders")
    shards: Annotated[int, between(1, 4096)] = 8
    eventlog_partitions: Annotated[int, between(1, 256)] = 2
    projections: str = "sqlite"
    snapshot_every: Count = 100
    batch_size: Annotated[int, between(1, 1_000_000)] = 1000


class BacktestConfig(_Section, frozen=True, forbid_unknown_fields=True):
    """``[backtest]`` (see README "Backtesting"); every key has a ``ticktape backtest`` flag.

    - ``strategy``: ``module:Class`` (a subclass of ``ticktape.flows.backtest.strategy.Strategy``);
      ``params``: its keyword arguments (``[backtest.params]``; ``-p name=value`` overrides).
    - inputs: ``trades`` (history files: freqtrade JSON, CSV, Kraken REST, Parquet),
      ``archive`` (replay the job's archive instead), ``candles`` (replay stored candles of
      ``interval`` from the candle store), ``quotes`` (CSV/Parquet top of book);
      ``symbols``/``start``/``end`` filter them (times: ns, YYYY-MM-DD or RFC 3339).
    - ``interval``: candles for ``on_candle`` (built from the trades unless ``candles``).
    - ``speed``: ``max`` or ``<n>x`` (1x = event time at wall-clock pace).
    - execution: ``cash`` (decimal text), ``latency``, ``slippage_bps``, ``maker_fee_bps``,
      ``taker_fee_bps``, ``participation`` (the largest share of a trade's or candle's
      volume that fills our orders), ``account``, ``venue``.
    - ``sample``: the equity sampling period (returns, Sharpe, drawdown use it).
    """

    strategy: str = "ticktape.flows.backtest.examples:MovingAverageCrossover"
    params: dict[str, Any] = {}
    trades: tuple[str, ...] = ()
    archive: bool = False
    candles: bool = False
    quotes: tuple[str, ...] = ()
    symbols: tuple[str, ...] = ()
    start: str = ""
    end: str = ""
    interval: Duration = Duration.parse("1m")
    speed: str = "max"
    cash: str = "10000"
    latency: Duration = Duration.parse("0s")
    slippage_bps: Annotated[float, between(0.0, 10_000.0)] = 0.0
    maker_fee_bps: Annotated[float, between(-10_000.0, 10_000.0)] = 0.0  # < 0: a rebate
    taker_fee_bps: Annotated[float, between(-10_000.0, 10_000.0)] = 0.0
    participation: Annotated[float, Meta(gt=0.0, le=1.0)] = 1.0
    account: str = "backtest"
    venue: str = "backtest"
    sample: Duration = Duration.parse("1m")

    def __post_init__(self) -> None:
        if int(self.sample) <= 0 or int(self.interval) < 1_000_000_000 or int(self.interval) % 1_000_000_000:
            raise ValueError("sample: expected a duration > 0; interval: whole seconds >= 1s")
        speed = self.speed.strip().lower()
        if speed != "max" and not (speed.endswith("x") and _positive(speed[:-1])):
            raise ValueError(f"speed: expected max or <n>x (1x, 10x, 0.5x), got {self.speed!r}")


def _positive(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False


def speed_factor(speed: str) -> float:
    """0 for ``max``, else the factor of ``<n>x``."""
    speed = speed.strip().lower()
    return 0.0 if speed == "max" else float(speed[:-1])


class Config(_Section, frozen=True, forbid_unknown_fields=True):
    """The whole configuration; every field has a working default."""

    run: RunConfig = RunConfig()
    source: SourceConfig = SourceConfig()
    validation: ValidationRules = ValidationRules()
    dedupe: DedupeConfig = DedupeConfig()
    candles: CandleConfig = CandleConfig()
    books: BooksConfig = BooksConfig()
    cache: CacheConfig = CacheConfig()
    eventlog: EventLogConfig = EventLogConfig()
    archive: ArchiveConfig = ArchiveConfig()
    loader: LoaderConfig = LoaderConfig()
    orders: OrdersConfig = OrdersConfig()
    backtest: BacktestConfig = BacktestConfig()
    outputs: OutputsConfig = OutputsConfig()
    metrics: MetricsConfig = MetricsConfig()
    log: LogConfig = LogConfig()

    @property
    def data_path(self) -> Path:
        return Path(self.run.data_dir)


def _env_overrides(env: dict[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if not path:
            continue
        try:
            value: Any = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node = tree
        for key in path[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment override {name} conflicts with another one")
        node[path[-1]] = value
    return tree


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``over`` into a copy of ``base``."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


_AT = re.compile(r" - at `\$\.(?P<path>[^`]+)`$")


def _value_at(data: Any, path: str) -> Any:
    """The value at msgspec's error path (``run.shards``, ``a.b[0]``), or ``_MISSING``."""
    node = data
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("[") and isinstance(node, list | tuple):
            index = int(part[1:-1])
            node = node[index] if index < len(node) else _MISSING
        elif isinstance(node, dict):
            node = node.get(part, _MISSING)
        else:
            return _MISSING
        if node is _MISSING:
            break
    return node


_MISSING = object()


def from_dict(data: dict[str, Any]) -> Config:
    """Build a :class:`Config`; an invalid value raises :class:`ConfigError` naming the
    key (``.key``: its dotted path when known) and the value."""
    try:
        cfg = msgspec.convert(data, Config, dec_hook=dec_hook)
        cfg.candles.check()
        return cfg
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _AT.search(text)
        key = match["path"] if match else None
        field = re.match(r"(\w+): ", text)
        if key and field:  # a __post_init__ check: "<field>: expected ..." - at `$.<section>`
            key = f"{key}.{field[1]}"
        value = _value_at(data, key) if key else _MISSING
        # numbers only: a string may be a secret (a URL with a password, a key)
        if isinstance(value, int | float) and repr(value) not in text:
            text += f" (got {_short(value)})"
        raise ConfigError(f"invalid configuration: {text}", key=key) from None
    except ConfigError as exc:
        raise ConfigError(f"invalid configuration: {exc}", key=exc.key) from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def load_config(
    path: str | Path | None = None,
    *,
    env: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Config:
    """Load ``path`` (optional), then environment overrides, then ``overrides``."""
    data: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"config file not found: {file}")
        try:
            data = tomllib.loads(file.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file} is not valid TOML: {exc}") from None
    data = merge(data, _env_overrides(dict(os.environ) if env is None else env))
    if overrides:
        data = merge(data, overrides)
    return from_dict(data)


#: Key fragments that mark a secret (librdkafka's ``sasl.password``, ``ssl.key.pem``, ...).
SECRET_MARKERS = ("password", "secret", "passphrase", "private.key", "keytab")
MASK = "***"


def dump_config(cfg: Config) -> dict[str, Any]:
    """The effective configuration as plain data (durations as text), safe to print:
    values under secret-looking keys are masked and credentials in URLs redacted (the
    configuration refuses secrets, this is the second line)."""
    out: dict[str, Any] = _masked(msgspec.to_builtins(cfg, enc_hook=enc_hook))
    return out


def _masked(node: Any, key: str = "") -> Any:
    if isinstance(node, dict):
        return {k: _masked(v, str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_masked(v, key) for v in node]
    if any(marker in key.lower() for marker in SECRET_MARKERS):
        return MASK
    return redact(node) if isinstance(node, str) else node
