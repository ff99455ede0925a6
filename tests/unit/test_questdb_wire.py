"""The QuestDB sink on the ILP wire (no QuestDB runs here): a local TCP listener records
what the client sends; every line is parsed back strictly (tests/support/ilp_wire.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import questdb
from bytewax import operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main
from hypothesis import given
from hypothesis import strategies as st
from questdb import Sender

from tests.support.ilp_wire import (
    IlpLine,
    IlpListener,
    parse_ilp,
    questdb_config,
    sample_candle,
    sample_price,
)
from ticktape.infra.observability.metrics import RunStats
from ticktape.sinks.questdb.ddl import CANDLE_COLUMNS, PRICE_COLUMNS
from ticktape.sinks.questdb.sink import QuestDBConfig, QuestDBSink, candles_sink, prices_sink, write_price

HOSTILE = [
    "a b", "a,b", "a=b", "a\nb", "a\\b", 'a"b', "a\rb", "tab\there", "\\", "\\\\n", "=,\\ \n\"",
    " leading", "trailing\\", "ü€😀 名前", "x" * 5000, "nul\x00byte", "-",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _quiet_reconnect_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(questdb, "WARN_HIGH_RECONNECTS", False)  # tests make many senders


@pytest.fixture
def listener() -> Iterator[IlpListener]:
    server = IlpListener()
    yield server
    server.close()


def run(sink: QuestDBSink[Any], *batches: list[Any], part: str = "0") -> Any:
    partition = sink.build_part("questdb", part, None)
    for batch in batches:
        partition.write_batch([batch])
    partition.close()
    return partition


def received(listener: IlpListener, connections: int = 1) -> list[IlpLine]:
    return [line for data in listener.received(connections) for line in parse_ilp(data)]


def config(conf: str, **changes: Any) -> QuestDBConfig:
    return questdb_config(conf=conf, **changes)  # type: ignore[no-any-return]


@pytest.mark.parametrize("ts_type", ["TIMESTAMP_NS", "TIMESTAMP"])
def test_price_rows_exact_values_and_types(listener: IlpListener, ts_type: str) -> None:
    updates = [sample_price(0), sample_price(1, trade_id="", ts_kafka=0), sample_price(2)]
    sink = prices_sink(config(listener.conf, timestamp_type=ts_type))
    assert sink is not None
    run(sink, updates[:2], updates[2:])
    lines = received(listener)
    assert len(lines) == 3
    ts_field = "n" if ts_type == "TIMESTAMP_NS" else "t"  # TCP + TIMESTAMP_NS -> ILP v2
    for line, u in zip(lines, updates, strict=True):
        assert line.table == "ticktape_prices"
        assert line.tags == {"venue": u.venue, "symbol": u.symbol, "side": u.side}
        assert line.ts == u.ts_event  # designated timestamp: ns in both protocol versions
        f = line.fields
        assert f["price"] == ("f", u.price)
        assert f["size"] == ("f", u.size)
        assert f["trade_id"] == ("s", u.trade_id)
        assert f["src"] == ("s", u.src)
        assert f["seq"] == ("i", u.seq)
        assert f["offset"] == ("i", u.offset)
        for name in ("ts_recv", "ts_proc", "ts_kafka"):
            value = getattr(u, name)
            if value == 0:
                assert name not in f  # unknown broker time: NULL, not 1970
                continue
            assert f[name][0] == ts_field
            assert line.ns(name) == (value if ts_field == "n" else value // 1000 * 1000)
    assert lines[0].fields["tick_id"] == ("s", "1000")
    assert lines[1].fields["tick_id"] == ("s", "trades/0@501")  # no trade id: source coordinates


def test_candle_rows_exact_values_and_types(listener: IlpListener) -> None:
    candles = [sample_candle(0), sample_candle(1)]
    sink = candles_sink(config(listener.conf))
    assert sink is not None
    run(sink, candles)
    lines = received(listener)
    assert len(lines) == 2
    for line, c in zip(lines, candles, strict=True):
        assert line.table == "ticktape_candles"
        assert line.tags == {"venue": c.venue, "symbol": c.symbol}
        assert line.ts == c.start
        ints = {"interval": c.interval, "trades": c.trades, "revision": c.revision}
        assert {k: line.fields[k] for k in ints} == {k: ("i", v) for k, v in ints.items()}
        for name in (
            "open",
            "high",
            "low",
            "close",
            "volume",
            "notional",
            "vwap",
            "buy_volume",
            "sell_volume",
        ):
            assert line.fields[name] == ("f", getattr(c, name)), name
        assert line.fields["first_trade_id"] == ("s", c.first_trade_id)
        assert line.fields["last_trade_id"] == ("s", c.last_trade_id)
        assert line.fields["ts_final"] == ("n", c.ts_final)


def test_wire_names_are_the_ddl_columns(listener: IlpListener) -> None:
    cfg = config(listener.conf)
    for sink, record, columns in (
        (prices_sink(cfg), sample_price(), PRICE_COLUMNS),
        (candles_sink(cfg), sample_candle(), CANDLE_COLUMNS),
    ):
        assert sink is not None
        run(sink, [record])
        line = received(listener)[-1]
        listener.chunks.clear()
        listener.done.clear()
        symbols = {name for name, typ in columns if typ == "SYMBOL"}
        assert set(line.tags) == symbols
        assert set(line.fields) == {name for name, _ in columns} - symbols - {"ts"}


@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: repr(t[:12]))
def test_hostile_names_reach_the_wire_escaped(listener: IlpListener, text: str) -> None:
    price = sample_price(venue=text, symbol=text, trade_id=text, src=text)
    candle = sample_candle(venue=text, symbol=f"{text}-X")
    cfg = config(listener.conf)
    prices, candles = prices_sink(cfg), candles_sink(cfg)
    assert prices is not None
    assert candles is not None
    run(prices, [price, sample_price(1)])
    run(candles, [candle])
    first, second, third = received(listener, connections=2)
    assert first.tags == {"venue": text, "symbol": text, "side": "buy"}
    assert first.fields["trade_id"] == first.fields["src"] == first.fields["tick_id"] == ("s", text)
    assert second.tags["symbol"] == "BTC-USDT"  # the next row is intact
    assert third.tags == {"venue": text, "symbol": f"{text}-X"}


@pytest.fixture(scope="module")
def tcp_sender() -> Iterator[Sender]:
    server = IlpListener()
    sender = Sender.from_conf(server.conf, auto_flush=False, protocol_version=2)
    sender.establish()
    yield sender
    sender.close()
    server.close()


@given(
    st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=60),
    st.text(st.characters(blacklist_categories=["Cs"]), max_size=30),
)
def test_any_text_round_trips(tcp_sender: Sender, name: str, trade_id: str) -> None:
    write_price(tcp_sender, "ticktape_prices", sample_price(venue=name, symbol=name[::-1], trade_id=trade_id))
    (line,) = parse_ilp(bytes(tcp_sender))
    tcp_sender.flush()
    assert line.tags["venue"] == name
    assert line.tags["symbol"] == name[::-1]
    assert line.fields["trade_id"] == ("s", trade_id)


def test_one_line_per_row_across_flushes(listener: IlpListener) -> None:
    updates = [sample_price(i, symbol=HOSTILE[i % len(HOSTILE)][:50]) for i in range(5000)]
    sink = prices_sink(config(listener.conf, auto_flush_rows=700))
    assert sink is not None
    run(sink, *(updates[i : i + 900] for i in range(0, 5000, 900)))
    lines = received(listener)
    assert [(line.tags["symbol"], line.fields["seq"]) for line in lines] == [
        (u.symbol, ("i", u.seq)) for u in updates
    ]


def test_refused_rows_are_skipped_logged_and_counted(
    listener: IlpListener, caplog: pytest.LogCaptureFixture
) -> None:
    stats = RunStats()
    good = [sample_price(0), sample_price(2), sample_price(4)]
    bad = [sample_price(1, symbol="BAD\ud800"), sample_price(3, ts_event=-5), sample_price(5, seq=2**64)]
    sink = prices_sink(config(listener.conf), stats=stats)
    assert sink is not None
    with caplog.at_level(logging.WARNING, logger="ticktape.sinks.questdb"):
        partition = run(sink, [good[0], bad[0], good[1], bad[1], good[2], bad[2]])
    assert [line.fields["seq"][1] for line in received(listener)] == [1, 3, 5]
    assert partition.rejected == 3
    assert stats.sink_errors["questdb_prices"] == 3
    assert stats.sink_writes["questdb_prices"] == 3
    assert "BAD\\ud800" in caplog.text
    assert "ts_event=-5" in caplog.text


def test_sink_in_a_dataflow_two_partitions(listener: IlpListener) -> None:
    items = [("0", [sample_price(0), sample_price(1)]), ("1", [sample_price(2)]), ("2", [sample_price(3)])]
    flow = Dataflow("questdb_wire")
    stream = op.input("in", flow, TestingSource(items))
    sink = prices_sink(config(listener.conf, partitions=2))
    assert sink is not None
    op.output("questdb", stream, sink)
    run_main(flow)
    lines = received(listener, connections=2)
    assert sorted(line.fields["seq"][1] for line in lines) == [1, 2, 3, 4]


def test_quote_rows_exact_values_and_the_ddl_columns(listener: IlpListener) -> None:
    from ticktape.schemas.records import Quote
    from ticktape.sinks.questdb.ddl import QUOTE_COLUMNS
    from ticktape.sinks.questdb.sink import quotes_sink

    q = Quote("binance", "BTC-USDT", 100.0, 1.5, 100.5, 2.0, 1_700_000_000_000_000_000, 1_700_000_000_000_000_123,
              "ws:binance/0", 42, 0, 777, 3)  # fmt: skip
    sink = quotes_sink(config(listener.conf))
    assert sink is not None
    run(sink, [q])
    (line,) = received(listener)
    assert line.table == "ticktape_quotes"
    assert line.tags == {"venue": "binance", "symbol": "BTC-USDT"}
    assert line.ts == q.ts_event
    f = line.fields
    assert (f["bid"], f["ask"], f["mid"], f["spread"]) == (
        ("f", 100.0),
        ("f", 100.5),
        ("f", 100.25),
        ("f", 0.5),
    )
    assert (f["seq"], f["update_id"], f["offset"]) == (("i", 3), ("i", 777), ("i", 42))
    assert line.ns("ts_recv") == q.ts_recv
    symbols = {name for name, typ in QUOTE_COLUMNS if typ == "SYMBOL"}
    assert set(line.fields) == {name for name, _ in QUOTE_COLUMNS} - symbols - {"ts"}
