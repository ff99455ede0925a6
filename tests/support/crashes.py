"""Crash helpers for the recovery tests: kill -9 a running job mid-run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def wait_for_event_writes(data_dir: Path, since: float, timeout: float = 120.0) -> None:
    """Block until the event log under ``data_dir`` was written after ``since``
    (``time.time()``): the job is past start-up and processing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in (data_dir / "events").rglob("*"):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            if path.is_file() and stat.st_size > 0 and stat.st_mtime > since:
                return
        time.sleep(0.02)
    raise AssertionError(f"no event-log writes under {data_dir} within {timeout}s")


def kill_mid_run(
    launch: Callable[[], subprocess.Popen[bytes]],
    data_dir: Path,
    clean_seconds: float,
    rng: random.Random,
    kills: int = 3,
) -> tuple[subprocess.Popen[bytes], int]:
    """Launch the job and kill -9 it mid-run (once it writes events, within 5-20% of a
    clean run's time, so the kills happen before it could end however fast the machine
    is), relaunching until it was killed ``kills`` times; returns the last launch (left
    running) and how many kills happened (fewer if a launch ended before its kill)."""
    done = 0
    while True:
        started = time.time()
        proc = launch()
        if done == kills:
            return proc, done
        wait_for_event_writes(data_dir, started)
        time.sleep(rng.uniform(0.05, 0.2) * clean_seconds)
        if proc.poll() is not None:
            return proc, done
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        done += 1
