"""The job on the ``websocket`` source against the venue simulator (127.0.0.1): trades,
quotes and books flow into every output, and under each injected fault the client
recovers, the gaps it could not recover are events, and every book resyncs to the
reference book rebuilt from the tape."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from tests.support.flows import config
from tests.support.venues import (
    RECORDED_SYMBOLS,
    FeedRun,
    feed,
    reference_books,
    run_feed_flow,
    simulator,
    top,
)
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
        entry = feed(
            "binance", sim, symbols=list(RECORDED_SYMBOLS), channels=["agg_trades", "quotes", "book"]
        )
        run = run_feed_flow(feed_config(tmp_path, entry), sim)
    assert len(run.updates) == 2  # the session's two aggTrades
    assert {q.symbol for q in run.quotes} == {"NKN-USDT", "LRC-BTC", "BLZ-ETH"}
    assert [q.seq for q in run.quotes if q.symbol == "NKN-USDT"] == list(range(1, 75))
    resyncs = run.of_type(EventType.BOOK_RESYNC)
    assert {e.aggregate for e in resyncs} == {
        f"book:{normalize('binance', s)}@binance" for s in RECORDED_SYMBOLS
    }
    assert run.of_type(EventType.FEED_CONNECTED)
    assert not run.dead
    assert_balanced(run)
    assert_books_match(run, sim, "binance")
    # the last quote of each symbol is the top of its book at that moment: bid < ask, sizes > 0
    assert all(q.bid < q.ask and q.bid_size > 0 for q in run.quotes)
    assert {e.type for e in run.market} == {"QuoteUpdated", "BookSnapshotted"}


VENUES = ("binance", "coinbase", "kraken", "bybit")


@pytest.mark.parametrize("venue", VENUES)
def test_trades_quotes_and_books_flow_for_every_venue(tmp_path: Path, venue: str) -> None:
    with simulator(venue, events=1200) as sim:
        run = run_feed_flow(feed_config(tmp_path, feed(venue, sim)), sim, cache=True)
    tape = sim.venue.tape
    sent_trades = sum(1 for i in tape.items if i.key[0] == "trades")
    assert len(run.updates) == sent_trades
    assert len(run.quotes) == sum(1 for i in tape.items if i.key[0] == "quotes")
    assert not run.dead
    assert not run.of_type(EventType.SEQUENCE_GAP)
    assert not run.of_type(EventType.BOOK_GAP)
    assert_balanced(run)
    assert_books_match(run, sim, venue)
    assert_top_of_book_cached(tmp_path, run)


def assert_top_of_book_cached(tmp_path: Path, run: FeedRun) -> None:
    """The cache holds each symbol's last quote with its mid and spread."""
    from ticktape.flows import wiring
    from ticktape.sinks.cache import embedded as cache_mod
    from ticktape.sinks.cache.api import PRICE, cache_key

    cfg = feed_config(tmp_path, {"venue": "binance", "symbols": ["X"]})
    cache_mod.release(wiring.cache_path(cfg))
    last = {q.symbol: q for q in sorted(run.quotes, key=lambda q: q.seq)}
    cache = wiring.open_cache(cfg)
    try:
        for symbol, q in last.items():
            entry = cache.peek(cache_key(PRICE, q.venue, symbol, "quote"))
            assert entry is not None, symbol
            doc = msgspec.json.decode(entry.value)
            assert (doc["bid"], doc["ask"], doc["seq"]) == (q.bid, q.ask, q.seq)
            assert doc["mid"] == (q.bid + q.ask) / 2
            assert doc["spread"] == q.ask - q.bid
            assert (entry.v1, entry.v2) == (q.ts_event, q.seq)
    finally:
        cache.close()


def assert_trade_gaps_are_events(run: FeedRun, venue: str) -> None:
    """Every trade id between a symbol's first and last one received was either accepted
    or is inside a ``SequenceGap`` event: nothing was lost silently."""
    if venue == "bybit":  # Bybit trade ids are not contiguous: no gap detection (documented)
        return
    by_symbol: dict[str, set[int]] = {}
    for u in run.updates:
        by_symbol.setdefault(u.symbol, set()).add(int(u.trade_id))
    for e in run.of_type(EventType.SEQUENCE_GAP):
        doc = msgspec.json.decode(e.payload)
        if doc.get("kind", "trade_id") == "trade_id":
            by_symbol.setdefault(doc["symbol"], set()).update(
                range(doc["first_missing"], doc["last_missing"] + 1)
            )
    for symbol, ids in by_symbol.items():
        assert ids == set(range(min(ids), max(ids) + 1)), symbol


FAULTS = {
    "disconnect": ["disconnect@300"],
    "close_code": ["close:1011@300"],
    "stall": ["stall:2@300"],
    "malformed": ["malformed@200"],
    "oversized": ["oversized:1200000@200"],
    "skipped_frames": ["skip@150", "skip@151", "skip@400"],
    "duplicates_after_reconnect": ["disconnect@300", "duplicate:40#2"],
    "slow_consumer": ["slow:20@300"],
}


@pytest.mark.parametrize("venue", VENUES)
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_client_recovers_from_each_fault(tmp_path: Path, venue: str, fault: str) -> None:
    with simulator(venue, events=1500, faults=FAULTS[fault]) as sim:
        entry = feed(venue, sim, idle_timeout="1s") if fault == "stall" else feed(venue, sim)
        run = run_feed_flow(feed_config(tmp_path, entry), sim)
        assert sim.server is not None
        sessions = sim.server.stats.connections
    assert_balanced(run)
    assert_books_match(run, sim, venue)
    assert_trade_gaps_are_events(run, venue)
    connected = run.of_type(EventType.FEED_CONNECTED)
    if fault in ("disconnect", "close_code", "stall", "duplicates_after_reconnect", "slow_consumer"):
        assert len(connected) >= 2, "the client reconnected"
        assert sessions >= 2
        reasons = [msgspec.json.decode(e.payload)["reason"] for e in run.of_type(EventType.FEED_DISCONNECTED)]
        assert len(reasons) >= 2, reasons
    if fault == "malformed":
        assert [d.code for d in run.dead] == ["DECODE_ERROR"]
        assert run.dead[0].src == f"ws:{venue}/0"
        assert run.dead[0].raw
    elif fault == "oversized":
        assert [d.code for d in run.dead] == ["OVERSIZED_FRAME"]
    else:
        assert not run.dead
    if fault == "duplicates_after_reconnect":
        assert run.stats.totals().duplicate > 0


def test_quotes_and_l2_snapshots_reach_the_archive_through_the_market_log(tmp_path: Path) -> None:
    from ticktape.flows import wiring
    from ticktape.flows.wiring import Outputs
    from ticktape.sinks.archive.archiver import archive_all
    from ticktape.sinks.archive.config import open_archive_store
    from ticktape.sinks.archive.reader import ArchiveReader

    with simulator("binance", events=800) as sim:
        cfg = config(
            tmp_path,
            source={"kind": "websocket", "websocket": {"feeds": [feed("binance", sim)]}},
            books={"snapshot_every": "1s"},
            archive={"enabled": True, "check_interval": "1h"},
        )
        outputs = Outputs(market_log=[wiring.market_log_sink(cfg, None)])
        run = run_feed_flow(cfg, sim, outputs=outputs)
    archive = wiring.archive_config(cfg)
    market = msgspec.structs.replace(archive, prefix=f"{archive.prefix}/market")
    results = archive_all(tmp_path, market, force=True, log="market")
    assert sum(r.rows for r in results.values()) == len(run.market) > 0
    reader = ArchiveReader(open_archive_store(market), market.prefix)
    quotes = reader.read(stream="quotes")
    assert quotes.num_rows == len(run.quotes)
    assert sorted(quotes.column("seq").to_pylist()) == sorted(q.seq for q in run.quotes)
    books = reader.read(stream="books")
    assert books.num_rows == len(run.books)
    assert not reader.list_objects("ticks")  # nothing of the event log under the market prefix
    from click.testing import CliRunner

    from ticktape.flows.cli.main import cli

    out = CliRunner().invoke(
        cli, ["archive", "read", "BTC-USDT", "--stream", "quotes", "--prefix", market.prefix,
              "--data-dir", str(tmp_path), "--json"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    rows = [msgspec.json.decode(line) for line in out.stdout.splitlines()]
    assert [r["seq"] for r in rows] == sorted(q.seq for q in run.quotes if q.symbol == "BTC-USDT")


def test_feed_metrics_are_served_and_catalogued(tmp_path: Path) -> None:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    from ticktape.infra.observability.metrics import serve_metrics

    with simulator("bybit", events=600) as sim:
        cfg = config(
            tmp_path,
            source={"kind": "websocket", "websocket": {"feeds": [feed("bybit", sim)]}},
            metrics={"symbol_labels": ["BTC-USDT"]},
        )
        run = run_feed_flow(cfg, sim)
    run.stats.configure(symbol_labels=["BTC-USDT"])
    stop = serve_metrics(run.stats, port=0)
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{stop.port}/metrics", timeout=10).read().decode()  # type: ignore[attr-defined]
    finally:
        stop()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("ticktape_feed_connected", "ticktape_feed_data_frames", "ticktape_feed_sessions", "ticktape_quotes",
                 "ticktape_book_snapshots", "ticktape_quote_age_seconds", "ticktape_quote_mid", "ticktape_book_depth"):  # fmt: skip
        assert name in families, name
    frames = {
        s.labels["partition"]: s.value
        for s in families["ticktape_feed_data_frames"].samples
        if s.name.endswith("_total")
    }
    assert frames["ws:bybit/0"] > 500
    catalogue = (Path(__file__).parents[2] / "infra" / "METRICS.md").read_text()
    undocumented = [n for n in families if n.startswith(("ticktape_feed", "ticktape_quote", "ticktape_book"))
                    and f"`{n}`" not in catalogue and f"`{n}_total`" not in catalogue]  # fmt: skip
    assert not undocumented
