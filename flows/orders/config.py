"""``[orders]``: the orders flow's source, keyed parallelism, event log and projections."""

from __future__ import annotations

from typing import Literal

import msgspec

from ticktape.connectors.kafka.config import KafkaSourceConfig


class OrdersConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
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
    shards: int = 8
    eventlog_partitions: int = 2
    projections: str = "sqlite"
    snapshot_every: int = 100
    batch_size: int = 1000

    def __post_init__(self) -> None:
        for name in ("shards", "eventlog_partitions", "snapshot_every", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {getattr(self, name)}")
