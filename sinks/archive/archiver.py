"""The archiver: event-log batches -> zstd Parquet objects, verified, then deleted locally.

One :class:`Archiver` per event-log partition file. A pass (docs/architecture.md, "The archive"):

1. **plan** - pick the oldest unarchived batches (a contiguous run, by the triggers), build
   their objects (:mod:`ticktape.sinks.archive.format`) and record one ``archive_units`` row per
   object, state ``planned``, in one transaction;
2. **put** each object with its SHA-256 (transient errors retried with backoff + jitter);
3. **head** each: size and SHA-256 must equal ours, else ``ArchiveError`` and nothing
   is marked;
4. **mark** - one transaction: the unit's objects ``verified`` (size and SHA-256 were
   recorded with the plan; the batches' ``archived_key``/``archived_at`` follow with the
   next rewrite of their rows, see :meth:`~ticktape.sinks.archive.units.UnitLog.mark`);
5. **retention** (later passes) - once ``retention`` has passed since the mark, HEAD again;
   if every object is there with its recorded size and SHA-256, set the bodies to NULL
   in one transaction (index rows stay); if not, the unit goes back to ``planned`` and
   is uploaded again from the bodies that were kept.

A crash before the plan commits leaves nothing; after it (before/after PUT, after HEAD)
it leaves a planned unit that the next pass redoes first: the same batches give the same
keys and rows, and a PUT replaces the object, so each key holds one object. After the
mark, bodies are kept until step 5. Nothing local is deleted unless verified.

A persistent failure (retries exhausted, a bad checksum) stops the pass with everything
kept locally, counts ``ticktape_archive_failures_total``, sets
``ticktape_archive_healthy`` to 0 and logs once per failure streak with the unit; the next
pass comes ``check_interval`` later. The partition's ``part-NNN.archive.lock`` (flock)
keeps an in-flow archiver and a one-off ``ticktape archive run`` apart.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import msgspec

from ticktape.infra.observability.crashpoints import declare, reach
from ticktape.infra.observability.logs import get_logger, operation
from ticktape.infra.observability.metrics import RunStats
from ticktape.schemas.errors import ArchiveError
from ticktape.sinks.archive import format as fmt
from ticktape.sinks.archive.config import ArchiveConfig, open_archive_store
from ticktape.sinks.archive.metrics import ArchiveMetrics, metrics_for
from ticktape.sinks.archive.units import Objects, Unit, UnitLog, partition_lock
from ticktape.sinks.eventlog.compression import compress_retained
from ticktape.sinks.objectstore.base import ObjectStore, sha256_of
from ticktape.sinks.objectstore.retry import call_with_retry

log = get_logger("archive")
T = TypeVar("T")
Fault = Callable[[str, str], None]
STEPS = ("before_put", "after_put", "after_head", "after_mark", "before_delete")
CRASH_POINTS = {
    step: declare(f"archive.{step}", f"an archive unit {step.replace('_', ' ')}") for step in STEPS
}


class PassResult(msgspec.Struct):
    """What one pass did; ``skipped`` when another archiver held the partition's lock."""

    units: int = 0
    rows: int = 0
    objects: int = 0
    bytes: int = 0
    deleted_batches: int = 0
    compressed_batches: int = 0
    skipped: bool = False
    error: str | None = None


class Archiver:
    """The protocol above for the partition file ``log_path`` (see the module docstring).

    ``fault(step, key)`` is called at each of :data:`STEPS` (tests raise there to crash);
    ``clock`` returns ns. :meth:`maybe_run` is the in-flow hook; :meth:`run_once` a pass.
    """

    def __init__(
        self,
        log_path: Path,
        partition_index: int,
        store: ObjectStore,
        cfg: ArchiveConfig,
        stats: RunStats | None = None,
        *,
        clock: Callable[[], int] = time.time_ns,
        fault: Fault | None = None,
        sleep: Callable[[float], None] = time.sleep,
        process_id: int = 0,
    ) -> None:
        self.path, self.partition, self.store, self.cfg = log_path, partition_index, store, cfg
        self.clock, self.fault, self.sleep = clock, fault, sleep
        self.metrics: ArchiveMetrics = metrics_for(stats)
        self.units = UnitLog(log_path, partition_index)
        #: this file's name in the keys (fixed at the first pass of the file)
        self.writer = self.units.writer(fmt.writer_name(cfg.job, process_id))
        self._next_at = 0
        self._next_compress = 0
        self._thread: threading.Thread | None = None
        self._failing = False
        self._doing = f"part={partition_index}"  # the unit in progress, for logs
        self.last: PassResult | None = None

    def close(self) -> None:
        """Wait for a running background pass, then close the connection."""
        if self._thread is not None:
            self._thread.join()
        self.units.close()

    def maybe_run(self, now: int | None = None) -> bool:
        """The in-flow hook: start a pass on a background thread if ``check_interval`` has
        passed since the last one began and none is running. Cheap; never blocks the
        caller (the event-log writer), never raises."""
        now = self.clock() if now is None else now
        if now < self._next_at or (self._thread is not None and self._thread.is_alive()):
            return False
        self._next_at = now + self.cfg.check_interval
        self._thread = threading.Thread(
            target=self._background, args=(now,), name=f"archiver-{self.partition}"
        )
        self._thread.daemon = True
        self._thread.start()
        return True

    def _background(self, now: int) -> None:
        try:
            self.run_once(now)
        except Exception:  # a bug must not kill the writer's process; counted and logged
            self.metrics.failed(self.partition)
            log.exception("archive pass of partition %d crashed; data kept locally", self.partition)

    def run_once(self, now: int | None = None, *, force: bool = False, wait: float = 0.0) -> PassResult:
        """One pass: finish planned units, archive what the triggers (or ``force``) call
        for, apply retention, compress retained bodies. A failure ends the pass and is
        reported in the result (see the module docstring), never raised."""
        now = self.clock() if now is None else now
        result = PassResult()
        with partition_lock(self.path, wait) as got:
            if not got:
                result.skipped = True
                return result
            try:
                self._doing = f"part={self.partition}"
                for unit in self.units.planned():
                    self._finish(unit, self._build(unit), now, result, redo=True)
                while (planned := self._plan(now, force)) is not None:
                    self._finish(*planned, now, result)
                self._retention(now, result)
                self._compress(now, result)
                if self._failing:
                    log.info("archive of partition %d recovered", self.partition)
                self._failing = False
                self.metrics.ok(self.partition, now)
            except (ArchiveError, sqlite3.Error, OSError) as exc:
                result.error = str(exc)
                self.metrics.failed(self.partition)
                if not self._failing:
                    log.error("archive of %s failed; data kept locally: %s", self._doing, exc)
                self._failing = True
            finally:
                self.metrics.backlog(self.partition, *self.units.unarchived())
        self.last = result
        return result

    # -- plan, put, head, mark -------------------------------------------------------------
    def _plan(self, now: int, force: bool) -> tuple[Unit, Objects] | None:
        """Pick and build the next unit if a trigger fires, and record it as planned."""
        cfg = self.cfg
        backlog = self.units.backlog()
        if not backlog.rows:
            return None
        logged, event = backlog.oldest_logged, backlog.oldest_event
        aged = force or (logged is not None and logged <= now - cfg.batch_age)
        aged = aged or (event is not None and event <= now - cfg.max_age)
        if not aged and backlog.rows < cfg.batch_rows:
            return None
        unit = self.units.pick(backlog.after, cfg.batch_rows)
        if unit is None or (unit.rows < cfg.batch_rows and not aged):
            return None
        objects = self._build(unit)
        self.units.record(unit, objects, now)
        return unit, objects

    def _build(self, unit: Unit) -> Objects:
        """The unit's objects, from its batches (deterministic: same keys, same rows)."""
        cfg = self.cfg
        out: Objects = {}
        for part in fmt.build_parts(self.units.batches(unit)):
            key = fmt.object_key(
                cfg.prefix, part.stream, part.hour, self.partition, unit.first_row, unit.last_row, self.writer
            )
            data = fmt.write_parquet(part, level=cfg.zstd_level, row_group_rows=cfg.row_group_rows)
            out[key] = (part.stream, part.table.num_rows, data, sha256_of(data))
        return out

    def _call(self, fn: Callable[[], T], what: str) -> T:
        return call_with_retry(
            fn,
            self.cfg.retry,
            what=what,
            sleep=self.sleep,
            on_retry=lambda *_: self.metrics.retried(self.partition),
        )

    def _step(self, step: str, key: str) -> None:
        reach(CRASH_POINTS[step])
        if self.fault is not None:
            self.fault(step, key)

    def _finish(
        self, unit: Unit, objects: Objects, now: int, result: PassResult, *, redo: bool = False
    ) -> None:
        """PUT, HEAD-verify and mark one planned unit."""
        self._doing = f"part={self.partition} rows={unit.first_row}-{unit.last_row} ({min(objects)})"
        with operation(f"archive {self._doing}"):
            if redo:  # left planned by a crash: same batches, same keys and rows
                for key, _, _ in self.units.keys(unit):
                    if key not in objects:  # planned by other code and never marked: unreferenced
                        self._call(partial(self.store.delete, key), f"delete {key}")
                self.units.record(unit, objects, now)
            for key, (_, _, data, sha) in objects.items():
                self._step("before_put", key)
                self._call(partial(self.store.put, key, data, sha), f"put {key}")
                self._step("after_put", key)
            for key, (_, _, data, sha) in objects.items():
                info = self._call(partial(self.store.head, key), f"head {key}")
                want = (len(data), sha)
                if info is None or (info.size, info.sha256) != want:
                    raise ArchiveError(f"{key}: store has {info}, expected size {want[0]} sha256 {want[1]}")
                self._step("after_head", key)
            raw = self.units.mark(unit, now)
            self._step("after_mark", min(objects))
        size = sum(len(o[2]) for o in objects.values())
        self.metrics.archived(self.partition, len(objects), unit.rows, size, raw)
        log.debug("archived %d rows of partition %d as %d objects", unit.rows, self.partition, len(objects))
        result.units += 1
        result.rows += unit.rows
        result.objects += len(objects)
        result.bytes += size

    # -- retention and compression --------------------------------------------------------
    def _retention(self, now: int, result: PassResult) -> None:
        """Delete bodies of units verified ``retention`` ago, after a fresh HEAD of each
        object matches what was recorded; otherwise archive the unit again."""
        for unit in self.units.retained(now - self.cfg.retention):
            objects = self.units.keys(unit)
            for key, size, sha in objects:
                info = self._call(partial(self.store.head, key), f"head {key}")
                if info is None or (info.size, info.sha256) != (size, sha):
                    log.error(
                        "%s: store has %s, recorded size %d sha256 %s; archiving again", key, info, size, sha
                    )
                    self.units.replan(unit)
                    self.metrics.mismatch(self.partition)
                    break
            else:
                self._step("before_delete", objects[0][0])
                deleted = self.units.delete_bodies(unit, now)
                result.deleted_batches += deleted
                self.metrics.deleted(self.partition, deleted)

    def _compress(self, now: int, result: PassResult) -> None:
        cfg = self.cfg
        if not cfg.compress_retained or now < self._next_compress:
            return
        self._next_compress = now + cfg.compress_interval
        run = compress_retained(
            self.units.db,
            codec=cfg.retained_codec,
            level=cfg.retained_level,
            min_gain=cfg.dictionary_min_gain,
            older_than=now - cfg.compress_after,
            now=now,
        )
        result.compressed_batches += run.batches
        self.metrics.compression(self.partition, self.units.db)


def archive_all(
    data_dir: Path,
    cfg: ArchiveConfig,
    *,
    store: ObjectStore | None = None,
    force: bool = False,
    wait: float = 60.0,
    stats: RunStats | None = None,
    progress: Callable[[int, PassResult], None] | None = None,
    log: str = "events",
) -> dict[int, PassResult]:
    """One pass over every partition of ``<data_dir>/<log>`` (``ticktape archive run``;
    ``log = "market"``: the market log of venue feeds, whose ``cfg.prefix`` must then be
    its own, ``<prefix>/market``), each under its partition lock (waiting up to ``wait``
    s for an in-flow pass)."""
    store = store or open_archive_store(cfg)
    results: dict[int, PassResult] = {}
    for path in sorted((data_dir / log).glob("part-*.sqlite")):
        index = int(path.stem.split("-")[1])
        archiver = Archiver(path, index, store, cfg, stats)
        try:
            results[index] = archiver.run_once(force=force, wait=wait)
        finally:
            archiver.close()
        if progress is not None:
            progress(index, results[index])
    return results


def make_archiver(
    log_path: Path,
    partition_index: int,
    cfg: ArchiveConfig,
    stats: RunStats | None = None,
    process_id: int = 0,
) -> Archiver:
    """The in-flow archiver of one event-log partition (the event-log sink's maintainer);
    ``process_id``: this process's id in its cluster (part of the writer's name)."""
    return Archiver(log_path, partition_index, open_archive_store(cfg), cfg, stats, process_id=process_id)
