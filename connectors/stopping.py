"""A cooperative stop for any partitioned source: the graceful shutdown's "stop reading".

:class:`StoppableSource` wraps a source; once its ``stop`` event is set, every partition
ends (``StopIteration``) at its next poll instead of reading more, so the dataflow
drains what is in flight, runs its final snapshot (each partition's position is the one
it stopped at) and returns normally. A resumed run continues from those positions.

Unit of parallelism, delivery and resume state: those of the wrapped source (the
wrapper adds no state).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Generic, TypeVar

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

X = TypeVar("X")


class _StoppablePart(StatefulSourcePartition[X, Any], Generic[X]):
    def __init__(self, inner: StatefulSourcePartition[X, Any], stop: threading.Event) -> None:
        self.inner = inner
        self.stop = stop

    def next_batch(self) -> Iterable[X]:
        if self.stop.is_set():
            raise StopIteration
        return self.inner.next_batch()

    def next_awake(self) -> datetime | None:
        # stopping: poll now (a paced or backing-off partition may ask to sleep)
        return None if self.stop.is_set() else self.inner.next_awake()

    def snapshot(self) -> Any:
        return self.inner.snapshot()

    def close(self) -> None:
        self.inner.close()


class StoppableSource(FixedPartitionedSource[X, Any], Generic[X]):
    """``inner``, whose partitions end when ``stop`` is set (see the module docstring)."""

    def __init__(self, inner: FixedPartitionedSource[X, Any], stop: threading.Event) -> None:
        self.inner = inner
        self.stop = stop

    def list_parts(self) -> list[str]:
        return self.inner.list_parts()

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> _StoppablePart[X]:
        return _StoppablePart(self.inner.build_part(step_id, for_part, resume_state), self.stop)
