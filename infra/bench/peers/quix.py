"""Scenario ``quix``: ticktape's job against the same job written with Quix Streams, both
reading the same topic on the same Apache Kafka broker in the same run.

The peer is :mod:`.quix_peer` (its docstring has the job: ``json`` values, a stateful
dedupe filter, three ``tumbling_window(...).agg(...).final(closing_strategy="partition")``
into in-memory sinks, no changelog topics). It runs as a subprocess with the Python of its
own virtualenv (:mod:`.quix_venv`: ``quixstreams`` pinned there, made on first use), never
in ticktape's environment, whose ``confluent-kafka`` is newer than Quix allows. It writes
its candles as JSON lines and its own timing; :func:`run_quix` reads both back. Its rate is
messages over the time from its first message to the end of ``app.run`` (interpreter
start, import, consumer-group join and RocksDB opening excluded; the whole subprocess's
wall time is reported beside, ``peer_process_s``); ticktape's is over its whole run
(start-up included), so the ratio leans in Quix's favour.

ticktape's side is :func:`ticktape.infra.bench.kafka.run_job` in this process (the
``kafka`` scenario's whole job: one worker, embedded outputs), on the same topic.

Measurement (a warm-up of each, then ``repeats`` rounds of ticktape and Quix in turns):
``value`` = ticktape ticks/s, ``baseline`` = Quix's, ratio = ticktape/peer.
``extra["agreement"]`` compares the candles of the last repetition of each: every Quix
candle equals ticktape's, and every window whose partition's time passed its end plus the
grace was emitted (:mod:`ticktape.infra.bench.peers.compare`).
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from ticktape.infra.bench.brokers import bench_broker, broker_version, fill_topic, recent_messages
from ticktape.infra.bench.common import Measurement, alternate, median
from ticktape.infra.bench.kafka import run_job
from ticktape.infra.bench.peers import quix_peer
from ticktape.infra.bench.peers.compare import PeerCandle, agree, from_ticktape
from ticktape.infra.bench.peers.quix_venv import quix_python
from ticktape.infra.devstack.errors import ServiceError
from ticktape.schemas.records import Candle
from ticktape.sinks.candles.store import CandleStore

MS = 1_000_000
#: The intervals of the job (s) and the grace (ms), as ticktape's defaults (and the peer's).
INTERVALS_S = quix_peer.INTERVALS_S
GRACE_MS = quix_peer.GRACE_MS
#: Trades per second of event time in the scenario's messages (as ``bytewax-stock``).
EVENT_RATE = 1_000.0
#: The peer script, run by path with the virtualenv's Python.
PEER_SCRIPT = Path(quix_peer.__file__).resolve()
PEER_TIMEOUT = 900.0


class Summary(msgspec.Struct, frozen=True):
    """What the peer script reports about its run."""

    messages: int
    seconds: float
    quixstreams: str


class QuixRun(NamedTuple):
    """One run of the peer: ticks/s (its own timing), its candles, the subprocess's wall
    time (s, start-up included) and the ``quixstreams`` version that ran."""

    rate: float
    candles: list[PeerCandle]
    process_s: float
    version: str


def run_quix(python: Path, servers: str, topic: str, total: int, state_dir: Path) -> QuixRun:
    """One run of :mod:`.quix_peer` with ``python`` over the ``total`` messages of ``topic``."""
    out = state_dir / "out"
    out.mkdir()
    candles_path, summary_path = out / "candles.jsonl", out / "summary.json"
    argv = [
        str(python), "-I", str(PEER_SCRIPT), "--servers", servers, "--topic", topic, "--total", str(total),
        "--state-dir", str(state_dir / "state"), "--candles", str(candles_path), "--summary", str(summary_path),
    ]  # fmt: skip
    t0 = time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=PEER_TIMEOUT, check=False)  # noqa: S603
    except subprocess.TimeoutExpired:
        raise ServiceError("quix peer", f"did not finish within {PEER_TIMEOUT:.0f} s") from None
    process_s = time.perf_counter() - t0
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-20:])
        raise ServiceError("quix peer", f"exited with {done.returncode}:\n{tail}")
    summary = msgspec.json.decode(summary_path.read_bytes(), type=Summary)
    decode = msgspec.json.Decoder(PeerCandle).decode
    with candles_path.open("rb") as fh:
        candles = [decode(line) for line in fh if line.strip()]
    if summary.seconds <= 0:
        raise ServiceError("quix peer", f"reported no time for {summary.messages} messages")
    return QuixRun(summary.messages / summary.seconds, candles, process_s, summary.quixstreams)


def partition_times(
    servers: str, topic: str, partitions: int, total: int
) -> tuple[dict[str, int], dict[int, int]]:
    """Each symbol's partition and each partition's largest event time (ns), read back
    from the topic (what decides which windows Quix has closed)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": servers, "group.id": "bench-check", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    decode = msgspec.json.Decoder(dict[str, Any]).decode
    symbol_part: dict[str, int] = {}
    latest: dict[int, int] = {}
    seen = 0
    deadline = time.monotonic() + 120
    try:
        while seen < total and time.monotonic() < deadline:
            for msg in consumer.consume(10_000, 1.0):
                value, part = msg.value(), msg.partition()
                if msg.error() is not None or value is None or part is None:
                    continue
                seen += 1
                doc = decode(value)
                symbol_part[str(doc["symbol"])] = part
                latest[part] = max(latest.get(part, 0), int(doc["ts_event"]))
    finally:
        consumer.close()
    if seen != total:
        raise RuntimeError(f"read back {seen} of {total} messages")
    return symbol_part, latest


def closed_by_quix(symbol_part: dict[str, int], latest: dict[int, int]) -> Callable[[PeerCandle], bool]:
    """Whether Quix's partition closing has closed a window: its end (ms) is at most the
    partition's largest timestamp (ms) minus the grace."""

    def closed(c: PeerCandle) -> bool:
        part = symbol_part.get(c.symbol)
        if part is None:
            return False
        end_ms = (c.start + c.interval * 1_000_000_000) // MS
        return end_ms <= latest[part] // MS - GRACE_MS

    return closed


def run_ticktape(servers: str, topic: str, total: int) -> tuple[float, list[Candle]]:
    """Ticks/s of ticktape's whole job on the topic, and its candles."""
    with tempfile.TemporaryDirectory(prefix="ticktape-bench-quix-") as tmp:
        rate, _stats = run_job(servers, topic, total, Path(tmp))
        return rate, CandleStore(Path(tmp) / "candles").read()


def quix_scenario(
    ticks: int = 200_000,
    symbols: int = 500,
    repeats: int = 3,
    partitions: int = 2,
    event_rate: float = EVENT_RATE,
) -> Measurement:
    """Median ticks/s of ticktape's Kafka job and of the Quix Streams peer, same topic."""
    python = quix_python()  # before any server starts: a first use makes the virtualenv
    raw = recent_messages(ticks, symbols, rate=event_rate)
    last: dict[str, Any] = {}
    with bench_broker("kafka") as server:  # Quix needs describe_configs: not on Tansu
        servers = server.bootstrap_servers
        total = fill_topic(servers, "bench", partitions, raw)

        def ours() -> float:
            rate, last["ticktape"] = run_ticktape(servers, "bench", total)
            return rate

        def theirs() -> float:
            with tempfile.TemporaryDirectory(prefix="ticktape-bench-quix-peer-") as tmp:
                last["peer"] = run_quix(python, servers, "bench", total, Path(tmp))
            return float(last["peer"].rate)

        ticktape, peer = alternate(ours, theirs, repeats)  # in turns: the host's load drifts
        symbol_part, latest = partition_times(servers, "bench", partitions, total)
        version = broker_version(server)
    mine = from_ticktape(last["ticktape"])
    peer_run: QuixRun = last["peer"]
    agreement = agree(mine, peer_run.candles, required=closed_by_quix(symbol_part, latest))
    return Measurement(
        scenario="quix",
        unit="ticks/s",
        value=median(ticktape),
        baseline_name="Quix Streams (tumbling_window.agg)",
        baseline=median(peer),
        samples=ticktape,
        baseline_samples=peer,
        extra={
            "ticks": total,
            "symbols": symbols,
            "partitions": partitions,
            "event_rate": event_rate,
            "broker": version,
            "intervals_s": list(INTERVALS_S),
            "peer": f"quixstreams {peer_run.version} in {python.parent.parent}",
            "peer_process_s": round(peer_run.process_s, 3),
            "candles": {"ticktape": len(mine), "peer": len(peer_run.candles)},
            "agreement": msgspec.to_builtins(agreement) | {"ok": agreement.ok},
        },
    )
