"""The Parquet candle store: upsert by revision on read, partition pruning, pushdown."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow.parquet as pq

from tests.support import records
from ticktape.schemas.records import Candle
from ticktape.sinks.candles.store import CandleStore

DAY = 86_400_000_000_000
MIN = 60_000_000_000
T0 = 1_704_067_200_000_000_000  # 2024-01-01


def candle(
    symbol: str, start: int, revision: int, close: float, interval: int = 60, venue: str = "v"
) -> Candle:
    return records.candle(
        venue=venue, symbol=symbol, interval=interval, start=start, end=start + interval * 1_000_000_000,
        open=1.0, high=2.0, low=0.5, close=close, volume=3.0, notional=4.5, vwap=1.5, trades=2, buy_volume=1.0,
        sell_volume=2.0, first_trade_id="1", last_trade_id="2", revision=revision, ts_final=1_000 + revision,
    )  # fmt: skip


def test_reader_returns_the_highest_revision_whatever_the_file_order(tmp_path):
    store = CandleStore(tmp_path)
    versions = [candle("A-USD", T0 + k * MIN, rev, close=10 * k + rev) for k in range(5) for rev in range(3)]
    random.Random(4).shuffle(versions)
    for i in range(0, len(versions), 4):  # several files, revisions spread over them
        store.append(versions[i : i + 4], writer=f"w{i}")
    got = store.read(symbol="A-USD", interval=60)
    assert [(c.start, c.revision, c.close) for c in got] == [(T0 + k * MIN, 2, 10 * k + 2) for k in range(5)]
    assert len(store.read(symbol="A-USD", interval=60, all_revisions=True)) == 15
    store.append([candle("A-USD", T0, 2, close=999.0)])  # a replay of the same revision: no duplicate
    assert len(store.read(symbol="A-USD", interval=60)) == 5


def test_files_are_zstd_partitioned_by_interval_and_date_with_statistics(tmp_path):
    store = CandleStore(tmp_path)
    files = store.append([candle("A-USD", T0, 0, 1.0), candle("B-USD", T0 + DAY, 0, 1.0, interval=300)])
    rel = sorted(str(f.relative_to(tmp_path).parent) for f in files)
    assert rel == ["interval=300/date=2024-01-02", "interval=60/date=2024-01-01"]
    meta = pq.ParquetFile(files[0]).metadata
    col = meta.row_group(0).column(1)
    assert col.compression == "ZSTD"
    assert col.statistics is not None
    assert col.statistics.has_min_max


def test_filters_prune_dates_and_push_down_symbol_and_time(tmp_path):
    store = CandleStore(tmp_path)
    store.append(
        [
            candle(s, T0 + d * DAY + k * MIN, 0, 1.0)
            for s in ("A-USD", "B-USD")
            for d in range(3)
            for k in range(3)
        ]
    )
    # a corrupt file in a date that the query excludes: pruning must keep the reader away
    (tmp_path / "interval=60" / "date=2024-01-03" / "zz-corrupt.parquet").write_bytes(b"not parquet")
    got = store.read(symbol="B-USD", interval=60, since=T0 + DAY, until=T0 + DAY + 2 * MIN)
    assert [(c.symbol, c.start) for c in got] == [("B-USD", T0 + DAY), ("B-USD", T0 + DAY + MIN)]
    assert store.read(symbol="C-USD", interval=60, since=T0, until=T0 + DAY) == []


def test_hostile_symbols_stay_data_not_paths(tmp_path):
    store = CandleStore(tmp_path / "store")
    store.append([candle("../../etc", T0, 0, 1.0), candle("a/b\\c", T0, 0, 2.0)])
    assert all(p.is_relative_to(tmp_path / "store") for p in (tmp_path / "store").rglob("*"))
    assert {c.symbol for c in store.read(interval=60)} == {"../../etc", "a/b\\c"}


def test_a_write_killed_mid_file_leaves_the_store_readable_and_the_writer_cleans_up(tmp_path):
    """Issue 13 item 1: a kill -9 during a write left a 0-byte ``.tmp`` that every read
    (and so every restart, ``candles``, ``chart``) failed on."""
    store = CandleStore(tmp_path)
    store.append([candle("A-USD", T0, 0, 1.0)], writer="p000")
    day = tmp_path / "interval=60" / "date=2024-01-01"
    (day / "p000-0123456789ab.tmp").write_bytes(b"")  # what earlier versions left behind
    (day / ".p000-ba9876543210.tmp").write_bytes(b"PAR1")  # a half-written temporary file
    (day / "p001-000000000000.parquet").write_bytes(b"")  # a disk that lost a synced write
    assert [c.close for c in store.read(symbol="A-USD", interval=60)] == [1.0]
    assert [p.name for p in store.files()] == sorted(p.name for p in day.glob("*.parquet"))
    assert store.clean_temporary("p000") == 2
    assert sorted(p.name for p in day.iterdir()) == sorted(
        [store.files()[0].name, "p001-000000000000.parquet"]
    )
    assert store.clean_temporary("p000") == 0


def test_the_temporary_file_is_hidden_until_it_is_complete(tmp_path, monkeypatch):
    store = CandleStore(tmp_path)
    seen: list[list[str]] = []
    real_replace = Path.replace

    def replace(self: Path, target: Path) -> Path:  # the moment before the rename
        seen.append(sorted(p.name for p in self.parent.iterdir()))
        assert store.read() == []
        return real_replace(self, target)

    monkeypatch.setattr(Path, "replace", replace)
    (path,) = store.append([candle("A-USD", T0, 0, 1.0)], writer="p007")
    assert seen == [[f".{path.stem}.tmp"]]
    assert len(store.read()) == 1


def test_compaction_keeps_every_revision_once_and_reads_the_same(tmp_path):
    """Issue 13 item 14: reruns of the same input made the store grow without bound."""
    store = CandleStore(tmp_path)
    windows = [
        candle(s, T0 + k * MIN, rev, close=k + rev)
        for s in ("A-USD", "B-USD")
        for k in range(4)
        for rev in (0, 1)
    ]
    for _ in range(3):  # three reruns of the same input, plus a second day
        store.append(windows, writer="p000")
    store.append([candle("A-USD", T0 + DAY, 0, 5.0)], writer="p001")
    latest, every = store.read(), store.read(all_revisions=True)
    assert len(every) == 3 * len(windows) + 1
    assert store.compact() == (4, 2)
    assert store.read() == latest
    assert store.read(all_revisions=True) == sorted(
        {(c.venue, c.symbol, c.start, c.revision): c for c in every}.values(),
        key=lambda c: (c.venue, c.symbol, c.interval, c.start, c.revision),
    )
    assert len(store.read(all_revisions=True)) == len(windows) + 1
    assert store.compact() == (2, 2)  # nothing left to do
