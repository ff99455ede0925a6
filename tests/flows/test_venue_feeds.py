"""The job on the ``websocket`` source against the venue simulator (127.0.0.1): trades,
quotes and books flow into every output, and under each injected fault the client
recovers, the gaps it could not recover are events, and every book resyncs to the
reference book rebuilt from the tape."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.flows import config
from tests.support.venues import RECORDED_SYMBOLS, FeedRun, feed, reference_books, run_feed_flow, simulator, top
from ticktape.connectors.venuesim.runner import SimThread
from ticktape.schemas.records import EventType
from ticktape.schemas.symbols import normalize

LEVELS = 50


def feed_config(tmp_path: Path, entry: dict[str, object]) -> object:
    return config(
        tmp_path,
        source={"kind": "websocket", "websocket": {"feeds": [entry]}},
        books={"snapshot_levels": 5000, "snapshot_every": "1s"},
    )


def assert_books_match(run: FeedRun, sim: SimThread, venue: str) -> None:
    """Each book's final state equals the reference rebuilt from the whole tape."""
    reference = reference_books(sim.venue.tape)
    finals = run.final_books()
    assert finals, "no final book snapshots"
    for venue_symbol, (bids, asks) in reference.items():
        final = finals[normalize(venue, venue_symbol)]
        assert final.bids[:LEVELS] == top(bids, LEVELS, bids=True), venue_symbol
        assert final.asks[:LEVELS] == top(asks, LEVELS, bids=False), venue_symbol


def assert_balanced(run: FeedRun) -> None:
    accounting = run.stats.accounting()
    assert accounting["balanced"], accounting
    assert all(src.startswith("ws:") for src in accounting["partitions"]), accounting


def test_recorded_binance_session_flows_into_every_output(tmp_path: Path) -> None:
    with simulator("binance", recorded=True) as sim:
        entry = feed("binance", sim, symbols=list(RECORDED_SYMBOLS), channels=["agg_trades", "quotes", "book"])
        run = run_feed_flow(feed_config(tmp_path, entry), sim)
    assert len(run.updates) == 2  # the session's two aggTrades
    assert {q.symbol for q in run.quotes} == {"NKN-USDT", "LRC-BTC", "BLZ-ETH"}
    assert [q.seq for q in run.quotes if q.symbol == "NKN-USDT"] == list(range(1, 75))
    resyncs = run.of_type(EventType.BOOK_RESYNC)
    assert {e.aggregate for e in resyncs} == {f"book:{normalize('binance', s)}@binance" for s in RECORDED_SYMBOLS}
    assert run.of_type(EventType.FEED_CONNECTED)
    assert not run.dead
    assert_balanced(run)
    assert_books_match(run, sim, "binance")
    # the last quote of each symbol is the top of its book at that moment: bid < ask, sizes > 0
    assert all(q.bid < q.ask and q.bid_size > 0 for q in run.quotes)
    assert {e.type for e in run.market} == {"QuoteUpdated", "BookSnapshotted"}
