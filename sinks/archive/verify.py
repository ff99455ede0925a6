"""``ticktape archive verify``: every archived row range is in the store exactly once.

For each event-log partition file (opened read-only, safe while the job runs):

* the units (``archive_units`` grouped by ``first_row``) tile the archived rows: no gap
  between units, no overlap; a ``planned`` unit is work in progress, not an error;
* every object of a verified unit is in the store with its recorded size and SHA-256
  (``missing``/``mismatched`` otherwise);
* a batch whose body is gone lies in a verified unit whose retention ran
  (``unverified_deletes`` otherwise: the one thing the protocol must never do);
* objects under the prefix for these partitions that no unit records are ``orphans``
  (objects named by another writer, another job or cluster process sharing the prefix,
  are not these files' business); an orphan whose rows overlap a verified unit puts
  rows in the store twice (``duplicates``);
* ``deep=True`` also reads the ``row`` column of every verified object: each unit's
  objects must hold each of its rows exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ticktape.sinks.archive.reader import KEY, ArchiveReader
from ticktape.sinks.base.sqlite import connect
from ticktape.sinks.objectstore.base import ObjectStore


class VerifyReport(msgspec.Struct):
    partitions: int = 0
    units: int = 0
    objects: int = 0
    rows: int = 0
    pending_units: int = 0
    missing: list[str] = msgspec.field(default_factory=list)
    mismatched: list[str] = msgspec.field(default_factory=list)
    orphans: list[str] = msgspec.field(default_factory=list)
    duplicates: list[str] = msgspec.field(default_factory=list)
    gaps: list[str] = msgspec.field(default_factory=list)
    overlaps: list[str] = msgspec.field(default_factory=list)
    unverified_deletes: list[str] = msgspec.field(default_factory=list)
    deep_errors: list[str] = msgspec.field(default_factory=list)
    #: the writer names of the checked files (objects of other writers are not checked)
    writers: list[str] = msgspec.field(default_factory=list)

    @property
    def ok(self) -> bool:
        problems = (self.missing, self.mismatched, self.orphans, self.duplicates, self.gaps, self.overlaps)
        return not any(problems) and not self.unverified_deletes and not self.deep_errors


_Object = tuple[str, str, int, int, str, int, str, int | None]  # key stream first last state size sha deleted


def _check_partition(
    store: ObjectStore, path: Path, report: VerifyReport, deep: bool
) -> tuple[int, dict[str, tuple[int, int]], list[tuple[int, int]]]:
    """Checks of one file; returns its partition, recorded keys and verified row ranges."""
    part = int(path.stem.split("-")[1])
    conn = connect(path, readonly=True)
    try:
        named = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'archive_writer'"
        ).fetchone()
        writer = conn.execute("SELECT name FROM archive_writer").fetchone() if named else None
        if writer is not None:
            report.writers.append(writer[0])
        objects: list[_Object] = conn.execute(
            "SELECT key, stream, first_row, last_row, state, size, sha256, deleted_at FROM archive_units"
            " ORDER BY first_row, key"
        ).fetchall()
        deleted = conn.execute(
            "SELECT id, first_row, rows FROM batches WHERE body IS NULL ORDER BY id"
        ).fetchall()
    finally:
        conn.close()
    units: dict[int, list[_Object]] = {}
    for obj in objects:
        units.setdefault(obj[2], []).append(obj)
    verified: list[tuple[int, int]] = []
    wiped: list[tuple[int, int]] = []
    expect = 0  # units tile the log from its first row
    for first, objs in sorted(units.items()):
        last = objs[0][3]
        if first > expect:
            report.gaps.append(f"part={part}: rows {expect}-{first - 1} are in no unit")
        elif first < expect:
            report.overlaps.append(f"part={part}: unit at row {first} overlaps the one before")
        expect = max(expect, last + 1)
        if any(o[4] != "verified" for o in objs):
            report.pending_units += 1
            continue
        report.units += 1
        report.rows += last - first + 1
        verified.append((first, last))
        if all(o[7] is not None for o in objs):
            wiped.append((first, last))
        for key, *_, size, sha, _deleted in objs:
            report.objects += 1
            info = store.head(key)
            if info is None:
                report.missing.append(key)
            elif (info.size, info.sha256) != (size, sha):
                report.mismatched.append(
                    f"{key}: store size {info.size} sha256 {info.sha256}, recorded {size} {sha}"
                )
        if deep:
            _deep(store, part, first, last, [o[0] for o in objs], report)
    for batch_id, first_row, rows in deleted:
        if not any(a <= first_row and first_row + rows - 1 <= b for a, b in wiped):
            report.unverified_deletes.append(f"part={part}: batch {batch_id} (rows {first_row}+{rows})")
    return part, {o[0]: (o[2], o[3]) for o in objects}, verified


def _deep(
    store: ObjectStore, part: int, first: int, last: int, keys: list[str], report: VerifyReport
) -> None:
    rows: list[pa.Array] = []
    for key in keys:
        if store.head(key) is not None:
            rows.append(
                pq.read_table(pa.BufferReader(store.get(key)), columns=["row"])["row"].combine_chunks()
            )
    got = np.sort(pa.concat_arrays(rows).to_numpy()) if rows else np.zeros(0, np.int64)
    if not np.array_equal(got, np.arange(first, last + 1)):
        report.deep_errors.append(
            f"part={part}: unit rows {first}-{last} hold {len(got)} rows, not each row once"
        )


def verify(store: ObjectStore, prefix: str, log_paths: Sequence[Path], *, deep: bool = False) -> VerifyReport:
    """Check the archive of the partitions ``log_paths`` (see the module docstring)."""
    report = VerifyReport(partitions=len(log_paths))
    recorded: dict[str, tuple[int, int]] = {}
    ranges: dict[int, list[tuple[int, int]]] = {}
    for path in log_paths:
        part, keys, verified = _check_partition(store, path, report, deep)
        recorded |= keys
        ranges[part] = verified
    ours = set(report.writers)
    for info in ArchiveReader(store, prefix).iter_keys():
        m = KEY.match(info.key)
        if m is None or int(m["part"]) not in ranges or info.key in recorded:
            continue
        if m["writer"] is not None and m["writer"] not in ours:  # another job's or process's file
            continue
        report.orphans.append(info.key)
        first, last = int(m["first"]), int(m["last"])
        if any(a <= last and first <= b for a, b in ranges[int(m["part"])]):
            report.duplicates.append(f"{info.key}: rows {first}-{last} are also in a verified unit")
    return report
