"""Base class of ticktape's partitioned Bytewax sinks.

Items are keyed batches ``(key, [records])`` where ``key`` is a decimal string (a shard or
an event-log partition); partition ``int(key) % partitions`` takes them. Partitioned
sinks (unlike Bytewax dynamic sinks) get a ``snapshot()`` call before every recovery
snapshot, which is where buffered writes are made durable. Bytewax calls it at every
epoch even when the run has no recovery store; sinks built with
``durable_snapshots=False`` (the wiring does so for such runs) then skip the wait, since
nothing will resume from that snapshot: the worker thread never blocks on a disk or a
server at epoch ends, and the data still reaches the store (writer threads, ``close()``).
"""

from __future__ import annotations

from typing import Generic, TypeVar

from bytewax.outputs import FixedPartitionedSink

X = TypeVar("X")
S = TypeVar("S")


class PartitionedSink(FixedPartitionedSink[X, S], Generic[X, S]):
    """``partitions`` fixed partitions named ``"0"`` .. ``"N-1"``; ``durable_snapshots``:
    whether the parts make their writes durable at each snapshot (see the module doc)."""

    def __init__(self, partitions: int, *, durable_snapshots: bool = True) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be >= 1, got {partitions}")
        self.partitions = partitions
        self.durable_snapshots = durable_snapshots

    def list_parts(self) -> list[str]:
        return [str(i) for i in range(self.partitions)]

    def part_fn(self, item_key: str) -> int:
        return int(item_key) % self.partitions
