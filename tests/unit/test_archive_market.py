"""The market log of venue feeds in the archive: quotes and L2 snapshots become typed
``quotes``/``books`` Parquet tables that give back every event byte for byte."""

from __future__ import annotations

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from ticktape.flows.steps.market import MarketBatch, MarketProcessor
from ticktape.schemas.records import BookSnapshot, Event, Quote
from ticktape.sinks.archive import format as fmt

S = 1_000_000_000
T0 = 1_704_067_200 * S


def market_events() -> list[Event]:
    quotes = [
        Quote(
            "binance",
            "BTC-USDT",
            100.0 + i,
            1.5,
            100.5 + i,
            2.0,
            T0 + i * S,
            T0 + i * S + 5,
            "ws:binance/0",
            7 + i,
            0,
            1000 + i,
        )
        for i in range(5)
    ]
    books = [
        BookSnapshot("binance", "BTC-USDT", T0 + 3 * S, 1003, [(100.0, 1.0), (99.5, 2.0)], [(100.5, 1.0)], T0, "ws:binance/0", 9, "interval"),
        BookSnapshot("kraken", "ETH-USD", T0 + 3601 * S, -1, [], [(2000.0, 0.5)], T0, "ws:kraken/0", 1, "resync"),
    ]  # fmt: skip
    out = MarketProcessor().process([MarketBatch(quotes, books, [])])
    return out.market


def test_quotes_and_snapshots_round_trip_through_typed_tables() -> None:
    events = market_events()
    odd = Event("x", "QuoteUpdated", "other@aggregate", 1, T0, 0, b'{"not":"a quote"}', "c")
    batches = [fmt.Batch(100, T0, [*events, odd])]
    parts = fmt.build_parts(batches)
    assert sorted({p.stream for p in parts}) == ["books", "events", "quotes"]
    assert len({(p.stream, p.hour) for p in parts}) == 4  # the kraken snapshot is an hour later
    back: dict[int, Event] = {}
    for part in parts:
        data = fmt.write_parquet(part, level=3, row_group_rows=1000)
        table = pq.read_table(pa.BufferReader(data))
        assert table.schema == fmt.SCHEMAS[part.stream]
        back.update(fmt.table_events(part.stream, table))
    assert [back[100 + i] for i in range(len(events) + 1)] == [
        msgspec.structs.replace(e, ts_logged=T0) for e in [*events, odd]
    ]
    quotes = next(p.table for p in parts if p.stream == "quotes")
    assert quotes.column("bid").to_pylist() == [100.0, 101.0, 102.0, 103.0, 104.0]
    books = next(
        p.table
        for p in parts
        if p.stream == "books" and p.table.num_rows and p.table["venue"][0].as_py() == "binance"
    )
    assert books.column("bids").to_pylist()[0] == [
        {"price": 100.0, "size": 1.0},
        {"price": 99.5, "size": 2.0},
    ]
