"""Scenario ``quix``: ticktape's job against the same job written with Quix Streams, both
reading the same topic on the same Apache Kafka broker in the same run.

The peer (:func:`run_quix`, ``quixstreams`` 3.x, one process, one ``Application``):

* the topic with Quix's ``json`` value deserializer, the message key (the symbol) as a
  string, and a ``timestamp_extractor`` taking the trade's event time (ms) from the value;
* dedupe: ``sdf.filter(..., stateful=True)`` keeping the symbol's highest trade id in
  Quix's per-key state (RocksDB), like the Bytewax peer: a trade id at or below it is
  dropped, so an out-of-order trade is lost;
* ``sdf["notional"] = sdf["price"] * sdf["size"]``, then three branches
  ``sdf.tumbling_window(1m | 5m | 1h, grace_ms=2 s).agg(open=Earliest("price"),
  high=Max, low=Min, close=Latest("price"), volume=Sum("size"), notional=Sum, trades=Count())
  .final(closing_strategy="partition")`` (a window closes when its partition's time passes
  its end plus the grace, like ticktape's partition watermark);
* each branch into a ``BatchingSink`` that keeps the candles in a list (flushed at each
  checkpoint: cheaper than ticktape's four durable outputs).

Settings beside Quix's defaults: a fresh consumer group reading from the earliest offset,
no changelog topics (``use_changelog_topics=False``: ticktape's bench job runs without
recovery too), state in a temporary folder, no logging setup. The run stops (``app.stop()``)
when a counting step at the head of the dataframe has seen every message; the final
checkpoint then flushes the sinks. Its rate is messages over the time from the first
message to the end of ``app.run`` (consumer-group join and RocksDB opening excluded);
ticktape's is over its whole run (start-up included), so the ratio leans in Quix's favour.

ticktape's side is :func:`ticktape.infra.bench.kafka.run_job` (the ``kafka`` scenario's
whole job: one worker, embedded outputs), on the same topic.

Measurement (a warm-up of each, then ``repeats`` rounds of ticktape and Quix in turns):
``value`` = ticktape ticks/s, ``baseline`` = Quix's, ratio = ticktape/peer.
``extra["agreement"]`` compares the candles of the last repetition of each: every Quix
candle equals ticktape's, and every window whose partition's time passed its end plus the
grace was emitted (:mod:`ticktape.infra.bench.peers.compare`).
"""

from __future__ import annotations

import contextlib
import importlib
import signal
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec

from ticktape.infra.bench.brokers import bench_broker, broker_version, fill_topic, recent_messages
from ticktape.infra.bench.common import Measurement, alternate, median
from ticktape.infra.bench.kafka import run_job
from ticktape.infra.bench.peers.compare import PeerCandle, agree, from_ticktape
from ticktape.schemas.records import Candle
from ticktape.sinks.candles.store import CandleStore

MS = 1_000_000
#: The intervals of the job (s) and the grace (ms), as ticktape's defaults.
INTERVALS_S = (60, 300, 3600)
GRACE_MS = 2_000
#: Trades per second of event time in the scenario's messages (as ``bytewax-stock``).
EVENT_RATE = 1_000.0


def run_quix(servers: str, topic: str, total: int, state_dir: Path) -> tuple[float, list[PeerCandle]]:
    """Ticks/s of one Quix run over the ``total`` messages of ``topic`` and its candles."""
    with warnings.catch_warnings():  # a dependency of its schema registry client warns when imported
        with contextlib.suppress(ImportError):  # it puts an "always" filter first: ours must come after
            importlib.import_module("authlib.deprecate")
        warnings.filterwarnings("ignore", message="The httpx module is deprecated")
        return _run_quix(servers, topic, total, state_dir)


def _run_quix(servers: str, topic: str, total: int, state_dir: Path) -> tuple[float, list[PeerCandle]]:
    from quixstreams import Application
    from quixstreams.dataframe.windows import Count, Earliest, Latest, Max, Min, Sum
    from quixstreams.sinks import BatchingSink, SinkBatch

    candles: list[PeerCandle] = []

    class CandleSink(BatchingSink):
        """The closed windows of one interval, as candles, into ``candles``."""

        def __init__(self, interval: int) -> None:
            super().__init__()
            self.interval = interval

        def write(self, batch: SinkBatch) -> None:
            iv = self.interval
            for item in batch:
                v = item.value
                vol = v["volume"]
                vwap = v["notional"] / vol if vol > 0 else v["close"]
                candles.append(
                    PeerCandle(
                        item.key,
                        iv,
                        v["start"] * MS,
                        v["open"],
                        v["high"],
                        v["low"],
                        v["close"],
                        vol,
                        vwap,
                        v["trades"],
                    )
                )

    app = Application(
        broker_address=servers,
        consumer_group=f"bench-quix-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        state_dir=state_dir,
        use_changelog_topics=False,
        loglevel=None,
    )
    source = app.topic(
        topic,
        key_deserializer="str",
        value_deserializer="json",
        timestamp_extractor=lambda value, _headers, _ts, _type: value["ts_event"] // MS,
    )
    sdf = app.dataframe(source)
    marks: dict[str, float] = {}
    seen = 0

    def count(_value: Any) -> None:
        nonlocal seen
        seen += 1
        if seen == 1:
            marks["first"] = time.perf_counter()
        if seen >= total:
            app.stop()

    def fresh(value: dict[str, Any], state: Any) -> bool:
        tid = value["trade_id"]
        if tid <= state.get("last_id", -1):
            return False
        state.set("last_id", tid)
        return True

    sdf = sdf.update(count)
    sdf = sdf.filter(fresh, stateful=True)
    sdf["notional"] = sdf["price"] * sdf["size"]
    for interval in INTERVALS_S:
        window = sdf.tumbling_window(
            timedelta(seconds=interval), grace_ms=GRACE_MS, name=f"ohlcv-{interval}s"
        ).agg(
            open=Earliest("price"), high=Max("price"), low=Min("price"), close=Latest("price"),
            volume=Sum("size"), notional=Sum("notional"), trades=Count(),
        )  # fmt: skip
        window.final(closing_strategy="partition").sink(CandleSink(interval))
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        app.run()
    finally:
        for sig, handler in handlers.items():  # Application.run installs its own
            signal.signal(sig, handler)
    ended = time.perf_counter()
    if seen != total:
        raise RuntimeError(f"Quix processed {seen} of {total} messages")
    return total / (ended - marks["first"]), candles


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
                if msg.error() is not None:
                    continue
                seen += 1
                doc = decode(msg.value())
                part = msg.partition()
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
    raw = recent_messages(ticks, symbols, rate=event_rate)
    last: dict[str, Any] = {}
    with bench_broker("kafka") as server:  # Quix needs describe_configs: not on Tansu
        servers = server.bootstrap_servers
        total = fill_topic(servers, "bench", partitions, raw)

        def ours() -> float:
            rate, last["ticktape"] = run_ticktape(servers, "bench", total)
            return rate

        def theirs() -> float:
            with tempfile.TemporaryDirectory(prefix="ticktape-bench-quix-state-") as state:
                rate, last["peer"] = run_quix(servers, "bench", total, Path(state))
            return rate

        ticktape, peer = alternate(ours, theirs, repeats)  # in turns: the host's load drifts
        symbol_part, latest = partition_times(servers, "bench", partitions, total)
        version = broker_version(server)
    mine = from_ticktape(last["ticktape"])
    agreement = agree(mine, last["peer"], required=closed_by_quix(symbol_part, latest))
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
            "candles": {"ticktape": len(mine), "peer": len(last["peer"])},
            "agreement": msgspec.to_builtins(agreement) | {"ok": agreement.ok},
        },
    )
