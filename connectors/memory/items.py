"""A fixed list of items as a single-partition source (small internal flows, e.g. writing
backfilled candles through the live sinks). Delivery: every item once, in order.
Resume state: the next index."""

from __future__ import annotations

from typing import Generic, TypeVar

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

X = TypeVar("X")


class _ItemsPartition(StatefulSourcePartition[X, int], Generic[X]):
    def __init__(self, items: list[X], start: int) -> None:
        self.items = items
        self.pos = start

    def next_batch(self) -> list[X]:
        if self.pos >= len(self.items):
            raise StopIteration
        batch = self.items[self.pos : self.pos + 100]
        self.pos += len(batch)
        return batch

    def snapshot(self) -> int:
        return self.pos


class ItemsSource(FixedPartitionedSource[X, int], Generic[X]):
    def __init__(self, items: list[X]) -> None:
        self.items = items

    def list_parts(self) -> list[str]:
        return ["items"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _ItemsPartition[X]:
        return _ItemsPartition(self.items, resume_state or 0)
