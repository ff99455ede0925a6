"""Build the configured source and outputs (embedded defaults when nothing is configured).

Output locations under ``run.data_dir``::

    events/part-NNN.sqlite        event log (one file per event-log partition)
    deadletters/part-NNN.jsonl    dead letters, one JSON object per line
    cache.sqlite                  embedded cache (latest price, metadata, candles, top of book)
    candles/interval=S/date=D/    Parquet candle store (zstd; upsert-by-revision on read)
    market/part-NNN.sqlite        market log: every quote and L2 snapshot of venue feeds
                                  (archived under ``<prefix>/market`` when archiving is on)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import msgspec
from bytewax.inputs import Source
from bytewax.outputs import Sink

from ticktape.connectors.files.history import FileSource
from ticktape.connectors.synthetic.feed import SyntheticSource
from ticktape.flows.config import Config
from ticktape.infra.observability.metrics import RunStats
from ticktape.schemas.errors import ConfigError
from ticktape.schemas.feed import is_feed_format
from ticktape.schemas.records import BookSnapshot, Candle, DeadLetter, Event, PriceUpdate, Quote, TickBatch
from ticktape.sinks.archive.config import ArchiveConfig, open_archive_store, with_default_store
from ticktape.sinks.cache.api import HISTORY, METADATA, PRICE, CacheBackend
from ticktape.sinks.cache.embedded import EmbeddedCache
from ticktape.sinks.cache.sink import CacheItem, EmbeddedCacheSink
from ticktape.sinks.candles.sink import ParquetCandleSink
from ticktape.sinks.deadletters import DeadLetterFileSink
from ticktape.sinks.eventlog.sink import EventLogSink
from ticktape.sinks.eventlog.store import EventStore

R = TypeVar("R")


Keyed = tuple[str, list[R]]


@dataclass
class Outputs:
    """Where each output stream goes. Every sink receives keyed batches
    ``(key, [records])`` (so partitioned sinks can flush before a recovery snapshot):
    events, dead letters and the market log are keyed by event-log partition
    (``eventlog.partitions``), prices, candles, quotes, books and cache items by shard
    (``run.shards``)."""

    events: list[Sink[Keyed[Event]]] = field(default_factory=list)
    dead_letters: list[Sink[Keyed[DeadLetter]]] = field(default_factory=list)
    cache: list[Sink[tuple[str, CacheItem]]] = field(default_factory=list)
    prices: list[Sink[Keyed[PriceUpdate]]] = field(default_factory=list)
    candles: list[Sink[Keyed[Candle]]] = field(default_factory=list)
    quotes: list[Sink[Keyed[Quote]]] = field(default_factory=list)
    books: list[Sink[Keyed[BookSnapshot]]] = field(default_factory=list)
    market_log: list[Sink[Keyed[Event]]] = field(default_factory=list)


def events_dir(cfg: Config) -> Path:
    return cfg.data_path / "events"


def dead_letters_dir(cfg: Config) -> Path:
    return cfg.data_path / "deadletters"


def candles_dir(cfg: Config) -> Path:
    return cfg.data_path / "candles"


def market_dir(cfg: Config) -> Path:
    return cfg.data_path / "market"


def source_has_market(cfg: Config) -> bool:
    """Whether the configured source reads venue feeds (quotes and books)."""
    src = cfg.source
    return src.kind == "websocket" or (src.kind == "kafka" and is_feed_format(src.kafka.format))


def cache_path(cfg: Config) -> Path:
    return cfg.data_path / "cache.sqlite"


def cache_ttls(cfg: Config) -> dict[str, int]:
    c = cfg.cache
    return {PRICE: int(c.price_ttl), METADATA: int(c.metadata_ttl), HISTORY: int(c.history_ttl)}


def make_source(cfg: Config, stats: RunStats | None = None, *, pace: bool | None = None) -> Source[TickBatch]:
    """The source named by ``[source] kind``. Synthetic feeds are paced in live mode."""
    src, run = cfg.source, cfg.run
    if src.kind == "synthetic":
        paced = run.mode == "live" if pace is None else pace
        return SyntheticSource(
            src.synthetic,
            pace=paced,
            batch_size=run.batch_size,
            rules=cfg.validation,
            check_clock=paced,
            stats=stats,
        )
    if src.kind == "file":
        return FileSource(src.file, batch_size=run.batch_size, rules=cfg.validation)
    if src.kind == "kafka":
        from ticktape.connectors.kafka.source import KafkaSource

        # the broker timestamp is the receive reference, so the clock rule works in replays too
        return KafkaSource(
            src.kafka, batch_size=run.batch_size, rules=cfg.validation, check_clock=True, stats=stats,
            keeper_settings=cfg.books.keeper(),
        )  # fmt: skip
    if src.kind == "websocket":
        from ticktape.connectors.venues.source import WebSocketSource

        # the clock rule needs a live receive clock: replays of recorded frames skip it
        return WebSocketSource(
            src.websocket, batch_size=run.batch_size, rules=cfg.validation, keeper_settings=cfg.books.keeper(),
            check_clock=run.mode == "live", stats=stats,
        )  # fmt: skip
    raise ConfigError(f"source kind {src.kind!r} is not available in this build")


def archive_config(cfg: Config) -> ArchiveConfig:
    """``[archive]`` with its store resolved (empty: ``<data_dir>/archive``)."""
    return with_default_store(cfg.archive, cfg.data_path)


def open_event_store(cfg: Config) -> EventStore:
    """The event store of ``cfg``; when archiving is on, queries also read batches whose
    local body was deleted after archiving from the archive."""
    if not cfg.archive.enabled:
        return EventStore(events_dir(cfg))
    from ticktape.sinks.archive.reader import ArchiveReader

    archive = archive_config(cfg)
    return EventStore(events_dir(cfg), ArchiveReader(open_archive_store(archive), archive.prefix))


def cache_sink(
    cfg: Config, stats: RunStats | None, *, durable_snapshots: bool = True
) -> Sink[tuple[str, CacheItem]]:
    """The cache output of ``[cache] backend``."""
    if cfg.cache.backend == "redis":
        from ticktape.sinks.cache.redis.sink import RedisCacheSink

        return RedisCacheSink(
            cfg.cache.redis, cache_ttls(cfg), stats=stats, durable_snapshots=durable_snapshots
        )
    return EmbeddedCacheSink(
        cache_path(cfg), cache_ttls(cfg), cfg.cache.max_entries, cfg.cache.max_bytes, stats=stats,
        durable_snapshots=durable_snapshots,
    )  # fmt: skip


def open_cache(cfg: Config) -> CacheBackend:
    """A cache client for the CLI and warming (the caller closes it)."""
    if cfg.cache.backend == "redis":
        from ticktape.sinks.cache.redis.backend import RedisCache

        return RedisCache(cfg.cache.redis, cache_ttls(cfg))
    return EmbeddedCache(
        cache_path(cfg), cache_ttls(cfg), max_entries=cfg.cache.max_entries, max_bytes=cfg.cache.max_bytes
    )


def make_outputs(
    cfg: Config, stats: RunStats | None = None, *, process_id: int = 0, recoverable: bool = True
) -> Outputs:
    """The embedded outputs (event log, dead-letter files, cache, Parquet candles);
    ``process_id``: this process's id in its cluster (it names the archive's writers).
    ``recoverable=False`` (a run without a recovery store): sinks do not wait for their
    writes at epoch ends (``durable_snapshots``), nothing resumes from those snapshots."""
    parts = cfg.eventlog.partitions
    archiver = None
    if cfg.archive.enabled:
        from ticktape.sinks.archive.archiver import make_archiver

        archiver = functools.partial(
            make_archiver, cfg=archive_config(cfg), stats=stats, process_id=process_id
        )
    outputs = Outputs(
        events=[
            EventLogSink(
                events_dir(cfg), parts, synchronous=cfg.eventlog.synchronous, stats=stats,
                snapshot_every=cfg.eventlog.snapshot_every, maintainer=archiver,
                durable_snapshots=recoverable,
            )
        ],
        dead_letters=[DeadLetterFileSink(dead_letters_dir(cfg), parts)],
        cache=[cache_sink(cfg, stats, durable_snapshots=recoverable)],
    )  # fmt: skip
    if cfg.candles.enabled:
        outputs.candles.append(
            ParquetCandleSink(candles_dir(cfg), parts, stats=stats, durable_snapshots=recoverable)
        )
    if cfg.books.market_log and source_has_market(cfg):
        outputs.market_log.append(market_log_sink(cfg, stats, process_id=process_id, recoverable=recoverable))
    _add_production_outputs(cfg, outputs, stats)
    return outputs


def market_log_sink(
    cfg: Config, stats: RunStats | None, *, process_id: int = 0, recoverable: bool = True
) -> Sink[Keyed[Event]]:
    """The market log: every accepted quote and L2 snapshot, in SQLite files beside the
    event log, archived by the same protocol under ``<prefix>/market`` (separate keys)."""
    archiver = None
    if cfg.archive.enabled:
        from ticktape.sinks.archive.archiver import make_archiver

        archive = archive_config(cfg)
        archive = msgspec.structs.replace(archive, prefix=f"{archive.prefix}/market")
        archiver = functools.partial(make_archiver, cfg=archive, stats=stats, process_id=process_id)
    return EventLogSink(
        market_dir(cfg), cfg.eventlog.partitions, synchronous=cfg.eventlog.synchronous, stats=stats,
        maintainer=archiver, durable_snapshots=recoverable, name="market_log",
    )  # fmt: skip


def _add_production_outputs(cfg: Config, outputs: Outputs, stats: RunStats | None) -> None:
    """Kafka and QuestDB outputs when enabled (their client libraries load only then)."""
    kafka_cfg = cfg.outputs.kafka
    if kafka_cfg.enabled:
        from ticktape.sinks.kafka import sink as kafka

        kafka_cfg.producer_config()  # fail on a bad setting before the flow starts
        _append(outputs.prices, kafka.prices_sink(kafka_cfg, stats))
        _append(outputs.candles, kafka.candles_sink(kafka_cfg, stats))
        _append(outputs.events, kafka.events_sink(kafka_cfg, stats))
        _append(outputs.dead_letters, kafka.dead_letters_sink(kafka_cfg, stats))
        _append(outputs.quotes, kafka.quotes_sink(kafka_cfg, stats))
    qdb = cfg.outputs.questdb
    if qdb.enabled:
        from ticktape.sinks.questdb import sink as questdb

        _append(outputs.prices, questdb.prices_sink(qdb, stats))
        _append(outputs.candles, questdb.candles_sink(qdb, stats))
        _append(outputs.quotes, questdb.quotes_sink(qdb, stats))


def _append(target: list[Sink[tuple[str, list[R]]]], sink: Sink[tuple[str, list[R]]] | None) -> None:
    if sink is not None:
        target.append(sink)
