"""``[archive]``: the archive's configuration (no heavy imports: loaded with the config),
and the factories of the in-flow archiver and of the store.

See :mod:`ticktape.sinks.archive.archiver` for the protocol these settings drive.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from ticktape.schemas.bounds import between
from ticktape.schemas.durations import Duration, PositiveDuration
from ticktape.schemas.errors import ArchiveError, ConfigError
from ticktape.sinks.objectstore.base import ObjectStore, check_key
from ticktape.sinks.objectstore.retry import RetryPolicy
from ticktape.sinks.objectstore.s3 import S3Config
from ticktape.sinks.objectstore.stores import open_store


class ArchiveConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[archive]``: where and when event-log batches are archived, and what stays local.

    ``store``: a directory, ``file://`` URL or ``s3://bucket/prefix`` (``s3`` supplies the
    endpoint and client settings); empty: ``<data_dir>/archive``. ``job`` names this job
    in the keys (with the process id and a random id per event-log file), so jobs and
    processes sharing a bucket and prefix never collide. Triggers: ``batch_rows`` pending rows, the oldest
    pending batch logged ``batch_age`` ago, or a pending event older than ``max_age``
    (event time). Local bodies are deleted ``retention`` after verification; meanwhile
    they are zstd-compressed in place (``retained_codec``; a trained dictionary only if it
    saves ``dictionary_min_gain`` more than plain zstd) ``compress_after`` the mark, at
    most every ``compress_interval``.
    """

    enabled: bool = False
    store: str = ""
    s3: S3Config | None = None
    prefix: str = "ticktape"
    job: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.]{1,40}$")] = "ticktape"
    batch_rows: Annotated[int, between(1, 100_000_000)] = 100_000
    batch_age: Duration = Duration.parse("5m")
    max_age: Duration = Duration.parse("1h")
    retention: Duration = Duration.parse("1d")
    check_interval: PositiveDuration = PositiveDuration.parse("5s")
    zstd_level: Annotated[int, between(1, 22)] = 3
    row_group_rows: Annotated[int, between(1, 100_000_000)] = 8192
    retry: RetryPolicy = RetryPolicy()
    compress_retained: bool = True
    retained_codec: Literal["zstd", "zstd-dict"] = "zstd-dict"
    retained_level: Annotated[int, between(1, 22)] = 9
    dictionary_min_gain: Annotated[float, Meta(ge=0.0, lt=1.0)] = 0.10
    compress_after: Duration = Duration.parse("0s")
    compress_interval: PositiveDuration = PositiveDuration.parse("1m")

    def __post_init__(self) -> None:
        try:
            check_key(self.prefix)
        except ArchiveError:
            raise ValueError(
                f"prefix: expected [A-Za-z0-9._=-] segments separated by '/', got {self.prefix!r}"
            ) from None


def with_default_store(cfg: ArchiveConfig, data_dir: Path) -> ArchiveConfig:
    """``cfg`` with an empty ``store`` replaced by ``<data_dir>/archive``."""
    return cfg if cfg.store else msgspec.structs.replace(cfg, store=str(data_dir / "archive"))


def open_archive_store(cfg: ArchiveConfig) -> ObjectStore:
    """The store named by ``[archive] store`` (and ``[archive.s3]``)."""
    if not cfg.store:
        raise ConfigError("archive.store is empty: resolve it with with_default_store(cfg, data_dir) first")
    return open_store(cfg.store, s3=cfg.s3)
