"""The Parquet candle store: upsert by revision on read, partition pruning, pushdown."""

from __future__ import annotations

import random

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
