"""Build the configured source and outputs (embedded defaults when nothing is configured).

Output locations under ``run.data_dir``::

    events/part-NNN.sqlite        event log (one file per event-log partition)
    deadletters/part-NNN.jsonl    dead letters, one JSON object per line
    cache.sqlite                  embedded cache (latest price, metadata, candles)
    candles/interval=S/date=D/    Parquet candle store (zstd; upsert-by-revision on read)
"""

from __future__ import annotations

from pathlib import Path

from bytewax.inputs import Source

from connectors.files import FileSource
from connectors.synthetic import SyntheticSource
from flows.config import Config
from flows.live import Outputs
from schemas.errors import ConfigError
from schemas.records import TickBatch
from sinks.cache import HISTORY, METADATA, PRICE
from sinks.embedded import DeadLetterFileSink, EmbeddedCacheSink, EventLogSink, ParquetCandleSink
from sinks.metrics import RunStats


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
        )
    if src.kind == "file":
        return FileSource(src.file, batch_size=run.batch_size, rules=cfg.validation)
    raise ConfigError(f"source kind {src.kind!r} is not available in this build")


def make_outputs(cfg: Config, stats: RunStats | None = None) -> Outputs:
    """The embedded outputs (event log, dead-letter files, cache, Parquet candles)."""
    return Outputs(
        events=EventLogSink(
            events_dir(cfg),
            cfg.eventlog.partitions,
            synchronous=cfg.eventlog.synchronous,
            stats=stats,
        ),
        dead_letters=DeadLetterFileSink(dead_letters_dir(cfg), cfg.eventlog.partitions),
        cache=EmbeddedCacheSink(
            cache_path(cfg),
            cache_ttls(cfg),
            cfg.cache.max_entries,
            cfg.cache.max_bytes,
            stats=stats,
        ),
        candle_store=ParquetCandleSink(candles_dir(cfg), cfg.eventlog.partitions, stats=stats)
        if cfg.candles.enabled
        else None,
    )
