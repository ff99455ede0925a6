"""Scenario ``flow``: synthetic ticks through the whole flow with embedded outputs.

Baseline: a plain single-threaded Python loop doing the same steps with the same code
(decode + stateless rules, keyed step, event log, cache) on the same messages, without
Bytewax. Both use the same event-log writer (its SQLite work runs on a writer thread in
both cases), so the ratio shows what the dataflow runtime costs.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from bytewax.testing import run_main

from ticktape.connectors.memory.messages import MemorySource
from ticktape.flows import wiring
from ticktape.flows.config import Config, from_dict
from ticktape.flows.live.dataflow import build_flow, shard_settings, tune_gc
from ticktape.flows.live.routing import Router, split_events, split_ticks
from ticktape.flows.steps.shard import ShardProcessor
from ticktape.infra.bench.common import Measurement, median, repeat, synthetic_messages
from ticktape.infra.observability.metrics import RunStats
from ticktape.schemas.decoding import BatchDecoder, decoder_for
from ticktape.schemas.validation import TickValidator
from ticktape.sinks.cache import embedded as cache_mod
from ticktape.sinks.cache.embedded import EmbeddedCache
from ticktape.sinks.cache.sink import cache_writes
from ticktape.sinks.eventlog.log import EventLogPartition, partition_path


def bench_config(data_dir: Path) -> Config:
    return from_dict({"run": {"mode": "replay", "data_dir": str(data_dir)}, "metrics": {"enabled": False}})


def run_flow_once(messages: dict[str, list[bytes]], data_dir: Path) -> tuple[float, RunStats]:
    cfg = bench_config(data_dir)
    stats = RunStats(cfg.metrics.latency_window)
    source = MemorySource(messages, "generic", batch_size=cfg.run.batch_size, rules=cfg.validation)
    flow = build_flow(
        cfg,
        source=source,
        outputs=wiring.make_outputs(cfg, stats, recoverable=False),
        stats=stats,
        recoverable=False,
    )
    t0 = time.perf_counter()
    run_main(flow)  # type: ignore[no-untyped-call]
    elapsed = time.perf_counter() - t0
    cache_mod.release(wiring.cache_path(cfg))
    return elapsed, stats


def run_plain_loop(messages: dict[str, list[bytes]], data_dir: Path) -> float:
    """The same steps, hand-wired, single-threaded (same GC thresholds as the flow)."""
    tune_gc()
    cfg = bench_config(data_dir)
    validator = TickValidator(cfg.validation, check_clock=False)
    settings = shard_settings(cfg)
    shards: dict[str, ShardProcessor] = {}
    shard_router, event_router = Router(cfg.run.shards), Router(cfg.eventlog.partitions)
    logs = [
        EventLogPartition(partition_path(wiring.events_dir(cfg), i)) for i in range(cfg.eventlog.partitions)
    ]
    cache = EmbeddedCache(wiring.cache_path(cfg), wiring.cache_ttls(cfg), background=True)  # as the sink
    size = cfg.run.batch_size
    t0 = time.perf_counter()
    for src, msgs in messages.items():
        decoder = BatchDecoder(src, decoder_for("generic"), validator)
        for start in range(0, len(msgs), size):
            ts = time.time_ns()
            batch = decoder.decode(
                (start + i, raw, ts, 0) for i, raw in enumerate(msgs[start : start + size])
            )
            events = list(batch.events)
            updates = []
            for key, ticks in split_ticks(batch.ticks, shard_router):
                proc = shards.get(key)
                if proc is None:
                    proc = shards[key] = ShardProcessor(settings)
                out = proc.process(ticks)
                events.extend(out.events)
                updates.extend(out.updates)
            for part, evs in split_events(events, event_router):
                logs[int(part)].append(evs)
            cache.put_many(cache_writes(updates, []))
    for log in logs:
        log.close()
    cache.close()
    return time.perf_counter() - t0


def flow_scenario(
    ticks: int = 200_000, symbols: int = 500, repeats: int = 3, name: str = "flow"
) -> Measurement:
    """Median ticks/s of the flow and of the plain loop, plus the flow's latencies
    (``name``: the scenario's name, ``flow-10k`` for the 10,000-symbol run)."""
    messages = synthetic_messages(ticks, symbols)
    n = sum(len(m) for m in messages.values())
    last: dict[str, RunStats] = {}

    def flow_rate() -> float:
        with tempfile.TemporaryDirectory(prefix="ticktape-bench-") as tmp:
            elapsed, stats = run_flow_once(messages, Path(tmp))
            last["stats"] = stats
            return n / elapsed

    def loop_rate() -> float:
        tmp = Path(tempfile.mkdtemp(prefix="ticktape-bench-"))
        try:
            return n / run_plain_loop(messages, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    flow_samples = repeat(flow_rate, repeats)
    loop_samples = repeat(loop_rate, repeats)
    latency = last["stats"].latency.report()
    return Measurement(
        scenario=name,
        unit="ticks/s",
        value=median(flow_samples),
        baseline_name="plain Python loop",
        baseline=median(loop_samples),
        samples=flow_samples,
        baseline_samples=loop_samples,
        extra={"ticks": n, "symbols": symbols, "latency_ms": latency},
    )
