"""Orders from Kafka (a real Tansu broker) into the event log and projections: loaded with
`ticktape produce --orders`, a clean run, and a run killed with kill -9 three times and
resumed from recovery, whose outputs equal the clean run's."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import outputs
from tests.support.crashes import kill_mid_run
from tests.support.orders import order_messages, order_outputs, write_messages

pytestmark = pytest.mark.integration

CONFIG = """
[run]
data_dir = "{data}"
epoch_interval = "300ms"

[orders]
source = "kafka"
shards = 8
eventlog_partitions = 2
batch_size = 500

[orders.kafka]
bootstrap_servers = "{servers}"
topic = "{topic}"
end = "launch"

[metrics]
enabled = false
"""


def ticktape(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ticktape.flows.cli.main", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip


def test_orders_from_kafka_survive_kill_9_and_equal_a_clean_run(
    tmp_path: Path, kafka_broker, kafka_topic
) -> None:
    topic = kafka_topic(3)
    servers = kafka_broker.bootstrap_servers
    raws = order_messages(9000, seed=31, faults=0.05)
    path = write_messages(tmp_path / "orders.jsonl", raws)
    produced = ticktape("produce", "--orders", str(path), "--topic", topic, "--bootstrap", servers)
    out, err = produced.communicate(timeout=300)
    assert produced.returncode == 0, err.decode()
    assert f"{len(raws):,} delivered" in out.decode()

    def cfg(name: str) -> Path:
        file = tmp_path / f"{name}.toml"
        file.write_text(CONFIG.format(data=tmp_path / name, servers=servers, topic=topic))
        return file

    t0 = time.monotonic()
    clean = ticktape("orders", "run", "-c", str(cfg("clean")))
    out, err = clean.communicate(timeout=600)
    assert clean.returncode == 0, err.decode()
    assert "accounting balanced: True" in out.decode()
    clean_seconds = time.monotonic() - t0

    crash_cfg = cfg("crash")
    recovery = tmp_path / "recovery"
    rng = random.Random(int(os.environ.get("CRASH_SEED", "17")))
    proc, kills = kill_mid_run(
        lambda: ticktape("orders", "run", "-c", str(crash_cfg), "-r", str(recovery)), tmp_path / "crash" / "orders",
        clean_seconds, rng,
    )  # fmt: skip
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()
    assert kills == 3
    got, want = order_outputs(tmp_path / "crash"), order_outputs(tmp_path / "clean")
    assert got == want, outputs.diff_summary(got, want)
    assert len(want["events"]) > 30_000
    assert want["dead_letters"]
    assert len(want["projections"]["proj_orders"]) == 9000  # every order submitted, once


def test_sigterm_stops_the_orders_flow_gracefully_and_a_resume_completes_it(
    tmp_path: Path, kafka_broker, kafka_topic
) -> None:
    import signal

    from tests.support.crashes import wait_for_event_writes

    topic = kafka_topic(2)
    servers = kafka_broker.bootstrap_servers
    path = write_messages(tmp_path / "orders.jsonl", order_messages(4000, seed=41, faults=0.05))
    produced = ticktape("produce", "--orders", str(path), "--topic", topic, "--bootstrap", servers)
    assert produced.wait(timeout=300) == 0

    def cfg(name: str, end: str) -> Path:
        file = tmp_path / f"{name}-{end}.toml"
        file.write_text(
            CONFIG.format(data=tmp_path / name, servers=servers, topic=topic).replace(
                'end = "launch"', f'end = "{end}"'
            )
        )
        return file

    clean = ticktape("orders", "run", "-c", str(cfg("clean", "launch")))
    assert clean.wait(timeout=600) == 0
    recovery = tmp_path / "recovery"
    started = time.time()
    live = ticktape(
        "orders", "run", "-c", str(cfg("stopped", "none")), "-r", str(recovery)
    )  # never ends by itself
    wait_for_event_writes(tmp_path / "stopped" / "orders", started)
    os.killpg(live.pid, signal.SIGTERM)
    out, err = live.communicate(timeout=120)
    assert live.returncode == 0, err.decode()
    assert "accounting balanced: True" in out.decode()
    resumed = ticktape("orders", "run", "-c", str(cfg("stopped", "launch")), "-r", str(recovery))
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err.decode()
    got, want = order_outputs(tmp_path / "stopped"), order_outputs(tmp_path / "clean")
    assert got == want, outputs.diff_summary(got, want)
