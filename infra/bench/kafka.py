"""Scenario ``kafka``: ticks/s through the whole job from a local Kafka broker (Apache
Kafka by default, ``broker="tansu"`` for the light one: :mod:`ticktape.infra.bench.brokers`),
beside a bare confluent-kafka consumer loop reading the same topic in the same run
(the ceiling: no decoding, no processing, no outputs).

``extra["source_only_per_s"]`` is the Kafka source alone in a Bytewax flow (assign,
consume, decode and validate each message into a ``TickBatch``, nothing downstream), so
the report separates what the connector costs (``source_only_ratio`` against the bare
consumer) from what the processing and outputs cost (``job_vs_source_only``: the whole
job against the source alone, the goal is >= 0.5x)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.run import cli_main

from ticktape.flows import wiring
from ticktape.flows.config import Config, from_dict
from ticktape.flows.live.dataflow import build_flow
from ticktape.infra.bench.brokers import bench_broker, broker_version, fill_topic, recent_messages
from ticktape.infra.bench.common import Measurement, median, repeat
from ticktape.infra.observability.metrics import RunStats
from ticktape.sinks.cache import embedded as cache_mod


def _bare_consume(servers: str, topic: str, partitions: int, total: int) -> float:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": "bench",
            "enable.auto.commit": False,
            "fetch.queue.backoff.ms": 10,
            "fetch.wait.max.ms": 100,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen = 0
    t0 = time.perf_counter()
    while seen < total:
        for msg in consumer.consume(10_000, 1.0):
            if msg.error() is None:
                seen += 1
    elapsed = time.perf_counter() - t0
    consumer.close()
    return total / elapsed


def _config(servers: str, topic: str, data_dir: str) -> Config:
    return from_dict({
        "run": {"mode": "replay", "data_dir": data_dir, "batch_size": 5000},
        "source": {"kind": "kafka", "kafka": {"bootstrap_servers": servers, "topic": topic, "end": "launch"}},
        "validation": {"max_past": "1d"}, "metrics": {"enabled": False},
    })  # fmt: skip


def _source_only(servers: str, topic: str, total: int) -> float:
    """Ticks/s of the Kafka source alone: decoded batches counted, nothing else."""
    with tempfile.TemporaryDirectory(prefix="ticktape-bench-kafka-") as tmp:
        cfg = _config(servers, topic, tmp)
        flow = Dataflow("bench-kafka-source")
        batches = op.input("kafka", flow, wiring.make_source(cfg, RunStats(1000)))
        sizes: list[int] = []
        op.inspect("count", batches, lambda _step, b: sizes.append(len(b.ticks)))
        t0 = time.perf_counter()
        cli_main(flow, workers_per_process=1)  # type: ignore[no-untyped-call]
        elapsed = time.perf_counter() - t0
    if sum(sizes) != total:
        raise RuntimeError(f"the source decoded {sum(sizes)} of {total} ticks")
    return total / elapsed


def run_job(servers: str, topic: str, total: int, data_dir: Path) -> tuple[float, RunStats]:
    """Ticks/s of ticktape's whole job (one worker, embedded outputs in ``data_dir``)
    reading ``topic`` from its start to the end it had at launch, and its stats."""
    cfg = _config(servers, topic, str(data_dir))
    stats = RunStats(cfg.metrics.latency_window)
    flow = build_flow(
        cfg,
        source=wiring.make_source(cfg, stats),
        outputs=wiring.make_outputs(cfg, stats, recoverable=False),
        stats=stats,
        recoverable=False,
    )
    t0 = time.perf_counter()
    cli_main(flow, workers_per_process=1)  # type: ignore[no-untyped-call]
    elapsed = time.perf_counter() - t0
    cache_mod.release(wiring.cache_path(cfg))
    if stats.totals().read != total:
        raise RuntimeError(f"the job read {stats.totals().read} of {total} messages")
    return total / elapsed, stats


def _job(servers: str, topic: str, total: int) -> tuple[float, RunStats]:
    with tempfile.TemporaryDirectory(prefix="ticktape-bench-kafka-") as tmp:
        return run_job(servers, topic, total, Path(tmp))


def kafka_scenario(
    ticks: int = 200_000, symbols: int = 500, repeats: int = 3, partitions: int = 2, broker: str = "kafka"
) -> Measurement:
    """Median ticks/s of the job from the broker (Apache Kafka, or ``"tansu"``) and of a
    bare consumer on the same topic."""
    # event times just behind the broker's clock (the job checks event time vs broker time)
    raw = recent_messages(ticks, symbols, rate=100_000.0)
    with bench_broker(broker) as server:
        servers = server.bootstrap_servers
        total = fill_topic(servers, "bench", partitions, raw)
        last: dict[str, RunStats] = {}

        def job_rate() -> float:
            rate, stats = _job(servers, "bench", total)
            last["stats"] = stats
            return rate

        job = repeat(job_rate, repeats)
        bare = repeat(lambda: _bare_consume(servers, "bench", partitions, total), repeats)
        source = repeat(lambda: _source_only(servers, "bench", total), repeats)
        version = broker_version(server)
    return Measurement(
        scenario="kafka",
        unit="ticks/s",
        value=median(job),
        baseline_name="bare confluent-kafka consumer",
        baseline=median(bare),
        samples=job,
        baseline_samples=bare,
        extra={
            "ticks": total,
            "partitions": partitions,
            "broker": version,
            "latency_ms": last["stats"].latency.report(),
            "source_only_per_s": median(source),
            "source_only_samples": source,
            "source_only_ratio": median(source) / median(bare),
            "job_vs_source_only": median(job) / median(source),
        },
    )
