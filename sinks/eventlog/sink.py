"""The Bytewax sink of the event log: one SQLite file per event-log partition.

:class:`EventLogSink` takes items keyed by the event-log partition of their aggregate.
Delivery: at-least-once input, idempotent by ``event_id`` (effectively once). Resume
state: none; every snapshot first waits until the partition's queued writes are
committed. Unit of parallelism: the event-log partitions (``PartitionedSink``).

Per partition the sink can run maintainers beside the writes: aggregate snapshots every
``snapshot_every`` events (on the writer thread) and whatever ``maintainer`` builds for
the partition file (the wiring passes the archiver: mark-then-delete, see
``ticktape.sinks.archive``). A maintainer's ``maybe_run`` is called after every write and
must be cheap until its work is due.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from bytewax.outputs import StatefulSinkPartition

from ticktape.infra.observability.metrics import RunStats
from ticktape.schemas.records import Event
from ticktape.sinks.base.partitioned import PartitionedSink
from ticktape.sinks.eventlog.log import EventLogPartition, partition_path
from ticktape.sinks.eventlog.snapshots import Snapshotter


class PartitionMaintainer(Protocol):
    """Work that runs beside one event-log partition file (e.g. the archiver)."""

    def maybe_run(self) -> object:
        """Start a pass if one is due (cheap otherwise); the result is ignored."""
        ...

    def close(self) -> None:
        """Finish or stop the current pass and release resources."""
        ...


#: Builds the maintainer of one partition: ``(partition file, partition index)``.
MaintainerFactory = Callable[[Path, int], PartitionMaintainer]


class _EventLogPart(StatefulSinkPartition[list[Event], None]):
    def __init__(
        self,
        part: EventLogPartition,
        stats: RunStats | None,
        maintainer: PartitionMaintainer | None,
        snapshotter: Snapshotter | None,
        durable: bool,
        name: str = "eventlog",
    ) -> None:
        self.part = part
        self.stats = stats
        self.name = name
        self.maintainer = maintainer
        self.snapshotter = snapshotter
        self.durable = durable

    def write_batch(self, values: list[list[Event]]) -> None:
        t0 = time.perf_counter()
        events = [e for batch in values for e in batch]
        self.part.append(events)
        if self.maintainer is not None:
            self.maintainer.maybe_run()  # cheap until due; an archive pass runs on its own thread
        if self.stats is not None:
            self.stats.count_sink(self.name, len(events), time.perf_counter() - t0)

    def snapshot(self) -> None:
        if self.durable:
            self.part.flush()
        if self.stats is not None:
            self.stats.count_snapshot()

    def close(self) -> None:
        self.part.close()
        if self.snapshotter is not None:
            self.snapshotter.close()
        if self.maintainer is not None:
            self.maintainer.close()


class EventLogSink(PartitionedSink[list[Event], None]):
    """Events into ``<directory>/part-NNN.sqlite``; optionally snapshots every
    ``snapshot_every`` events per aggregate (on the writer thread) and a ``maintainer``
    per partition (the archiver). ``durable_snapshots=False``: snapshots do not wait for the
    writer thread (runs without recovery; see :mod:`ticktape.sinks.base.partitioned`).
    ``name`` labels its metrics (``eventlog``; the market log of venue feeds uses the same
    sink as ``market_log``). ``on_commit``: the partitions' hook after each commit (see
    :class:`~ticktape.sinks.eventlog.log.EventLogPartition`)."""

    def __init__(
        self,
        directory: Path,
        partitions: int,
        *,
        synchronous: str = "NORMAL",
        stats: RunStats | None = None,
        background: bool = True,
        snapshot_every: int = 0,
        maintainer: MaintainerFactory | None = None,
        durable_snapshots: bool = True,
        name: str = "eventlog",
        on_commit: Callable[[list[Event], int], object] | None = None,
    ) -> None:
        super().__init__(partitions, durable_snapshots=durable_snapshots)
        self.on_commit = on_commit
        self.name = name
        self.directory = directory
        self.synchronous = synchronous
        self.stats = stats
        self.background = background
        self.snapshot_every = snapshot_every
        self.maintainer = maintainer

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _EventLogPart:
        path = partition_path(self.directory, int(for_part))
        part = EventLogPartition(
            path, synchronous=self.synchronous, background=self.background, on_commit=self.on_commit
        )
        snapshotter = Snapshotter(path, every=self.snapshot_every) if self.snapshot_every else None
        if snapshotter is not None:
            part.after_write = snapshotter.maybe_run
        maintainer = self.maintainer(path, int(for_part)) if self.maintainer is not None else None
        return _EventLogPart(part, self.stats, maintainer, snapshotter, self.durable_snapshots, self.name)
