"""The local Parquet candle store: ``<data_dir>/candles/interval=<s>/date=YYYY-MM-DD/*.parquet``.

Writes are append-only files (zstd, dictionary-encoded strings, row-group statistics);
the same candle may be written more than once (revisions, replays, restarts). Reads are
**upsert-by-revision**: for each ``(venue, symbol, interval, start)`` the reader returns the
highest revision; among equal revisions the one with more trades (a replay of a sub-range
recomputes its boundary windows from fewer trades and must not replace the complete
candle), then the latest ``ts_final``. Reads prune by the ``interval`` and ``date``
directories and push the symbol/time filter down to row groups.
"""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from ticktape.infra.observability.crashpoints import declare, reach
from ticktape.infra.observability.logs import get_logger
from ticktape.schemas.arrow import CANDLE_SCHEMA, TS, candles_to_table, table_to_candles
from ticktape.schemas.records import Candle
from ticktape.schemas.timeparse import ns_to_iso
from ticktape.sinks.base.files import fsync_dir

_DAY = 86_400_000_000_000
_PARTITIONING = ds.partitioning(pa.schema([("interval", pa.int32()), ("date", pa.string())]), flavor="hive")
_TMP = ".tmp"
log = get_logger("candles")
CRASH_WRITTEN = declare("candles.written", "a synced temporary file, not renamed yet")
CRASH_RENAMED = declare("candles.renamed", "the new candle file in place")
CRASH_COMPACTED = declare("candles.compacted", "a compacted file beside the files it replaces")


def _date(ns: int) -> str:
    return ns_to_iso(ns - ns % _DAY)[:10]


class CandleStore:
    """Read and append candles under ``root``."""

    def __init__(self, root: Path, *, compression_level: int = 3) -> None:
        self.root = root
        self.level = compression_level

    def append(self, candles: Sequence[Candle], writer: str = "") -> list[Path]:
        """Write ``candles`` as one file per (interval, date); returns the files. Each
        file appears whole or not at all (see the module docstring)."""
        groups: dict[tuple[int, str], list[Candle]] = defaultdict(list)
        for c in candles:
            groups[(c.interval, _date(c.start))].append(c)
        files = []
        for (interval, date), group in sorted(groups.items()):
            group.sort(key=lambda c: (c.venue, c.symbol, c.start, c.revision))
            directory = self.root / f"interval={interval}" / f"date={date}"
            files.append(
                self._write(directory, f"{writer or 'w'}-{uuid.uuid4().hex[:12]}", candles_to_table(group))
            )
        return files

    def _write(self, directory: Path, name: str, table: pa.Table) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name}.parquet"
        tmp = directory / f".{name}{_TMP}"  # hidden: no dataset discovery ever lists it
        with tmp.open("wb") as handle:
            pq.write_table(
                table, handle, compression="zstd", compression_level=self.level,
                use_dictionary=["venue", "symbol"], write_statistics=True,
            )  # fmt: skip
            handle.flush()
            os.fsync(handle.fileno())
        reach(CRASH_WRITTEN)
        tmp.replace(path)
        fsync_dir(directory)
        reach(CRASH_RENAMED)
        return path

    def clean_temporary(self, writer: str) -> int:
        """Remove temporary files ``writer`` left behind (a crash mid-write); returns how
        many. Only the writer that owns the name may call this (another writer's
        temporary file may be in use)."""
        if not self.root.is_dir():
            return 0
        removed = 0
        for pattern in (f".{writer}-*{_TMP}", f"{writer}-*{_TMP}"):  # the latter: older versions
            for tmp in self.root.glob(f"interval=*/date=*/{pattern}"):
                tmp.unlink(missing_ok=True)
                removed += 1
        return removed

    def read(
        self,
        *,
        symbol: str | None = None,
        venue: str | None = None,
        interval: int | None = None,
        since: int | None = None,
        until: int | None = None,
        all_revisions: bool = False,
    ) -> list[Candle]:
        """Candles (latest revision each unless ``all_revisions``) sorted by
        (venue, symbol, interval, start); ``since``/``until`` bound ``start`` (ns)."""
        table = self.read_table(symbol=symbol, venue=venue, interval=interval, since=since, until=until)
        if table is None:
            return []
        candles = table_to_candles(table)
        if not all_revisions:
            candles = _latest(candles)
        candles.sort(key=lambda c: (c.venue, c.symbol, c.interval, c.start, c.revision))
        return candles

    def read_table(
        self,
        *,
        symbol: str | None = None,
        venue: str | None = None,
        interval: int | None = None,
        since: int | None = None,
        until: int | None = None,
    ) -> pa.Table | None:
        """Every stored row (all revisions, any order) matching the filters, as an Arrow
        table of :data:`~ticktape.schemas.arrow.CANDLE_SCHEMA`; None without candle files
        (the backtester reads columns from it without building a record per candle)."""
        paths = self._paths(interval)
        if not paths:
            return None
        expr = None

        def both(e: ds.Expression) -> None:
            nonlocal expr
            expr = e if expr is None else expr & e

        if interval is not None:
            both(ds.field("interval") == interval)
        if symbol is not None:
            both(ds.field("symbol") == symbol)
        if venue is not None:
            both(ds.field("venue") == venue)
        if since is not None:
            both(ds.field("date") >= _date(since))
            both(ds.field("start") >= pa.scalar(since, type=TS))
        if until is not None:
            both(ds.field("date") <= _date(until))
            both(ds.field("start") < pa.scalar(until, type=TS))
        try:
            table: pa.Table = self._dataset(paths).to_table(filter=expr, columns=list(CANDLE_SCHEMA.names))
        except (pa.ArrowInvalid, OSError):  # a damaged file, or a compaction replaced files: list again
            paths = self._readable(self._paths(interval))
            table = self._dataset(paths).to_table(filter=expr, columns=list(CANDLE_SCHEMA.names))
        return table

    def files(self) -> list[Path]:
        """The candle files (never a temporary file)."""
        return [Path(p) for p in self._paths(None)]

    def _paths(self, interval: int | None) -> list[str]:
        base = self.root if interval is None else self.root / f"interval={interval}"
        if not base.is_dir():
            return []
        pattern = "date=*/*.parquet" if interval is not None else "interval=*/date=*/*.parquet"
        return sorted(str(p) for p in base.glob(pattern) if not p.name.startswith("."))

    def _dataset(self, paths: list[str]) -> ds.Dataset:
        return ds.dataset(
            paths,
            format="parquet",
            partitioning=_PARTITIONING,
            partition_base_dir=str(self.root),
            schema=CANDLE_SCHEMA.append(pa.field("date", pa.string())),
        )

    def _readable(self, paths: list[str]) -> list[str]:
        """``paths`` without the files that are not readable Parquet (warned about)."""
        good = []
        for path in paths:
            try:
                pq.read_metadata(path)
            except (pa.ArrowInvalid, OSError) as exc:
                log.warning("skipping unreadable candle file %s: %s", path, exc)
                continue
            good.append(path)
        return good

    def compact(self, *, interval: int | None = None) -> tuple[int, int]:
        """Rewrite each ``interval=/date=`` directory holding more than one file as one
        file holding each stored revision once (the copy :meth:`read` would pick among
        equal revisions); returns ``(files before, files after)``. Crash-safe: the
        compacted file is in place before the files it replaces are removed, and reading
        both gives the same candles. Safe beside a running writer (it removes only the
        files it read)."""
        before = after = 0
        by_dir: dict[Path, list[Path]] = defaultdict(list)
        for path in map(Path, self._paths(interval)):
            by_dir[path.parent].append(path)
        for directory, paths in sorted(by_dir.items()):
            before += len(paths)
            good = [Path(p) for p in self._readable([str(p) for p in paths])]
            if len(paths) == 1:
                after += 1
                continue
            table = self._dataset([str(p) for p in good]).to_table(columns=list(CANDLE_SCHEMA.names))
            latest = _latest(table_to_candles(table), by_revision=True)
            latest.sort(key=lambda c: (c.venue, c.symbol, c.start, c.revision))
            self._write(directory, f"compact-{uuid.uuid4().hex[:12]}", candles_to_table(latest))
            reach(CRASH_COMPACTED)
            for path in good:
                path.unlink(missing_ok=True)
            fsync_dir(directory)
            after += 1 + len(paths) - len(good)
        return before, after


def _latest(candles: list[Candle], *, by_revision: bool = False) -> list[Candle]:
    """The highest revision of each window (``by_revision``: of each window and
    revision); ties: more trades, then the later ``ts_final``."""
    best: dict[tuple[str, str, int, int, int], Candle] = {}
    for c in candles:
        key = (c.venue, c.symbol, c.interval, c.start, c.revision if by_revision else 0)
        cur = best.get(key)
        if cur is None or (c.revision, c.trades, c.ts_final) > (cur.revision, cur.trades, cur.ts_final):
            best[key] = c
    return list(best.values())
