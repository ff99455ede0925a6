"""Build the configured source and outputs (embedded defaults when nothing is configured).

Output locations under ``run.data_dir``::

    events/part-NNN.sqlite        event log (one file per event-log partition)
    deadletters/part-NNN.jsonl    dead letters, one JSON object per line
    cache.sqlite                  embedded cache (latest price, metadata, candles)
    candles/interval=S/date=D/    Parquet candle store (zstd; upsert-by-revision on read)
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from bytewax.inputs import Source
from bytewax.outputs import Sink

from connectors.files import FileSource
from connectors.synthetic import SyntheticSource
from flows.config import Config
from flows.live import Outputs
from schemas.errors import ConfigError
from schemas.records import Candle, PriceUpdate, TickBatch
from sinks.archive_config import ArchiveConfig, open_archive_store, with_default_store
from sinks.cache import HISTORY, METADATA, PRICE, EmbeddedCache
from sinks.cache_api import CacheBackend
from sinks.embedded import EmbeddedCacheSink, EventLogSink
from sinks.eventstore import EventStore
from sinks.files import DeadLetterFileSink, ParquetCandleSink
from sinks.metrics import RunStats

R = TypeVar("R")


def events_dir(cfg: Config) -> Path:
    return cfg.data_path / "events"


def dead_letters_dir(cfg: Config) -> Path:
    return cfg.data_path / "deadletters"


def candles_dir(cfg: Config) -> Path:
    return cfg.data_path / "candles"


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
        from connectors.kafka import KafkaSource

        # the broker timestamp is the receive reference, so the clock rule works in replays too
        return KafkaSource(
            src.kafka, batch_size=run.batch_size, rules=cfg.validation, check_clock=True, stats=stats
        )
    raise ConfigError(f"source kind {src.kind!r} is not available in this build")


def archive_config(cfg: Config) -> ArchiveConfig:
    """``[archive]`` with its store resolved (empty: ``<data_dir>/archive``)."""
    return with_default_store(cfg.archive, cfg.data_path)


def open_event_store(cfg: Config) -> EventStore:
    """The event store of ``cfg``; when archiving is on, queries also read batches whose
    local body was deleted after archiving from the archive."""
    if not cfg.archive.enabled:
        return EventStore(events_dir(cfg))
    from sinks.archive_read import ArchiveReader

    archive = archive_config(cfg)
    return EventStore(events_dir(cfg), ArchiveReader(open_archive_store(archive), archive.prefix))


def cache_sink(
    cfg: Config, stats: RunStats | None
) -> Sink[tuple[str, tuple[list[PriceUpdate], list[Candle]]]]:
    """The cache output of ``[cache] backend``."""
    if cfg.cache.backend == "redis":
        from sinks.redis_sink import RedisCacheSink

        return RedisCacheSink(cfg.cache.redis, cache_ttls(cfg), stats=stats)
    return EmbeddedCacheSink(
        cache_path(cfg), cache_ttls(cfg), cfg.cache.max_entries, cfg.cache.max_bytes, stats=stats
    )


def open_cache(cfg: Config) -> CacheBackend:
    """A cache client for the CLI and warming (the caller closes it)."""
    if cfg.cache.backend == "redis":
        from sinks.redis_cache import RedisCache

        return RedisCache(cfg.cache.redis, cache_ttls(cfg))
    return EmbeddedCache(
        cache_path(cfg), cache_ttls(cfg), max_entries=cfg.cache.max_entries, max_bytes=cfg.cache.max_bytes
    )


def make_outputs(cfg: Config, stats: RunStats | None = None) -> Outputs:
    """The embedded outputs (event log, dead-letter files, cache, Parquet candles)."""
    parts = cfg.eventlog.partitions
    archive = archive_config(cfg) if cfg.archive.enabled else None
    outputs = Outputs(
        events=[
            EventLogSink(
                events_dir(cfg), parts, synchronous=cfg.eventlog.synchronous, stats=stats,
                snapshot_every=cfg.eventlog.snapshot_every, archive=archive,
            )
        ],
        dead_letters=[DeadLetterFileSink(dead_letters_dir(cfg), parts)],
        cache=[cache_sink(cfg, stats)],
    )  # fmt: skip
    if cfg.candles.enabled:
        outputs.candles.append(ParquetCandleSink(candles_dir(cfg), parts, stats=stats))
    _add_production_outputs(cfg, outputs, stats)
    return outputs


def _add_production_outputs(cfg: Config, outputs: Outputs, stats: RunStats | None) -> None:
    """Kafka and QuestDB outputs when enabled (their client libraries load only then)."""
    kafka_cfg = cfg.outputs.kafka
    if kafka_cfg.enabled:
        from sinks import kafka

        kafka_cfg.producer_config()  # fail on a bad setting before the flow starts
        _append(outputs.prices, kafka.prices_sink(kafka_cfg, stats))
        _append(outputs.candles, kafka.candles_sink(kafka_cfg, stats))
        _append(outputs.events, kafka.events_sink(kafka_cfg, stats))
        _append(outputs.dead_letters, kafka.dead_letters_sink(kafka_cfg, stats))
    qdb = cfg.outputs.questdb
    if qdb.enabled:
        from sinks import questdb

        _append(outputs.prices, questdb.prices_sink(qdb, stats))
        _append(outputs.candles, questdb.candles_sink(qdb, stats))


def _append(target: list[Sink[tuple[str, list[R]]]], sink: Sink[tuple[str, list[R]]] | None) -> None:
    if sink is not None:
        target.append(sink)
