"""The orders flow: order messages -> state machine -> orders event log -> projections.

A flow of its own (``ticktape orders run``), beside the market-data flow, so either runs,
scales and recovers without the other::

    source (Kafka topic or JSON-lines files) -> OrderBatch --+--> source dead letters/events ---> sinks
                                                             +--> split by order shard --> keyed step
                                                                  (state machine per order) --> events, dead letters

Outputs under ``<data_dir>/orders/``: ``events/part-NNN.sqlite`` (the event log: order
events on ``order:<id>`` aggregates, dead letters), ``deadletters/part-NNN.jsonl``, and
the projections (``projections.sqlite`` or PostgreSQL), kept current by a maintainer on
each event-log partition and built only from the log.

Unit of parallelism: source partitions, then order shards (``[orders] shards``).
Delivery: at-least-once input under recovery; the event log is idempotent by event id,
dead-letter files are cut back to the snapshot, projections apply each event once
(checkpointed in the store). Resume state: source offsets and dead-letter seqs, and each
shard's order states. A replay or a crash-and-resume therefore ends with the outputs of
a clean run (tested with kill -9).
"""

from __future__ import annotations

import functools
import pickle
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import Sink

from ticktape.flows.config import Config
from ticktape.flows.live.dataflow import tune_gc
from ticktape.flows.live.routing import Router, split_dead, split_events
from ticktape.flows.steps.orders import OrderOut, OrderProcessor
from ticktape.infra.observability.metrics import RunStats
from ticktape.schemas.errors import ConfigError
from ticktape.schemas.orders.decoding import OrderBatch, OrderInput
from ticktape.sinks.deadletters import DeadLetterFileSink
from ticktape.sinks.eventlog.sink import EventLogSink
from ticktape.sinks.projections.maintainer import ProjectionMaintainer
from ticktape.sinks.projections.open import open_store
from ticktape.sinks.projections.store import ProjectionStore

Keyed = tuple[str, list[Any]]


def orders_dir(cfg: Config) -> Path:
    return cfg.data_path / "orders"


def events_dir(cfg: Config) -> Path:
    return orders_dir(cfg) / "events"


def dead_letters_dir(cfg: Config) -> Path:
    return orders_dir(cfg) / "deadletters"


def open_projections(cfg: Config) -> ProjectionStore:
    """The configured projection store (the caller closes it)."""
    return open_store(cfg.orders.projections, orders_dir(cfg))


@dataclass
class OrderOutputs:
    """Where the orders flow writes (keyed batches, like the live flow's outputs)."""

    events: list[Sink[Keyed]] = field(default_factory=list)
    dead_letters: list[Sink[Keyed]] = field(default_factory=list)


def make_order_source(cfg: Config, files: list[Path] | None = None) -> Source[OrderBatch]:
    """``[orders] source``: JSON-lines files (``files`` overrides ``[orders] files``) or Kafka."""
    o = cfg.orders
    if files or o.source == "file":
        from ticktape.connectors.files.orders import OrderFileSource

        return OrderFileSource(files or [Path(p) for p in o.files], batch_size=o.batch_size)
    if o.source == "kafka":
        from ticktape.connectors.kafka.orders import KafkaOrderSource

        return KafkaOrderSource(o.kafka, batch_size=o.batch_size)
    raise ConfigError(f"[orders] source: expected file or kafka, got {o.source!r}")


def make_order_outputs(cfg: Config, stats: RunStats | None = None) -> OrderOutputs:
    """The orders event log (with the projection maintainer) and dead-letter files."""
    o = cfg.orders
    maintainer = functools.partial(_maintainer, cfg)
    return OrderOutputs(
        events=[
            EventLogSink(
                events_dir(cfg), o.eventlog_partitions, synchronous=cfg.eventlog.synchronous, stats=stats,
                maintainer=maintainer,
            )
        ],
        dead_letters=[DeadLetterFileSink(dead_letters_dir(cfg), o.eventlog_partitions)],
    )  # fmt: skip


def _maintainer(cfg: Config, path: Path, index: int) -> ProjectionMaintainer:
    return ProjectionMaintainer(path, lambda: open_projections(cfg), snapshot_every=cfg.orders.snapshot_every)


class _OrderLogic(StatefulBatchLogic[list[OrderInput], OrderOut, bytes]):
    def __init__(self, proc: OrderProcessor, recoverable: bool) -> None:
        self.proc = proc
        self.recoverable = recoverable

    def on_batch(self, values: list[list[OrderInput]]) -> tuple[Iterable[OrderOut], bool]:
        inputs = values[0] if len(values) == 1 else [i for v in values for i in v]
        out = self.proc.process(inputs)
        return ([out] if not out.is_empty() else [], StatefulBatchLogic.RETAIN)

    def snapshot(self) -> bytes:
        return pickle.dumps(self.proc, protocol=pickle.HIGHEST_PROTOCOL) if self.recoverable else b""


def split_orders(inputs: list[OrderInput], router: Router) -> list[tuple[str, list[OrderInput]]]:
    """Group inputs by order shard, keeping each order's inputs in source order."""
    groups: dict[str, list[OrderInput]] = {}
    key = router.key
    for item in inputs:
        groups.setdefault(key(item.record.order_id), []).append(item)
    return list(groups.items())


def build_orders_flow(
    cfg: Config,
    *,
    source: Source[OrderBatch] | None = None,
    outputs: OrderOutputs | None = None,
    stats: RunStats | None = None,
    recoverable: bool = True,
) -> Dataflow:
    """The orders flow (module doc). Missing ``source``/``outputs`` come from the config."""
    tune_gc()
    stats = stats if stats is not None else RunStats(cfg.metrics.latency_window)
    source = source if source is not None else make_order_source(cfg)
    outputs = outputs if outputs is not None else make_order_outputs(cfg, stats)
    shard_router = Router(cfg.orders.shards)
    event_router = Router(cfg.orders.eventlog_partitions)
    flow = Dataflow("ticktape-orders")
    batches = op.input("orders_source", flow, source)

    def to_shards(batch: OrderBatch) -> list[tuple[str, list[OrderInput]]]:
        stats.count_source(batch.src, batch.n_read, len(batch.dead))
        stats.count_outcomes(None, batch.dead, batch.events)
        return split_orders(batch.inputs, shard_router)

    def count(item: tuple[str, OrderOut]) -> tuple[str, OrderOut]:
        stats.count_outcomes(item[1].counts, item[1].dead, item[1].events)
        return item

    keyed = op.flat_map("split_orders", batches, to_shards)
    processed = op.stateful_batch("orders", keyed, lambda resume: _OrderLogic(
        pickle.loads(resume) if resume else OrderProcessor(), recoverable  # noqa: S301 - our own snapshot
    ))  # fmt: skip
    outs = op.map("count_orders", processed, count)
    if outputs.events:
        src_events = op.flat_map("source_events", batches, lambda b: split_events(b.events, event_router))
        shard_events = op.flat_map("order_events", outs, lambda o: split_events(o[1].events, event_router))
        all_events = op.merge("all_events", src_events, shard_events)
        for i, sink in enumerate(outputs.events):
            op.output(f"events_{i}", all_events, sink)
    if outputs.dead_letters:
        src_dead = op.flat_map("source_dead", batches, lambda b: split_dead(b.dead, event_router))
        shard_dead = op.flat_map("order_dead", outs, lambda o: split_dead(o[1].dead, event_router))
        all_dead = op.merge("all_dead", src_dead, shard_dead)
        for i, sink in enumerate(outputs.dead_letters):
            op.output(f"dead_letters_{i}", all_dead, sink)
    return flow
