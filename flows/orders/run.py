"""Run the orders flow in this process (alone, or resumed from a recovery directory)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from bytewax.inputs import FixedPartitionedSource, Source
from bytewax.run import cli_main

from ticktape.connectors.stopping import StoppableSource
from ticktape.flows.config import Config
from ticktape.flows.orders.dataflow import (
    OrderOutputs,
    build_orders_flow,
    dead_letters_dir,
    events_dir,
    make_order_source,
)
from ticktape.flows.runner import init_recovery
from ticktape.flows.shutdown import GracefulShutdown
from ticktape.infra.observability.metrics import RunStats, serve_metrics
from ticktape.schemas.errors import ConfigError
from ticktape.schemas.orders.decoding import OrderBatch


@dataclass
class OrdersRun:
    stats: RunStats
    elapsed: float
    outputs: dict[str, str] = field(default_factory=dict)


def run_orders(
    cfg: Config,
    *,
    files: list[Path] | None = None,
    source: Source[OrderBatch] | None = None,
    outputs: OrderOutputs | None = None,
    stats: RunStats | None = None,
    workers: int | None = None,
    recovery_dir: Path | None = None,
) -> OrdersRun:
    """Run the orders flow until its source ends (files, or a bounded Kafka ``end``) or a
    SIGINT/SIGTERM stops it gracefully (sources stop reading, the flow drains, sinks flush,
    the last snapshot is taken: :mod:`ticktape.flows.shutdown`)."""
    with GracefulShutdown() as shutdown:
        return _run(cfg, files, source, outputs, stats, workers, recovery_dir, shutdown.stop)


def _run(
    cfg: Config,
    files: list[Path] | None,
    source: Source[OrderBatch] | None,
    outputs: OrderOutputs | None,
    stats: RunStats | None,
    workers: int | None,
    recovery_dir: Path | None,
    stop: threading.Event,
) -> OrdersRun:
    stats = stats or RunStats(cfg.metrics.latency_window)
    if source is None:
        source = make_order_source(cfg, files)
    if isinstance(source, FixedPartitionedSource):
        source = StoppableSource(source, stop)
    flow = build_orders_flow(
        cfg, source=source, outputs=outputs, stats=stats, recoverable=recovery_dir is not None
    )
    recovery = init_recovery(recovery_dir) if recovery_dir is not None else None
    stop_metrics = None
    if cfg.metrics.enabled:  # accounting and sink counters ([metrics] port: not the live job's)
        try:
            stop_metrics = serve_metrics(stats, cfg.metrics.host, cfg.metrics.port)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {cfg.metrics.host}:{cfg.metrics.port}: {exc} (set [metrics] port, or 0 for any)"
            ) from None
    t0 = time.perf_counter()
    try:
        cli_main(  # type: ignore[no-untyped-call]
            flow,
            workers_per_process=workers or cfg.run.workers,
            process_id=None,
            addresses=None,
            epoch_interval=timedelta(seconds=cfg.run.epoch_interval.seconds),
            recovery_config=recovery,
        )
    finally:
        if stop_metrics is not None:
            stop_metrics()
    where = {"events": str(events_dir(cfg)), "dead_letters": str(dead_letters_dir(cfg))}
    where["projections"] = (
        cfg.orders.projections
        if cfg.orders.projections != "sqlite"
        else str(events_dir(cfg).parent / "projections.sqlite")
    )
    return OrdersRun(stats, time.perf_counter() - t0, where)
