"""The batch loader's analytics store: Parquet files, written idempotently.

Layout under the output directory (``<batch>`` = :func:`batch_id` of the source files)::

    quotes/date=YYYY-MM-DD/part-<batch>.parquet     surviving records of that UTC date
    rejected/part-<batch>.parquet                   rejected rows, with reason and origin
    summary/daily_instrument/part-<batch>.parquet   per (date, instrument) of this load
    summary/daily_dealer/part-<batch>.parquet       per (date, dealer) of this load
    unmatched/part-<batch>.parquet                  ids not in the reference (if given)
    _loads/<batch>.json                             manifest: sources, files, report

Idempotence: the batch id is a hash of the *set* of source paths (resolved, sorted), so
loading the same files again rewrites exactly the same file names (each written to a
temporary name and renamed into place, so readers never see half a file) and then
deletes the files the previous load of that batch wrote but this one did not (a date
that is gone from a corrected file). Loading a different set of files adds files next to
the others; records of the same (date, instrument, dealer) in two batches are resolved
at query time by the ``v_quotes`` view (:mod:`ticktape.flows.loader.views`).

All files are zstd-compressed; dates are the hive partition (``date=...``), not a column.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

Ints = npt.NDArray[np.int64]
_EPOCH: Final = date(1970, 1, 1)
MANIFESTS: Final = "_loads"


def batch_id(paths: Iterable[Path]) -> str:
    """16 hex digits naming the set of source files (order and duplicates ignored)."""
    names = sorted({str(Path(p).resolve()) for p in paths})
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


def day_text(day: int) -> str:
    """``YYYY-MM-DD`` of a day number (days since 1970-01-01)."""
    return (_EPOCH + timedelta(days=int(day))).isoformat()


def write_parquet(path: Path, table: pa.Table) -> None:
    """Write ``table`` to ``path`` atomically (temporary file, then rename). Only the key
    columns are dictionary-encoded (trying it on every value column costs a third more
    CPU for a few percent of size)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        keys = [n for n in ("instrument", "id_type", "dealer", "source", "reason") if n in table.column_names]
        pq.write_table(table, tmp, compression="zstd", use_dictionary=keys)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


class Store:
    """The files of one batch in the store rooted at ``root``."""

    def __init__(self, root: Path, batch: str) -> None:
        self.root = root
        self.batch = batch
        self.written: list[str] = []
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="loader-write")
        self._pending: list[Any] = []

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)  # after an error too: no write outlives the load

    def part(self, *dirs: str) -> str:
        return "/".join([*dirs, f"part-{self.batch}.parquet"])

    def put(self, rel: str, table: pa.Table) -> None:
        """Write ``table`` as ``rel`` (in the background; :meth:`close` waits)."""
        self.written.append(rel)
        self._pending.append(self._pool.submit(write_parquet, self.root / rel, table))

    def put_by_date(self, prefix: str, table: pa.Table, day: Ints) -> list[str]:
        """Write the rows of ``table`` (sorted by ``day``) into one file per date."""
        edges = np.flatnonzero(np.diff(day)) + 1
        starts = [0, *edges.tolist()]
        ends = [*edges.tolist(), len(day)]
        dates = []
        for start, end in zip(starts, ends, strict=True):
            if end > start:
                dates.append(day_text(day[start]))
                self.put(self.part(prefix, f"date={dates[-1]}"), table.slice(start, end - start))
        return dates

    def finish(self) -> None:
        """Wait for the writes, then delete the files the previous load of this batch
        wrote that this one did not."""
        try:
            for future in self._pending:
                future.result()
        finally:
            self._pool.shutdown(wait=True)
        for rel in set(self._previous()) - set(self.written):
            stale = self.root / rel
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
            with contextlib.suppress(OSError):  # only if now empty
                stale.parent.rmdir()

    @property
    def manifest(self) -> Path:
        return self.root / MANIFESTS / f"{self.batch}.json"

    def _previous(self) -> Sequence[str]:
        try:
            files: list[str] = json.loads(self.manifest.read_text()).get("files", [])
        except (ValueError, OSError, AttributeError):
            return []
        return files

    def write_manifest(self, extra: dict[str, Any]) -> None:
        """Record this load (after :meth:`finish`): sources, files written, report."""
        path = self.manifest
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps({"batch": self.batch, "files": sorted(self.written), **extra}, indent=2))
        os.replace(tmp, path)


def _numeric(table: pa.Table, names: Sequence[str]) -> list[str]:
    return [n for n in names if pa.types.is_integer(table.schema.field(n).type) or pa.types.is_floating(table.schema.field(n).type)]  # fmt: skip


def daily_instrument(quotes: pa.Table, day: Ints, inst: Ints, values: Sequence[str]) -> pa.Table:
    """Per (date, instrument) of sorted survivors: dealers quoting, first/last time, and
    mean/min/max of each numeric value column (nulls ignored)."""
    n = quotes.num_rows
    change = np.ones(n, np.bool_)
    change[1:] = (day[1:] != day[:-1]) | (inst[1:] != inst[:-1])
    starts = np.flatnonzero(change)
    time = quotes.column("time").cast(pa.int64()).to_numpy()
    cols: dict[str, Any] = {
        "date": pa.array(day[starts].astype(np.int32)).cast(pa.date32()),
        "instrument": quotes.column("instrument").take(pa.array(starts)).cast(pa.string()),
        "dealers": np.diff(np.append(starts, n)),
        "first_time": pa.array(np.minimum.reduceat(time, starts) if n else time, pa.timestamp("ns", "UTC")),
        "last_time": pa.array(np.maximum.reduceat(time, starts) if n else time, pa.timestamp("ns", "UTC")),
    }
    for name in _numeric(quotes, values):
        col = quotes.column(name).cast(pa.float64())
        v = (col.fill_null(np.nan) if col.null_count else col).to_numpy()
        if n == 0:
            count, total, lo, hi = (np.zeros(0),) * 4
        elif col.null_count or np.isnan(v).any():
            seen = ~np.isnan(v)
            count = np.add.reduceat(seen.view(np.int8), starts, dtype=np.int64)
            total = np.add.reduceat(np.where(seen, v, 0.0), starts)
            lo, hi = np.fmin.reduceat(v, starts), np.fmax.reduceat(v, starts)
        else:  # the usual case: no nulls
            count, total = cols["dealers"], np.add.reduceat(v, starts)
            lo, hi = np.minimum.reduceat(v, starts), np.maximum.reduceat(v, starts)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = total / count
        empty = count == 0
        cols[f"{name}_mean"] = pa.array(mean, mask=empty)
        cols[f"{name}_min"] = pa.array(lo, mask=empty)
        cols[f"{name}_max"] = pa.array(hi, mask=empty)
    return pa.table(cols)


def daily_dealer(
    dealers: pa.Array, day: Ints, dealer: Ints, time: Ints, lost_day: Ints, lost_dealer: Ints
) -> pa.Table:
    """Per (date, dealer): instruments quoted (survivors), first/last time, and records
    superseded by a more recent one of the same (date, instrument, dealer), which always
    has a survivor on the same date."""
    first = int(day.min()) if len(day) else 0
    width = max(len(dealers), 1)
    key = (day - first) * width + dealer
    groups = int(key.max()) + 1 if len(key) else 0
    count = np.bincount(key, minlength=groups)
    lo = np.full(groups, np.iinfo(np.int64).max)
    hi = np.full(groups, np.iinfo(np.int64).min)
    np.minimum.at(lo, key, time)
    np.maximum.at(hi, key, time)
    lost = np.bincount((lost_day - first) * width + lost_dealer, minlength=groups)
    keep = np.flatnonzero(count > 0)
    return pa.table(
        {
            "date": pa.array((keep // width + first).astype(np.int32)).cast(pa.date32()),
            "dealer": dealers.take(pa.array(keep % width)),
            "instruments": count[keep],
            "first_time": pa.array(lo[keep], pa.timestamp("ns", "UTC")),
            "last_time": pa.array(hi[keep], pa.timestamp("ns", "UTC")),
            "superseded": lost[keep],
        }
    )
