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

import uuid
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from ticktape.schemas.arrow import CANDLE_SCHEMA, TS, candles_to_table, table_to_candles
from ticktape.schemas.records import Candle
from ticktape.schemas.timeparse import ns_to_iso

_DAY = 86_400_000_000_000
_PARTITIONING = ds.partitioning(pa.schema([("interval", pa.int32()), ("date", pa.string())]), flavor="hive")


def _date(ns: int) -> str:
    return ns_to_iso(ns - ns % _DAY)[:10]


class CandleStore:
    """Read and append candles under ``root``."""

    def __init__(self, root: Path, *, compression_level: int = 3) -> None:
        self.root = root
        self.level = compression_level

    def append(self, candles: Sequence[Candle], writer: str = "") -> list[Path]:
        """Write ``candles`` as one file per (interval, date); returns the files."""
        groups: dict[tuple[int, str], list[Candle]] = defaultdict(list)
        for c in candles:
            groups[(c.interval, _date(c.start))].append(c)
        files = []
        for (interval, date), group in sorted(groups.items()):
            group.sort(key=lambda c: (c.venue, c.symbol, c.start, c.revision))
            directory = self.root / f"interval={interval}" / f"date={date}"
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"{writer or 'w'}-{uuid.uuid4().hex[:12]}.parquet"
            tmp = path.with_suffix(".tmp")
            pq.write_table(
                candles_to_table(group), tmp, compression="zstd", compression_level=self.level,
                use_dictionary=["venue", "symbol"], write_statistics=True,
            )  # fmt: skip
            tmp.replace(path)  # readers never see a half-written file
            files.append(path)
        return files

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
            best: dict[tuple[str, str, int, int], Candle] = {}
            for c in candles:
                key = (c.venue, c.symbol, c.interval, c.start)
                cur = best.get(key)
                if cur is None or (c.revision, c.trades, c.ts_final) > (
                    cur.revision,
                    cur.trades,
                    cur.ts_final,
                ):
                    best[key] = c
            candles = list(best.values())
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
        table of :data:`~ticktape.schemas.arrow.CANDLE_SCHEMA`; None without a store."""
        if not self.root.is_dir():
            return None
        dataset = ds.dataset(
            self.root,
            format="parquet",
            partitioning=_PARTITIONING,
            schema=CANDLE_SCHEMA.append(pa.field("date", pa.string())),
        )
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
        return dataset.to_table(filter=expr, columns=list(CANDLE_SCHEMA.names))

    def files(self) -> list[Path]:
        return sorted(self.root.rglob("*.parquet")) if self.root.is_dir() else []
