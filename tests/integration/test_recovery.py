"""Crash recovery: kill -9 the job at random moments, resume from recovery, and every
output equals a clean run's (no loss, no duplicates)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import outputs
from tests.support.crashes import kill_mid_run, wait_for_event_writes

pytestmark = pytest.mark.integration

CONFIG = """
[run]
mode = "replay"
data_dir = "{data}"
epoch_interval = "300ms"
batch_size = 500

[source]
kind = "synthetic"

[source.synthetic]
symbols = 60
rate = 1000.0
duration = "{seconds}s"
partitions = 2
duplicate_rate = 0.01
out_of_order_rate = 0.01
gap_rate = 0.002
malformed_rate = 0.005

[metrics]
enabled = false
"""


def write_config(path: Path, data: Path, seconds: int) -> Path:
    path.write_text(CONFIG.format(data=data, seconds=seconds))
    return path


def start(
    cfg: Path,
    recovery: Path | None,
    *extra: str,
    stdout: int = subprocess.DEVNULL,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "ticktape.flows.cli.main", "run", "-c", str(cfg), *extra]
    if recovery is not None:
        cmd += ["-r", str(recovery)]
    return subprocess.Popen(
        cmd, stdout=stdout, stderr=subprocess.PIPE, start_new_session=True, env={**os.environ, **(env or {})}
    )


SECONDS = 200  # 200k trades of event time: several seconds of work per run


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """One uninterrupted run (shared by the tests of this module): its data dir and how
    long it took."""
    base = tmp_path_factory.mktemp("clean")
    t0 = time.monotonic()
    proc = start(write_config(base / "clean.toml", base / "data", SECONDS), None)
    assert proc.wait(timeout=600) == 0, proc.stderr.read().decode() if proc.stderr else ""
    return base / "data", time.monotonic() - t0


def assert_equals_clean(got_dir: Path, clean_dir: Path) -> None:
    got, want = outputs.all_outputs(got_dir), outputs.all_outputs(clean_dir)
    assert got == want, outputs.diff_summary(got, want)
    assert len(want["events"]) > 150_000
    assert want["dead_letters"]
    assert want["candles"]


def test_kill_9_three_times_then_resume_equals_a_clean_run(tmp_path, clean):
    clean_dir, clean_seconds = clean
    crash_dir = tmp_path / "crash"
    cfg = write_config(tmp_path / "crash.toml", crash_dir, SECONDS)
    recovery = tmp_path / "recovery"
    rng = random.Random(int(os.environ.get("CRASH_SEED", "11")))
    proc, kills = kill_mid_run(lambda: start(cfg, recovery), crash_dir, clean_seconds, rng)
    rc = proc.wait(timeout=600)
    assert rc == 0, proc.stderr.read().decode() if proc.stderr else ""
    assert kills == 3  # the job was really killed mid-run three times
    assert_equals_clean(crash_dir, clean_dir)


def test_signals_stop_gracefully_and_the_resumed_run_equals_a_clean_run(tmp_path, clean):
    """Issue 13 item 4: Ctrl-C printed ~110 lines of Rust panic, SIGTERM exited 143
    silently. Now: one signal stops reading, drains, flushes, snapshots, prints the
    summary, writes the report and exits 0; a second one stops at once (143)."""
    clean_dir, clean_seconds = clean
    data = tmp_path / "data"
    cfg = write_config(tmp_path / "stop.toml", data, SECONDS)
    recovery = tmp_path / "recovery"
    for signals, want_rc in (([signal.SIGINT], 0), ([signal.SIGTERM], 0), ([signal.SIGTERM] * 2, 143)):
        started = time.time()
        proc = start(cfg, recovery, stdout=subprocess.PIPE)
        wait_for_event_writes(data, started)
        time.sleep(0.1 * clean_seconds)
        os.killpg(proc.pid, signals[0])
        seen = b""
        if len(signals) > 1:  # the second signal must reach the drain: wait for the stop notice
            assert proc.stderr is not None
            while b"stopping - no more input" not in seen:
                line = proc.stderr.readline()
                assert line, "the job ended before it noticed the first signal"
                seen += line
            os.killpg(proc.pid, signals[1])
        out, err = proc.communicate(timeout=300)
        stdout, stderr = out.decode(), (seen + err).decode()
        name = signals[0].name
        assert proc.returncode == want_rc, stderr
        assert "Traceback" not in stderr
        assert "panicked" not in stderr
        if want_rc == 0:
            assert f"stopped by {name}" in stdout
            assert len(stderr.splitlines()) <= 3, stderr  # the stop notice, nothing else
            report = json.loads(
                max((data / "reports").glob("run-*.json"), key=lambda p: p.stat().st_mtime).read_text()
            )
            assert report["stopped_by"] == name
            assert report["accounting"]["balanced"]
            assert 0 < report["accounting"]["total"]["read"] < SECONDS * 1000
        else:
            assert "again: stopping at once" in stderr
    last = start(cfg, recovery)
    assert last.wait(timeout=600) == 0, last.stderr.read().decode() if last.stderr else ""
    assert_equals_clean(data, clean_dir)
