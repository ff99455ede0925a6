"""Run a flow in this process: metrics endpoint, cache warming, recovery, end-of-run report.

Workers: ``workers`` threads in this process, or a cluster member with ``process_id`` and
``addresses`` (one ``host:port`` per process; every process runs the same command).
Recovery: ``recovery_dir`` holds Bytewax's snapshot partitions; it is initialised on
first use and resumed from afterwards (at-least-once input, idempotent outputs).
Shutdown: SIGINT/SIGTERM stop the run gracefully (:mod:`ticktape.flows.shutdown`); the
result then says which signal stopped it.
"""

from __future__ import annotations

import fcntl
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from bytewax.inputs import Source
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.run import cli_main

from ticktape.flows import wiring
from ticktape.flows.config import Config
from ticktape.flows.live.dataflow import build_flow
from ticktape.flows.shutdown import GracefulShutdown
from ticktape.flows.wiring import Outputs
from ticktape.infra.observability.logs import get_logger
from ticktape.infra.observability.metrics import RunStats, serve_metrics
from ticktape.schemas.errors import ConfigError, SinkError, StopFailedError, TicktapeError
from ticktape.schemas.records import TickBatch
from ticktape.sinks.cache import embedded as cache_mod
from ticktape.sinks.cache.api import CacheBackend

log = get_logger("runner")


@dataclass
class RunResult:
    run_id: str
    stats: RunStats
    elapsed: float
    outputs: dict[str, str] = field(default_factory=dict)
    metrics_port: int | None = None
    #: Processes in the cluster. With more than one, ticks read here may be processed in
    #: another process, so this process's accounting balances only summed over all of them.
    processes: int = 1
    #: The signal that stopped the run gracefully (``"SIGTERM"``), None if its input ended.
    stopped_by: str | None = None

    def report(self) -> dict[str, Any]:
        totals = self.stats.totals()
        return {
            "run_id": self.run_id,
            "processes": self.processes,
            "stopped_by": self.stopped_by,
            "elapsed_s": round(self.elapsed, 3),
            "ticks_per_s": round(totals.read / self.elapsed, 1) if self.elapsed > 0 else 0.0,
            "accounting": self.stats.accounting(),
            "dead_letters": dict(self.stats.dead_letters),
            "events": dict(self.stats.events),
            "missing_trades": self.stats.missing_trades,
            "latency_ms": self.stats.latency.report(),
            "outputs": self.outputs,
        }


def warm_cache(cfg: Config, *, shared: bool = True) -> int:
    """Load the newest price and metadata of every symbol (event log) and the latest
    candles (candle store, within the history TTL) into the configured cache; versions
    make it safe to warm a cache that already holds newer values. ``shared``: use the
    process-wide embedded cache the sinks will use (kept open)."""
    from ticktape.sinks.cache.warm import warm

    if shared and cfg.cache.backend == "embedded":
        cache: CacheBackend = cache_mod.shared(
            wiring.cache_path(cfg), wiring.cache_ttls(cfg), cfg.cache.max_entries, cfg.cache.max_bytes
        )
    else:
        cache = wiring.open_cache(cfg)
    try:
        return warm(
            cache,
            wiring.events_dir(cfg),
            candles_dir=wiring.candles_dir(cfg) if cfg.candles.enabled else None,
            candles_since=time.time_ns() - int(cfg.cache.history_ttl),
        )
    finally:
        if not (shared and cfg.cache.backend == "embedded"):
            cache.close()


def user_error(exc: BaseException) -> TicktapeError | None:
    """The ticktape error (a source or sink that cannot work, a bad input) behind an
    exception of the dataflow: Bytewax wraps what a step raised in its own errors."""
    seen: set[int] = set()
    node: BaseException | None = exc
    while node is not None and id(node) not in seen:
        if isinstance(node, TicktapeError):
            return node
        seen.add(id(node))
        node = node.__cause__ or node.__context__
    return None


def init_recovery(recovery_dir: Path, partitions: int = 1) -> RecoveryConfig:
    """Use ``recovery_dir``, creating its partitions on first use (under a file lock, so
    the processes of a cluster that share the directory create them once)."""
    recovery_dir.mkdir(parents=True, exist_ok=True)
    with (recovery_dir / ".init.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not any(recovery_dir.glob("part-*.sqlite3")):
            init_db_dir(recovery_dir, partitions)  # type: ignore[no-untyped-call]
    return RecoveryConfig(str(recovery_dir))  # type: ignore[no-untyped-call]


def run(
    cfg: Config,
    *,
    run_id: str = "-",
    source: Source[TickBatch] | None = None,
    outputs: Outputs | None = None,
    stats: RunStats | None = None,
    workers: int | None = None,
    process_id: int | None = None,
    addresses: list[str] | None = None,
    recovery_dir: Path | None = None,
    serve: bool | None = None,
) -> RunResult:
    """Run the live flow to completion (bounded sources) or until a signal stops it
    gracefully (see the module docstring); an error while draining after a signal raises
    :class:`~ticktape.schemas.errors.StopFailedError` (exit 130/143)."""
    stats = stats or RunStats(cfg.metrics.latency_window)
    if (serve is not False and cfg.metrics.enabled and cfg.metrics.port and process_id) and (
        cfg.metrics.port + process_id > 65_535
    ):
        raise ConfigError(
            f"metrics.port: {cfg.metrics.port} + process id {process_id} is above 65535 (each process serves on port + id)",
            key="metrics.port",
        )
    serve = cfg.metrics.enabled if serve is None else serve
    stop_metrics = None
    port: int | None = None
    with GracefulShutdown() as shutdown:
        # built first: a source or output that cannot work fails here, before anything starts
        flow = build_flow(
            cfg, source=source, outputs=outputs, stats=stats, recoverable=recovery_dir is not None,
            stop=shutdown.stop, process_id=process_id or 0,
        )  # fmt: skip
        if outputs is None and cfg.cache.warm_on_start:
            warmed = warm_cache(cfg)
            if warmed:
                log.info("warmed the cache with %d prices from the event log", warmed)
        if serve:
            base = cfg.metrics.port
            port = base + (process_id or 0) if base else 0  # each cluster process: base + process id
            try:
                stop_metrics = serve_metrics(stats, cfg.metrics.host, port)
            except OSError as exc:
                raise ConfigError(
                    f"cannot serve metrics on {cfg.metrics.host}:{port}: {exc} (set [metrics] port, or 0 for any)"
                ) from None
            port = stop_metrics.port  # type: ignore[attr-defined]
            log.info("metrics on http://%s:%s/metrics", cfg.metrics.host, port)
        t0 = time.perf_counter()
        try:
            recovery = init_recovery(recovery_dir) if recovery_dir is not None else None
            cli_main(  # type: ignore[no-untyped-call]
                flow,
                workers_per_process=workers or cfg.run.workers,
                process_id=process_id,
                addresses=addresses,
                epoch_interval=timedelta(seconds=cfg.run.epoch_interval.seconds),
                recovery_config=recovery,
            )
        except Exception as exc:
            cause = user_error(exc) or next(filter(None, map(user_error, stats.close_errors)), None)
            if shutdown.signum is None:
                if cause is None:
                    raise  # a bug: its traceback is what helps
                log.debug("the dataflow stopped on an error", exc_info=exc)
                raise cause.with_traceback(None) from None
            raise StopFailedError(
                f"{shutdown.signal_name}: the drain failed ({type(exc).__name__}: {exc}); "
                "the next run resumes from the last snapshot",
                exit_code=shutdown.exit_code,
            ) from exc
        finally:
            elapsed = time.perf_counter() - t0
            if stop_metrics is not None:
                stop_metrics()
        if stats.close_errors:  # the run ended, but an output could not finish its writes
            failed = stats.close_errors[0]
            if shutdown.signum is not None:
                raise StopFailedError(
                    f"{shutdown.signal_name}: the drain failed: {failed}", exit_code=shutdown.exit_code
                ) from failed
            raise user_error(failed) or SinkError(f"closing an output failed: {failed}") from failed
    outs = {
        "events": str(wiring.events_dir(cfg)),
        "dead_letters": str(wiring.dead_letters_dir(cfg)),
        "cache": str(wiring.cache_path(cfg)),
    }
    if cfg.candles.enabled:
        outs["candles"] = str(wiring.candles_dir(cfg))
    if cfg.books.market_log and wiring.source_has_market(cfg):
        outs["market_log"] = str(wiring.market_dir(cfg))
    return RunResult(
        run_id, stats, elapsed, outs, port, len(addresses) if addresses else 1, shutdown.signal_name
    )
