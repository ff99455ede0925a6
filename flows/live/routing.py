"""How batches are cut for the keyed step and for the partitioned sinks (plain Python).

Every item that crosses Bytewax workers is a list of records for one key, never a single
tick (docs/architecture.md, "Parallelism"). Bucket lookups are memoized per process: hashing a symbol once
instead of once per tick.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from ticktape.flows.steps.market import MarketBatch
from ticktape.schemas.ids import stable_bucket
from ticktape.schemas.records import DeadLetter, Event, Tick, TickBatch

T = TypeVar("T")


class Router:
    """Memoized ``name -> bucket`` mapping for a fixed number of buckets."""

    def __init__(self, buckets: int, width: int = 3) -> None:
        if buckets < 1:
            raise ValueError(f"buckets must be >= 1, got {buckets}")
        self.buckets = buckets
        self.width = width
        #: name -> key of the names seen (read it directly on hot paths, then call :meth:`key`)
        self.memo: dict[str, str] = {}

    def key(self, name: str) -> str:
        key = self.memo.get(name)
        if key is None:
            if len(self.memo) > 1_000_000:
                self.memo.clear()
            key = self.memo[name] = f"{stable_bucket(name, self.buckets):0{self.width}d}"
        return key


def split_ticks(ticks: list[Tick], router: Router) -> list[tuple[str, list[Tick]]]:
    """Group a source batch by shard, keeping each shard's ticks in source order."""
    groups: dict[str, list[Tick]] = {}
    memo, key = router.memo, router.key
    for t in ticks:
        shard = memo.get(t.symbol) or key(t.symbol)
        group = groups.get(shard)
        if group is None:
            groups[shard] = [t]
        else:
            group.append(t)
    return list(groups.items())


def split_events(events: Iterable[Event], router: Router) -> list[tuple[str, list[Event]]]:
    """Group events by event-log partition (by aggregate). Keys are the partition index."""
    groups: dict[str, list[Event]] = {}
    memo, key = router.memo, router.key
    for e in events:  # per event: dict lookups only (hot path)
        part = memo.get(e.aggregate) or key(e.aggregate)
        group = groups.get(part)
        if group is None:
            groups[part] = [e]
        else:
            group.append(e)
    return [(str(int(k)), v) for k, v in groups.items()]


def split_dead(dead: Iterable[DeadLetter], router: Router) -> list[tuple[str, list[DeadLetter]]]:
    """Group dead letters by dead-letter file partition (by source partition)."""
    groups: dict[str, list[DeadLetter]] = {}
    for dl in dead:
        groups.setdefault(router.key(dl.src), []).append(dl)
    return [(str(int(k)), v) for k, v in groups.items()]


def split_market(batch: TickBatch, router: Router) -> list[tuple[str, MarketBatch]]:
    """Group a source batch's quotes, book snapshots and book facts by shard (symbol),
    keeping their order per shard."""
    if not (batch.quotes or batch.books or batch.facts):
        return []
    groups: dict[str, MarketBatch] = {}
    key = router.key

    def group(symbol: str) -> MarketBatch:
        shard = key(symbol)
        g = groups.get(shard)
        if g is None:
            g = groups[shard] = MarketBatch([], [], [])
        return g

    for q in batch.quotes:
        group(q.symbol).quotes.append(q)
    for b in batch.books:
        group(b.symbol).books.append(b)
    for f in batch.facts:
        group(f.symbol).facts.append(f)
    return list(groups.items())
