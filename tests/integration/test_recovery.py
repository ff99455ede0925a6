"""Crash recovery: kill -9 the job at random moments, resume from recovery, and every
output equals a clean run's (no loss, no duplicates)."""

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


def start(cfg: Path, recovery: Path | None, *extra: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "ticktape.flows.cli.main", "run", "-c", str(cfg), *extra]
    if recovery is not None:
        cmd += ["-r", str(recovery)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def test_kill_9_three_times_then_resume_equals_a_clean_run(tmp_path):
    seconds = 200  # 200k trades of event time: several seconds of work per run
    clean_dir, crash_dir = tmp_path / "clean", tmp_path / "crash"
    t0 = time.monotonic()
    clean = start(write_config(tmp_path / "clean.toml", clean_dir, seconds), None)
    assert clean.wait(timeout=600) == 0, clean.stderr.read().decode() if clean.stderr else ""
    clean_seconds = time.monotonic() - t0

    cfg = write_config(tmp_path / "crash.toml", crash_dir, seconds)
    recovery = tmp_path / "recovery"
    rng = random.Random(int(os.environ.get("CRASH_SEED", "11")))
    proc, kills = kill_mid_run(lambda: start(cfg, recovery), crash_dir, clean_seconds, rng)
    rc = proc.wait(timeout=600)
    assert rc == 0, proc.stderr.read().decode() if proc.stderr else ""
    assert kills == 3  # the job was really killed mid-run three times
    got, want = outputs.all_outputs(crash_dir), outputs.all_outputs(clean_dir)
    assert got == want, outputs.diff_summary(got, want)
    assert len(want["events"]) > 150_000
    assert want["dead_letters"]
    assert want["candles"]
