"""Keep the projections current while the orders flow writes its event log.

:class:`ProjectionMaintainer` is an event-log partition maintainer
(:class:`~ticktape.sinks.eventlog.sink.PartitionMaintainer`): after writes it catches
the projection store up with the partition file at most every ``interval_s`` seconds
(committed batches only), and once more when the partition closes, after its last
write is committed. Projections are derived data: a crash loses nothing, the next
catch-up resumes from the store's checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ticktape.sinks.projections.projector import Projector
from ticktape.sinks.projections.store import ProjectionStore


class ProjectionMaintainer:
    def __init__(
        self,
        path: Path,
        open_store: Callable[[], ProjectionStore],
        *,
        snapshot_every: int = 100,
        interval_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.store = open_store()
        self.projector = Projector(self.store, snapshot_every=snapshot_every)
        self.interval_s = interval_s
        self.clock = clock
        self._last = clock()

    def maybe_run(self) -> int:
        now = self.clock()
        if now - self._last < self.interval_s:
            return 0
        self._last = now
        return self.projector.catch_up(self.path)

    def close(self) -> None:
        try:
            self.projector.catch_up(self.path)
        finally:
            self.store.close()
