"""Shared bench machinery: repetitions, medians, results."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import msgspec

from ticktape.connectors.synthetic.feed import DEFAULT_START_NS, SyntheticGenerator


class Measurement(msgspec.Struct):
    """One scenario: ``value`` (higher is better, e.g. ticks/s) for ticktape and its
    baseline, medians over ``repeat`` runs after a warm-up; ``extra`` holds details such
    as latency percentiles."""

    scenario: str
    unit: str
    value: float
    baseline_name: str
    baseline: float
    samples: list[float]
    baseline_samples: list[float]
    extra: dict[str, Any] = {}

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else 0.0


def repeat(fn: Callable[[], float], times: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    return [fn() for _ in range(times)]


def alternate(
    first: Callable[[], float], second: Callable[[], float], times: int, warmup: int = 1
) -> tuple[list[float], list[float]]:
    """Like :func:`repeat` for two sides run in turns (first, second, first, ...), so a
    drift in the host's load falls on both alike."""
    for _ in range(warmup):
        first()
        second()
    pairs = [(first(), second()) for _ in range(times)]
    return [a for a, _ in pairs], [b for _, b in pairs]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of ``(x, y)`` points (0 with fewer than two distinct x)."""
    try:
        return statistics.linear_regression([x for x, _ in points], [y for _, y in points]).slope
    except statistics.StatisticsError:
        return 0.0


def synthetic_messages(
    n: int,
    symbols: int,
    partitions: int = 1,
    seed: int = 7,
    start_ns: int = DEFAULT_START_NS,
    rate: float = 100_000.0,
) -> dict[str, list[bytes]]:
    """``n`` generic-JSON trades over ``symbols`` symbols (``rate`` trades per second of
    event time from ``start_ns``, 100k by default), split into partitions."""
    out: dict[str, list[bytes]] = {}
    for p in range(partitions):
        gen = SyntheticGenerator(p, partitions, symbols, rate=rate, total=n, seed=seed, start_ns=start_ns)
        out[f"bench/{p}"] = gen.take(n)
    return out


#: Packages whose versions go into every result file.
VERSIONED = ("ticktape", "bytewax", "pyarrow", "msgspec", "numpy", "zstandard")


def _proc_field(path: str, key: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name.strip() == key:
                    return value.strip()
    except OSError:
        pass
    return "-"


def machine() -> dict[str, Any]:
    """Where and when a bench ran: CPU model, cores, memory, load, Python and versions."""
    versions = {}
    for pkg in VERSIONED:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "-"
    return {
        "cpu_model": _proc_field("/proc/cpuinfo", "model name"),
        "cpu_mhz": _proc_field("/proc/cpuinfo", "cpu MHz"),
        "cores": os.cpu_count() or 0,
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_total": _proc_field("/proc/meminfo", "MemTotal"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "os": platform.platform(),
        "machine": platform.machine(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "versions": versions,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "when": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }
