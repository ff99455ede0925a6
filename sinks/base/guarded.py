"""Sinks whose partitions never raise from ``close()``.

Bytewax closes the sink partitions while it unwinds after a step failed; an exception
from ``close()`` there is a panic during a panic and aborts the process (status 134, no
message, the real error lost). :class:`GuardedSink` wraps a partitioned sink: a failing
``close()`` is logged and kept in ``errors`` for the runner to report after the run (one
``error:`` line), and the first failure stays the one reported. Writes and snapshots
pass through unchanged (a snapshot that fails must still fail the run).

Unit of parallelism, delivery and resume state: those of the wrapped sink.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from ticktape.infra.observability.logs import get_logger

X = TypeVar("X")
log = get_logger("sinks")


class _GuardedPart(StatefulSinkPartition[X, Any], Generic[X]):
    def __init__(self, inner: StatefulSinkPartition[X, Any], name: str, errors: list[BaseException]) -> None:
        self.inner = inner
        self.name = name
        self.errors = errors

    def write_batch(self, values: list[X]) -> None:
        self.inner.write_batch(values)

    def snapshot(self) -> Any:
        return self.inner.snapshot()

    def close(self) -> None:
        try:
            self.inner.close()
        except Exception as exc:
            log.error("closing %s failed: %s", self.name, exc)
            self.errors.append(exc)


class GuardedSink(FixedPartitionedSink[X, Any], Generic[X]):
    """``inner`` whose partitions' ``close()`` failures go to ``errors`` (see above)."""

    def __init__(self, inner: FixedPartitionedSink[X, Any], errors: list[BaseException]) -> None:
        self.inner = inner
        self.errors = errors

    def list_parts(self) -> list[str]:
        return self.inner.list_parts()

    def part_fn(self, item_key: str) -> int:
        return self.inner.part_fn(item_key)

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> _GuardedPart[X]:
        part = self.inner.build_part(step_id, for_part, resume_state)
        return _GuardedPart(part, f"{step_id} partition {for_part}", self.errors)
