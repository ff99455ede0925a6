"""Prometheus metrics of the archive, labelled by event-log partition, and the
per-partition report of ``ticktape archive stats`` (:func:`partition_stats`).

Every :class:`~ticktape.sinks.archive.archiver.Archiver` of a process that shares a
:class:`~ticktape.infra.observability.metrics.RunStats` updates the same :class:`ArchiveMetrics`, registered once
in ``stats.collectors`` (so each metric family is exposed once). The scrape never
touches SQLite: passes push their numbers here; the backlog age is computed at scrape
time from the oldest pending batch's logged time.

======================================================  =======  ======================================
metric                                                  type     meaning
======================================================  =======  ======================================
ticktape_archive_backlog_rows                           gauge    rows logged but not archived yet
ticktape_archive_backlog_age_seconds                    gauge    age of the oldest unarchived batch
ticktape_archive_objects_total / _rows_total            counter  objects / rows archived and verified
ticktape_archive_bytes_total / _raw_bytes_total         counter  Parquet bytes / event-log body bytes
ticktape_archive_compression_ratio                      gauge    raw / Parquet bytes (cumulative)
ticktape_archive_failures_total                         counter  passes ended by a persistent failure
ticktape_archive_healthy                                gauge    0 after a failed pass, 1 after a good one
ticktape_archive_retries_total                          counter  store calls retried
ticktape_archive_verify_mismatches_total                counter  retention HEADs that did not match
ticktape_archive_deleted_batches_total                  counter  local bodies deleted by retention
ticktape_archive_last_run_timestamp_seconds             gauge    end of the last good pass
ticktape_archive_local_{raw,compressed}_bytes           gauge    retained bodies compressed in place
ticktape_archive_local_compression_ratio                gauge    raw / compressed (retained bodies)
======================================================  =======  ======================================
"""

from __future__ import annotations

import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from ticktape.infra.observability.metrics import RunStats
from ticktape.sinks.base.sqlite import connect
from ticktape.sinks.eventlog.compression import compression_stats

_COUNTERS = {
    "objects": "Archive objects written and verified.",
    "rows": "Event-log rows archived and verified.",
    "bytes": "Parquet bytes archived.",
    "raw_bytes": "Event-log body bytes archived.",
    "failures": "Archive passes ended by a persistent failure (data kept locally).",
    "retries": "Object-store calls retried after a transient error.",
    "verify_mismatches": "Retention checks that found an object missing or different.",
    "deleted_batches": "Local batch bodies deleted after verification and retention.",
}


class _Part:
    def __init__(self) -> None:
        self.counters = dict.fromkeys(_COUNTERS, 0)
        self.backlog_rows = 0
        self.oldest_logged: int | None = None
        self.healthy = 1
        self.last_run: float | None = None
        self.local: dict[str, float] = {}


class ArchiveMetrics:
    """Thread-safe counters of every archiver of one process (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.parts: dict[int, _Part] = {}

    def _part(self, partition: int) -> _Part:
        part = self.parts.get(partition)
        if part is None:
            part = self.parts[partition] = _Part()
        return part

    def add(self, partition: int, **counts: int) -> None:
        with self._lock:
            counters = self._part(partition).counters
            for name, n in counts.items():
                counters[name] += n

    def backlog(self, partition: int, rows: int, oldest_logged: int | None) -> None:
        with self._lock:
            part = self._part(partition)
            part.backlog_rows, part.oldest_logged = rows, oldest_logged

    def archived(self, partition: int, objects: int, rows: int, size: int, raw: int) -> None:
        self.add(partition, objects=objects, rows=rows, bytes=size, raw_bytes=raw)

    def failed(self, partition: int) -> None:
        with self._lock:
            part = self._part(partition)
            part.counters["failures"] += 1
            part.healthy = 0

    def ok(self, partition: int, now: int) -> None:
        with self._lock:
            part = self._part(partition)
            part.healthy = 1
            part.last_run = now / 1e9

    def retried(self, partition: int) -> None:
        self.add(partition, retries=1)

    def mismatch(self, partition: int) -> None:
        self.add(partition, verify_mismatches=1)

    def deleted(self, partition: int, batches: int) -> None:
        self.add(partition, deleted_batches=batches)

    def compression(self, partition: int, conn: sqlite3.Connection) -> None:
        stats = compression_stats(conn)
        with self._lock:
            self._part(partition).local = {
                "raw_bytes": stats["raw_bytes"],
                "compressed_bytes": stats["compressed_bytes"],
                "compression_ratio": stats["ratio"] or 0.0,
            }

    def value(self, partition: int, name: str) -> float:
        """One counter or gauge (tests, reports): a counter name, ``healthy`` or ``backlog_rows``."""
        with self._lock:
            part = self._part(partition)
            return part.counters[name] if name in part.counters else float(getattr(part, name))

    def collect(self) -> Iterable[Metric]:
        now = time.time()
        with self._lock:
            parts = {p: (dict(v.counters), v.backlog_rows, v.oldest_logged, v.healthy, v.last_run, dict(v.local))
                     for p, v in self.parts.items()}  # fmt: skip
        families: dict[str, Metric] = {
            name: CounterMetricFamily(f"ticktape_archive_{name}", doc, labels=["partition"])
            for name, doc in _COUNTERS.items()
        }
        gauges = {
            "backlog_rows": "Event-log rows not archived yet.",
            "backlog_age_seconds": "Age of the oldest unarchived batch (0 when none).",
            "compression_ratio": "Event-log body bytes per Parquet byte archived.",
            "healthy": "1 when the last archive pass succeeded, 0 after a persistent failure.",
            "last_run_timestamp_seconds": "Unix time of the last successful archive pass.",
            "local_raw_bytes": "Raw bytes of retained bodies compressed in place.",
            "local_compressed_bytes": "Compressed bytes of retained bodies compressed in place.",
            "local_compression_ratio": "Raw / compressed bytes of retained bodies.",
        }
        families |= {
            name: GaugeMetricFamily(f"ticktape_archive_{name}", doc, labels=["partition"])
            for name, doc in gauges.items()
        }
        for partition, (counters, rows, oldest, healthy, last_run, local) in sorted(parts.items()):
            label = [str(partition)]
            for name, n in counters.items():
                families[name].add_metric(label, n)  # type: ignore[attr-defined]
            ratio = counters["raw_bytes"] / counters["bytes"] if counters["bytes"] else 0.0
            age = max(now - oldest / 1e9, 0.0) if oldest is not None and rows else 0.0
            values = {"backlog_rows": rows, "backlog_age_seconds": age, "compression_ratio": ratio,
                      "healthy": healthy, "last_run_timestamp_seconds": last_run or 0.0}  # fmt: skip
            values |= {f"local_{k}": v for k, v in local.items()}
            for name, value in values.items():
                families[name].add_metric(label, value)  # type: ignore[attr-defined]
        yield from families.values()


_shared: weakref.WeakKeyDictionary[RunStats, ArchiveMetrics] = weakref.WeakKeyDictionary()
_shared_lock = threading.Lock()


def metrics_for(stats: RunStats | None) -> ArchiveMetrics:
    """The process's archive metrics for ``stats`` (registered in ``stats.collectors`` on
    first use); a private, unregistered instance when ``stats`` is None."""
    if stats is None:
        return ArchiveMetrics()
    with _shared_lock:
        metrics = _shared.get(stats)
        if metrics is None:
            metrics = _shared[stats] = ArchiveMetrics()
            stats.collectors.append(metrics.collect)
        return metrics


def partition_stats(path: Path, now: int | None = None) -> dict[str, Any]:
    """What is archived, pending and retained in one partition file (read-only)."""
    now = time.time_ns() if now is None else now
    conn = connect(path, readonly=True)
    try:
        rows = conn.execute("SELECT coalesce(sum(rows), 0), count(*) FROM batches").fetchone()
        try:
            units = conn.execute(
                "SELECT count(DISTINCT first_row), count(*), coalesce(sum(rows), 0), coalesce(sum(size), 0),"
                " coalesce(max(last_batch), 0), max(verified_at) FROM archive_units WHERE state = 'verified'"
            ).fetchone()
            raw = conn.execute(
                "SELECT coalesce(sum(r), 0) FROM (SELECT max(raw_bytes) AS r FROM archive_units"
                " WHERE state = 'verified' GROUP BY first_row)"
            ).fetchone()[0]
            planned = conn.execute(
                "SELECT count(DISTINCT first_row) FROM archive_units WHERE state = 'planned'"
            ).fetchone()[0]
            local = compression_stats(conn)
        except sqlite3.OperationalError:  # a file from before the archive: no tables yet
            units, raw, planned, local = (0, 0, 0, 0, 0, None), 0, 0, {}
        pending = conn.execute(
            "SELECT coalesce(sum(rows), 0), min(ts_logged) FROM batches WHERE id > ?", (units[4],)
        ).fetchone()
        deleted = conn.execute("SELECT count(*) FROM batches WHERE body IS NULL").fetchone()[0]
    finally:
        conn.close()
    return {
        "path": str(path),
        "rows": rows[0],
        "batches": rows[1],
        "units": units[0],
        "objects": units[1],
        "archived_rows": units[2],
        "archived_bytes": units[3],
        "raw_bytes": raw,
        "ratio": raw / units[3] if units[3] else None,
        "last_archived": units[5],
        "planned_units": planned,
        "pending_rows": pending[0],
        "pending_age_s": (now - pending[1]) / 1e9 if pending[1] is not None else None,
        "deleted_batches": deleted,
        "local_compression": local,
    }
