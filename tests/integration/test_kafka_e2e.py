"""The job on Kafka end to end (real Apache Kafka broker): bounded runs, replays from an offset
and a time, kill -9 crash recovery, 2-process clusters, dead letters on the DLQ topic."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.support import outputs, records
from tests.support.crashes import kill_mid_run
from tests.support.data import TRADES
from ticktape.connectors.kafka.produce import ensure_topic, produce_messages
from ticktape.connectors.kafka.source import end_offsets_at
from ticktape.infra.devstack.ports import free_port
from ticktape.schemas.history import open_history

pytestmark = pytest.mark.integration
T0 = time.time_ns()


def messages(n: int, symbols: int = 40, malformed_every: int = 997) -> list[tuple[bytes, bytes]]:
    """Generic JSON ticks stamped near now (the broker time is the clock reference), with
    a few malformed messages and duplicates."""
    rng = random.Random(3)
    out: list[tuple[bytes, bytes]] = []
    ids = [0] * symbols
    prices = [100.0 + k for k in range(symbols)]
    for i in range(n):
        k = rng.randrange(symbols)
        sym = f"K{k:03d}-USD"
        if i % malformed_every == 500:
            out.append((sym.encode(), b'{"venue": "kx", "symbol": "' + sym.encode() + b'", "price": '))
            continue
        if i % 211 == 7 and out:
            out.append(out[-1])
            continue
        ids[k] += 1
        prices[k] *= 1 + rng.gauss(0, 0.0005)
        raw = records.trade_message(
            venue="kx", symbol=sym, price=round(prices[k], 6), size=1.0 + i % 7, side="buy" if i % 2 else "sell",
            trade_id=ids[k], ts_event=T0 + i * 1_000,
        )  # fmt: skip
        out.append((sym.encode(), raw))
    return out


@pytest.fixture(scope="module")
def topic(kafka_broker) -> dict[str, object]:
    name = f"ticks-{random.randrange(1 << 30)}"
    servers = kafka_broker.bootstrap_servers
    ensure_topic(servers, name, 3, {})
    msgs = messages(60_000)
    report = produce_messages(servers, name, msgs)
    assert report.failed == 0
    return {"name": name, "servers": servers, "count": len(msgs)}


def config(
    path: Path, data: Path, topic: dict[str, object], *, kafka_out: str = "", **source: object
) -> Path:
    src = {"bootstrap_servers": topic["servers"], "topic": topic["name"], "end": "launch", **source}
    doc = {
        "run": {"mode": "replay", "data_dir": str(data), "epoch_interval": "300ms", "batch_size": 1000},
        "source": {"kind": "kafka", "kafka": src},
        "validation": {"max_past": "1h"},
        "metrics": {"enabled": False},
    }
    if kafka_out:
        doc["outputs"] = {
            "kafka": {
                "enabled": True,
                "bootstrap_servers": topic["servers"],
                "prices_topic": f"{kafka_out}.prices",
                "candles_topic": "",
                "events_topic": "",
                "dead_letters_topic": f"{kafka_out}.dlq",
                "topic_partitions": 2,
            }
        }
    path.write_text(_toml(doc))
    return path


def _toml(doc: dict[str, object], prefix: str = "") -> str:
    lines, tables = [], []
    for key, value in doc.items():
        if isinstance(value, dict) and not (prefix.endswith("kafka") and key.endswith("_offsets")):
            tables.append((key, value))
        else:
            lines.append(
                f"{key} = {json.dumps(value) if not isinstance(value, bool) else str(value).lower()}"
            )
    out = "\n".join(lines) + "\n"
    for key, value in tables:
        name = f"{prefix}.{key}" if prefix else key
        out += f"\n[{name}]\n" + _toml(value, name)  # type: ignore[arg-type]
    return out


def cli(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ticktape.flows.cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen[bytes], timeout: float = 300) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode()[-3000:]
    return out.decode()


def consume_all(servers: str, topic: str) -> list[tuple[bytes | None, bytes, dict[str, bytes]]]:
    consumer = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": "t",
            "enable.partition.eof": True,
            "fetch.queue.backoff.ms": 10,
        }
    )
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    parts = [TopicPartition(topic, p, 0) for p in meta.partitions]
    consumer.assign(parts)
    eof: set[int] = set()
    out = []
    deadline = time.monotonic() + 30
    while len(eof) < len(parts) and time.monotonic() < deadline:
        for msg in consumer.consume(1000, 0.5):
            if msg.error():
                eof.add(msg.partition())
                continue
            out.append((msg.key(), msg.value(), dict(msg.headers() or [])))
    consumer.close()
    return out


def test_bounded_run_stops_by_itself_and_dead_letters_reach_the_dlq_topic(tmp_path, topic):
    out = finish(
        cli("run", "-c", str(config(tmp_path / "c.toml", tmp_path / "d", topic, kafka_out="bounded")))
    )
    assert "accounting balanced: True" in out
    got = outputs.all_outputs(tmp_path / "d")
    dead = [json.loads(line) for line in got["dead_letters"]]
    assert dead
    assert all(d["code"] == "DECODE_ERROR" and d["src"].startswith(f"{topic['name']}/") for d in dead)
    dlq = consume_all(str(topic["servers"]), "bounded.dlq")
    assert sorted(json.loads(v)["dl_id"] for _, v, _ in dlq) == sorted(d["dl_id"] for d in dead)
    prices = consume_all(str(topic["servers"]), "bounded.prices")
    ids = [h["event_id"] for _, _, h in prices]
    assert len(ids) == len(set(ids))
    assert len(ids) == sum(1 for e in got["events"] if e[1] == "PriceUpdated")


def test_replay_from_offsets_and_time_reproduces_the_range(tmp_path, topic):
    live = tmp_path / "live"
    finish(cli("run", "-c", str(config(tmp_path / "live.toml", live, topic))))
    before = outputs.all_outputs(live)
    # replaying a range into the same outputs changes nothing (idempotent sinks)
    cfg = config(tmp_path / "replay.toml", live, topic)
    out = finish(cli("replay", "-c", str(cfg), "--from-offset", "0:5000,1:5000,2:5000"))
    assert "replay" in out
    assert "accounting balanced: True" in out
    assert outputs.all_outputs(live) == before
    # replaying from offsets into a fresh directory yields exactly the range's trades
    ends = end_offsets_at(str(topic["servers"]), str(topic["name"]))
    lo, hi = {p: e // 4 for p, e in ends.items()}, {p: e // 2 for p, e in ends.items()}
    fresh = tmp_path / "fresh"
    spec = lambda d: ",".join(f"{p}:{o}" for p, o in sorted(d.items()))  # noqa: E731
    finish(
        cli(
            "replay",
            "-c",
            str(config(tmp_path / "fresh.toml", fresh, topic)),
            "--from-offset",
            spec(lo),
            "--to-offset",
            spec(hi),
        )
    )

    def in_range(causation: str) -> bool:
        src, offset = causation.rsplit("@", 1)
        p = int(src.rsplit("/", 1)[1])
        return lo[p] <= int(offset) < hi[p]

    want = {e[0] for e in before["events"] if e[1] == "PriceUpdated" and in_range(e[6])}
    got = {e[0] for e in outputs.events(fresh) if e[1] == "PriceUpdated"}
    assert got == want
    assert len(got) > 10_000
    # from a time: the broker time of message k of a partition starts the replay there
    timed = tmp_path / "timed"
    first = min(e[4] for e in before["events"] if e[1] == "PriceUpdated")
    finish(cli("replay", "-c", str(config(tmp_path / "timed.toml", timed, topic)), "--from-time", str(first)))
    assert {e[0] for e in outputs.events(timed) if e[1] == "PriceUpdated"} == {
        e[0] for e in before["events"] if e[1] == "PriceUpdated"
    }


def test_kill_9_three_times_with_kafka_equals_a_clean_run(tmp_path, topic):
    clean = tmp_path / "clean"
    t0 = time.monotonic()
    finish(cli("run", "-c", str(config(tmp_path / "clean.toml", clean, topic, kafka_out="clean"))))
    clean_seconds = time.monotonic() - t0
    cfg = config(tmp_path / "crash.toml", tmp_path / "crash", topic, kafka_out="crash")
    recovery = tmp_path / "recovery"
    rng = random.Random(int(os.environ.get("CRASH_SEED", "5")))
    proc, kills = kill_mid_run(
        lambda: cli("run", "-c", str(cfg), "-r", str(recovery)), tmp_path / "crash", clean_seconds, rng
    )
    finish(proc)
    assert kills == 3
    got, want = outputs.all_outputs(tmp_path / "crash"), outputs.all_outputs(clean)
    assert got == want, outputs.diff_summary(got, want)

    # the Kafka output is at-least-once: deduplicated by the event_id header it is identical
    def by_id(
        rows: list[tuple[bytes | None, bytes, dict[str, bytes]]],
    ) -> dict[bytes, tuple[bytes | None, dict[str, object]]]:
        docs = {}
        for key, value, headers in rows:
            doc = json.loads(value)
            for wall in ("ts_recv", "ts_proc"):
                doc.pop(wall, None)
            docs[headers["event_id"]] = (key, doc)
        return docs

    servers = str(topic["servers"])
    assert by_id(consume_all(servers, "crash.prices")) == by_id(consume_all(servers, "clean.prices"))


def test_two_process_cluster_on_kafka_equals_one_process(tmp_path, topic):
    single = tmp_path / "single"
    finish(cli("run", "-c", str(config(tmp_path / "single.toml", single, topic))))
    cfg = config(tmp_path / "cluster.toml", tmp_path / "cluster", topic)
    addresses = ",".join(f"127.0.0.1:{free_port()}" for _ in range(2))
    procs = [cli("run", "-c", str(cfg), "-i", str(i), "-a", addresses) for i in range(2)]
    for proc in procs:
        finish(proc)
    got, want = outputs.all_outputs(tmp_path / "cluster"), outputs.all_outputs(single)
    assert got == want, outputs.diff_summary(got, want)


def test_history_through_kafka_as_documented_equals_reading_the_file(tmp_path, kafka_broker, kafka_topic):
    """Issue 13 item 10: after `ticktape produce --file`, a replay dead-lettered every row
    as TS_PAST (max_past judged years-old trades by the time they were produced). The
    history rows carry a header now: replayed through Kafka they give exactly the
    candles of reading the file, and a live feed's trade as old is still refused."""
    servers = kafka_broker.bootstrap_servers
    name = kafka_topic(2)
    history = TRADES / "XRP_ETH-trades.json.gz"
    finish(cli("produce", "--bootstrap", servers, "--topic", name, "--file", str(history)))
    rows, decode = open_history(history)
    first_ts = decode(next(rows)[1], "x", 0, 0, 0)[0].ts_event
    stale = {"venue": "binance", "symbol": "XRP-ETH", "price": 1.0, "size": 1.0, "side": "buy",
             "trade_id": "live-1", "ts_event": first_ts}  # fmt: skip
    produce_messages(servers, name, [(b"XRP-ETH", msgspec.json.encode(stale))])  # a live feed: no header

    via_kafka, via_file = tmp_path / "kafka", tmp_path / "file"
    topic = {"servers": servers, "name": name}
    kafka_cfg = config(tmp_path / "kafka.toml", via_kafka, topic)
    kafka_cfg.write_text(kafka_cfg.read_text().replace('max_past = "1h"', 'max_past = "10m"'))  # the default
    out = finish(cli("replay", "-c", str(kafka_cfg)))
    assert "accounting balanced: True" in out
    file_cfg = tmp_path / "file.toml"
    file_cfg.write_text(
        _toml({
            "run": {"mode": "replay", "data_dir": str(via_file)},
            "source": {"kind": "file", "file": {"paths": [str(history)]}},
            "metrics": {"enabled": False},
        })
    )  # fmt: skip
    finish(cli("run", "-c", str(file_cfg)))

    dead = [json.loads(line) for line in outputs.dead_letters(via_kafka)]
    assert [(d["code"], json.loads(d["raw"])["trade_id"]) for d in dead] == [("TS_PAST", "live-1")]
    got, want = outputs.candles(via_kafka), outputs.candles(via_file)
    assert got == want
    assert len(want) > 100
    report = json.loads(next((via_kafka / "reports").glob("run-*.json")).read_text())
    assert report["accounting"]["total"]["accepted"] == sum(1 for _ in open_history(history)[0])
