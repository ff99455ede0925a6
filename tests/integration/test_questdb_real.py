"""The QuestDB output against a real QuestDB (the server jar from Maven Central, started
once per session by ``questdb_server``), read back over the PostgreSQL wire with psycopg.

* ``ticktape questdb init`` creates the tables (WAL, PARTITION BY DAY, DEDUP UPSERT KEYS);
* a job run's rows equal what it emitted (its event log and candle store), nanosecond
  timestamps included; QuestDB's own ``SAMPLE BY`` over the price rows equals the candles;
  the Market dashboard's SQL returns them;
* a replayed Kafka range and a re-run backfill leave no duplicate rows; a candle revision
  replaces its row; hostile names round-trip; a refused row fails the flush with QuestDB's
  message; a server that goes away mid-run and comes back loses nothing.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.support import questdb as qdb
from tests.support.cli import ok, start, ticktape, write_config
from tests.support.data import TRADES
from tests.support.ilp_wire import questdb_config, sample_candle, sample_price
from ticktape.connectors.kafka.produce import ensure_topic, history_messages, produce_messages
from ticktape.infra.devstack.kafka import ApacheKafka
from ticktape.infra.devstack.questdb import QuestDBServer
from ticktape.schemas.errors import SinkError
from ticktape.schemas.records import Candle, PriceUpdate
from ticktape.sinks.candles.store import CandleStore
from ticktape.sinks.eventlog.store import EventStore
from ticktape.sinks.questdb.ddl import CANDLE_KEYS, PRICE_KEYS, QUOTE_KEYS, ddl
from ticktape.sinks.questdb.sink import QuestDBConfig, candles_sink, init_tables, prices_sink

pytestmark = pytest.mark.integration
XRP = TRADES / "XRP_ETH-trades.json.gz"
MARKET = Path(__file__).parents[2] / "infra" / "grafana" / "dashboards" / "market.json"
SEC = 1_000_000_000


# -- helpers ---------------------------------------------------------------------------------


def job_doc(data_dir: Path, server: QuestDBServer, source: dict[str, Any], **questdb: Any) -> dict[str, Any]:
    """A job config: ``source``, candles 1m/5m/1h, QuestDB outputs on ``server``."""
    return {
        "run": {"mode": "replay", "data_dir": str(data_dir), "epoch_interval": "300ms"},
        "source": source,
        "candles": {"intervals": ["1m", "5m", "1h"]},
        "metrics": {"enabled": False},
        "outputs": {"questdb": {"enabled": True, "conf": server.client_conf, **questdb}},
    }


def emitted_prices(data_dir: Path) -> list[PriceUpdate]:
    """The PriceUpdated events of the job's event log, as PriceUpdates."""
    with EventStore(data_dir / "events") as store:
        updates = [
            msgspec.json.decode(e.payload, type=PriceUpdate)
            for e in store.iter_events()
            if e.type == "PriceUpdated"
        ]
    return sorted(updates, key=lambda u: (u.src, u.offset, u.symbol, u.trade_id))


def stored_candles(data_dir: Path) -> list[Candle]:
    """The job's candle store (latest revision of each candle)."""
    return sorted(
        CandleStore(data_dir / "candles").read(), key=lambda c: (c.venue, c.symbol, c.interval, c.start)
    )


def unique_tables() -> dict[str, str]:
    suffix = uuid.uuid4().hex[:10]
    return {
        "prices_table": f"tt_prices_{suffix}", "candles_table": f"tt_candles_{suffix}",
        "quotes_table": f"tt_quotes_{suffix}",
    }  # fmt: skip


def drop(server: QuestDBServer, *tables: str) -> None:
    for table in tables:
        server.sql(f'DROP TABLE IF EXISTS "{table}"')


def write(sink: Any, *batches: list[Any]) -> None:
    """Each batch, then a snapshot (one flush per Bytewax epoch), then close."""
    part = sink.build_part("questdb", "0", None)
    for batch in batches:
        part.write_batch([batch])
        part.snapshot()
    part.close()


@pytest.fixture
def cfg(questdb_server: QuestDBServer) -> Iterator[QuestDBConfig]:
    """Fresh table names on the session server (dropped afterwards), one sink partition."""
    tables = unique_tables()
    config: QuestDBConfig = questdb_config(conf=questdb_server.client_conf, partitions=1, **tables)
    yield config
    drop(questdb_server, *tables.values())


# -- ticktape questdb init -------------------------------------------------------------------


def test_init_creates_the_tables_with_their_dedup_keys(questdb_server: QuestDBServer, tmp_path: Path) -> None:
    tables = unique_tables()
    doc = job_doc(tmp_path / "data", questdb_server, {"kind": "synthetic"}, **tables)
    path = write_config(tmp_path / "job.toml", doc)
    try:
        for _ in range(2):  # idempotent
            out = ok(ticktape("questdb", "init", "-c", str(path)))
            assert (
                f"tables {tables['prices_table']}, {tables['candles_table']} and {tables['quotes_table']} ready"
                in out
            )
        printed = ok(ticktape("questdb", "init", "-c", str(path), "--print"))
        cfg = questdb_config(conf=questdb_server.client_conf, **tables)
        assert printed.splitlines() == [f"{sql};" for sql in ddl(cfg)]
        for table, keys in (
            (tables["prices_table"], PRICE_KEYS), (tables["candles_table"], CANDLE_KEYS),
            (tables["quotes_table"], QUOTE_KEYS),
        ):  # fmt: skip
            (meta,) = qdb.query(
                questdb_server,
                "SELECT designatedTimestamp, partitionBy, walEnabled, dedup FROM tables() WHERE table_name = %s",
                [table],
            )
            assert meta == {
                "designatedTimestamp": "ts",
                "partitionBy": "DAY",
                "walEnabled": True,
                "dedup": True,
            }
            columns = qdb.query(
                questdb_server, f"SELECT \"column\", type, upsertKey FROM table_columns('{table}')"
            )
            assert {c["column"] for c in columns if c["upsertKey"]} == set(keys)
            assert {c["type"] for c in columns if c["column"].startswith("ts")} == {"TIMESTAMP_NS"}
    finally:
        drop(questdb_server, *tables.values())


# -- a job run: rows equal what it emitted ---------------------------------------------------


@pytest.fixture(scope="module")
def job_run(questdb_server: QuestDBServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``ticktape questdb init`` then ``ticktape run`` on real trades (XRP/ETH, 12,477 rows)
    into the default tables ``ticktape_prices``/``ticktape_candles`` (the dashboard's)."""
    tmp = tmp_path_factory.mktemp("questdb-job")
    data = tmp / "data"
    doc = job_doc(data, questdb_server, {"kind": "file", "file": {"paths": [str(XRP)]}})
    path = write_config(tmp / "job.toml", doc)
    drop(questdb_server, "ticktape_prices", "ticktape_candles")
    ok(ticktape("questdb", "init", "-c", str(path)))
    out = ok(ticktape("run", "-c", str(path)))
    assert "accounting balanced: True" in out
    qdb.wait_applied(questdb_server, "ticktape_prices", "ticktape_candles")
    yield data
    drop(questdb_server, "ticktape_prices", "ticktape_candles")


def test_job_rows_equal_what_it_emitted(questdb_server: QuestDBServer, job_run: Path) -> None:
    emitted = emitted_prices(job_run)
    assert len(emitted) > 12_000
    assert qdb.price_rows(questdb_server, "ticktape_prices") == emitted  # every field, ns timestamps included
    assert any(u.ts_recv % 1000 != 0 for u in emitted)  # sub-microsecond stamps, compared exactly above
    candles = stored_candles(job_run)
    assert {c.interval for c in candles} == {60, 300, 3600}
    assert qdb.candle_rows(questdb_server, "ticktape_candles") == candles


def test_sample_by_over_the_prices_equals_ticktape_candles(
    questdb_server: QuestDBServer, job_run: Path
) -> None:
    """An independent computation: QuestDB's own OHLCV of the stored trades per interval.

    Rows of one timestamp are ordered by the dedup keys, i.e. by ``tick_id`` (the trade id);
    XRP/ETH trade ids have one width, so that is trade order, as for the candles.
    """
    candles = stored_candles(job_run)
    for interval, unit in ((60, "1m"), (300, "5m"), (3600, "1h")):
        sampled = qdb.query(
            questdb_server,
            "SELECT ts::long AS start, venue, symbol, first(price) AS open, max(price) AS high, "
            "min(price) AS low, last(price) AS close, sum(size) AS volume, count() AS trades "
            f"FROM ticktape_prices SAMPLE BY {unit} ALIGN TO CALENDAR ORDER BY start",
        )
        ours = [c for c in candles if c.interval == interval]
        assert len(sampled) == len(ours) > 10
        for row, c in zip(sampled, ours, strict=True):
            assert (row["start"], row["venue"], row["symbol"]) == (c.start, c.venue, c.symbol)
            assert (row["open"], row["high"], row["low"], row["close"]) == (c.open, c.high, c.low, c.close)
            assert row["trades"] == c.trades
            assert row["volume"] == pytest.approx(c.volume, rel=1e-12)


def _grafana(sql: str, values: dict[str, str], start_ns: int, end_ns: int) -> str:
    """Expand what Grafana's PostgreSQL datasource expands: ``$__timeFilter(col)`` and ``$var``."""

    def rfc3339(ns: int) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // SEC)) + f".{ns % SEC // 1_000_000:03d}Z"

    sql = re.sub(
        r"\$__timeFilter\((\w+)\)",
        lambda m: f"{m[1]} BETWEEN '{rfc3339(start_ns)}' AND '{rfc3339(end_ns)}'",
        sql,
    )
    return re.sub(r"\$(\w+)", lambda m: values[m[1]], sql)


def test_market_dashboard_queries_return_the_candles(questdb_server: QuestDBServer, job_run: Path) -> None:
    dashboard = json.loads(MARKET.read_text())
    candles = stored_candles(job_run)
    (venue,) = {c.venue for c in candles}
    (symbol,) = {c.symbol for c in candles}
    first, last = min(c.start for c in candles), max(c.start for c in candles)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    symbols = qdb.query(questdb_server, variables["symbol"]["query"])
    assert [r["symbol"] for r in symbols] == [symbol]
    venues = qdb.query(questdb_server, _grafana(variables["venue"]["query"], {"symbol": symbol}, first, last))
    assert [r["venue"] for r in venues] == [venue]
    panels = [
        (p["title"], t["rawSql"]) for p in dashboard["panels"] for t in p.get("targets", []) if "rawSql" in t
    ]
    assert len(panels) >= 5
    for option in variables["candle_interval"]["options"]:
        interval = int(option["value"])
        want = [c for c in candles if c.interval == interval]
        values = {"symbol": symbol, "venue": venue, "candle_interval": str(interval)}
        for title, raw in panels:
            rows = qdb.query(questdb_server, _grafana(raw, values, first, last + SEC))
            expected = want if "revision > 0" not in raw else [c for c in want if c.revision > 0]
            if "LIMIT 100" in raw:
                expected = sorted(expected, key=lambda c: -c.start)[:100]
            assert len(rows) == len(expected), title
            for row, c in zip(rows, expected, strict=True):
                time_col = row.get("time", row.get("ts"))
                assert int(time_col.timestamp() * SEC) == c.start, title
                for column in set(row) - {"time", "ts", "ts_final"}:
                    assert row[column] == getattr(c, column), (title, column)


# -- replays and re-runs ---------------------------------------------------------------------


def test_replayed_kafka_range_leaves_no_duplicate_rows(
    questdb_server: QuestDBServer, kafka_broker: ApacheKafka, tmp_path: Path
) -> None:
    """A job on Apache Kafka into QuestDB, then `ticktape replay` of ranges into the same tables.

    Every replayed row replaces its own (DEDUP UPSERT KEYS): no duplicates, same trades; the
    replay stamps its own ``seq`` (per-symbol numbering restarts), ``ts_recv`` and ``ts_proc``.
    From a window boundary (the first trade of an hour) the candles are unchanged. From
    inside a window, that window's candles hold the range's trades only (QuestDB keeps the
    last write, unlike the candle store, which keeps the fuller candle); replaying from the
    boundary before restores them.
    """
    topic = f"qdb-{uuid.uuid4().hex[:8]}"
    ensure_topic(kafka_broker.bootstrap_servers, topic, 1, {})  # one symbol: one partition
    assert produce_messages(kafka_broker.bootstrap_servers, topic, history_messages(XRP)).failed == 0
    tables = unique_tables()
    source = {
        "kind": "kafka",
        "kafka": {"bootstrap_servers": kafka_broker.bootstrap_servers, "topic": topic, "end": "launch"},
    }
    doc = job_doc(tmp_path / "data", questdb_server, source, **tables)
    doc["validation"] = {"max_past": "36500d"}  # 2019 trades, stamped now by the broker
    path = write_config(tmp_path / "job.toml", doc)

    def identity(u: PriceUpdate) -> PriceUpdate:
        return msgspec.structs.replace(u, ts_recv=0, ts_proc=0, seq=0)

    def bare(c: Candle) -> Candle:
        return msgspec.structs.replace(c, ts_final=0)

    runs: list[int] = []

    def replay(offset: int) -> tuple[list[PriceUpdate], list[Candle]]:
        runs.append(offset)  # each replay with recovery state of its own: never a resume
        recovery = tmp_path / f"replay-{len(runs)}"
        out = ok(ticktape("replay", "-c", str(path), "--from-offset", f"0:{offset}", "-r", str(recovery)))
        assert "accounting balanced: True" in out
        qdb.wait_applied(questdb_server, *tables.values())
        return qdb.price_rows(questdb_server, tables["prices_table"]), qdb.candle_rows(
            questdb_server, tables["candles_table"]
        )

    try:
        ok(ticktape("questdb", "init", "-c", str(path)))
        ok(ticktape("run", "-c", str(path)))
        qdb.wait_applied(questdb_server, *tables.values())
        prices, candles = (
            qdb.price_rows(questdb_server, tables["prices_table"]),
            qdb.candle_rows(questdb_server, tables["candles_table"]),
        )
        assert prices == emitted_prices(tmp_path / "data")
        assert len(prices) > 12_000
        hour = 3600 * SEC
        boundary = next(
            u.offset
            for a, u in itertools.pairwise(prices)
            if u.offset > 3000 and a.ts_event // hour != u.ts_event // hour
        )

        again, after = replay(boundary)
        assert len(again) == len(prices)  # the replayed rows replaced theirs
        assert [identity(u) for u in again] == [identity(u) for u in prices]
        assert again[:boundary] == prices[:boundary]  # before the range: untouched
        assert all(a.ts_recv != b.ts_recv for a, b in zip(again[boundary:], prices[boundary:], strict=True))
        assert [bare(c) for c in after] == [bare(c) for c in candles]

        inside = boundary + 7
        _, partial = replay(inside)
        changed = [(new, old) for new, old in zip(partial, candles, strict=True) if bare(new) != bare(old)]
        t_in = prices[inside].ts_event
        assert sorted(c.interval for c, _ in changed) == [60, 300, 3600]
        for new, old in changed:
            assert new.start <= t_in < new.end
            assert (
                new.trades
                == sum(1 for u in prices[inside:] if new.start <= u.ts_event < new.end)
                < old.trades
            )
        _, restored = replay(boundary)
        assert [bare(c) for c in restored] == [bare(c) for c in candles]
    finally:
        drop(questdb_server, *tables.values())


def test_rerun_backfill_leaves_no_duplicate_rows(questdb_server: QuestDBServer, tmp_path: Path) -> None:
    tables = unique_tables()
    path = write_config(
        tmp_path / "job.toml", job_doc(tmp_path / "data", questdb_server, {"kind": "synthetic"}, **tables)
    )
    try:
        ok(ticktape("questdb", "init", "-c", str(path)))
        for run in range(2):
            out = ok(ticktape("backfill", "-c", str(path), "--source", str(XRP)))
            qdb.wait_applied(questdb_server, *tables.values())
            rows = qdb.candle_rows(questdb_server, tables["candles_table"])
            strip = [msgspec.structs.replace(c, ts_final=0) for c in rows]
            assert strip == [
                msgspec.structs.replace(c, ts_final=0) for c in stored_candles(tmp_path / "data")
            ], run
            assert re.search(rf"candles written\W+{len(rows):,}\b", out), out
        assert qdb.count(questdb_server, tables["prices_table"]) == 0  # the fast path writes candles only
    finally:
        drop(questdb_server, *tables.values())


def test_replays_do_not_duplicate_and_revisions_upsert(
    questdb_server: QuestDBServer, cfg: QuestDBConfig
) -> None:
    init_tables(cfg, questdb_server.http_url)
    updates = [sample_price(i) for i in range(20)]
    updates[5] = sample_price(5, ts_event=updates[4].ts_event)  # same ns, another trade: two rows
    updates[6] = sample_price(6, trade_id="")  # no trade id: identity from src@offset
    candles = [sample_candle(0), sample_candle(1)]
    prices, candle_sink = prices_sink(cfg), candles_sink(cfg)
    assert prices is not None
    assert candle_sink is not None
    write(prices, updates[:12], updates[12:])
    write(candle_sink, candles[:1])
    qdb.wait_applied(questdb_server, cfg.candles_table)
    assert qdb.candle_rows(questdb_server, cfg.candles_table) == candles[:1]
    write(candle_sink, candles[1:])  # the revision replaces its row
    qdb.wait_applied(questdb_server, cfg.candles_table)
    assert qdb.candle_rows(questdb_server, cfg.candles_table) == candles[1:]
    write(prices, updates)  # the replay after a restart: same ticks, same order
    write(candle_sink, candles)
    qdb.wait_applied(questdb_server, cfg.prices_table, cfg.candles_table)
    assert qdb.price_rows(questdb_server, cfg.prices_table) == sorted(
        updates, key=lambda u: (u.src, u.offset)
    )
    assert qdb.candle_rows(questdb_server, cfg.candles_table) == candles[1:]


# -- hostile input and refusals --------------------------------------------------------------

HOSTILE = [
    'A B,C=D\\E"ü\n€', "'; DROP TABLE x; --", "tab\there", "trailing\\", " spaced ", "#hash=1",
    "emoji-🚀", "nul-free\r\nCRLF", "x" * 500, "ünïcødé-日本",
]  # fmt: skip


def test_hostile_symbol_and_venue_names_round_trip_unchanged(
    questdb_server: QuestDBServer, cfg: QuestDBConfig
) -> None:
    init_tables(cfg, questdb_server.http_url)
    updates = [sample_price(i, venue=name, symbol=name[::-1]) for i, name in enumerate(HOSTILE)]
    t0 = sample_candle().start
    candles = [
        sample_candle(0, venue=name, symbol=name[::-1], start=t0 + i * 60 * SEC, end=t0 + (i + 1) * 60 * SEC)
        for i, name in enumerate(HOSTILE)
    ]
    prices, candle_sink = prices_sink(cfg), candles_sink(cfg)
    assert prices is not None
    assert candle_sink is not None
    write(prices, updates)
    write(candle_sink, candles)
    qdb.wait_applied(questdb_server, cfg.prices_table, cfg.candles_table)
    assert qdb.price_rows(questdb_server, cfg.prices_table) == sorted(
        updates, key=lambda u: (u.src, u.offset)
    )
    assert qdb.candle_rows(questdb_server, cfg.candles_table) == sorted(
        candles, key=lambda c: (c.venue, c.symbol)
    )
    for name in HOSTILE:  # and each is found by a bound parameter
        (row,) = qdb.query(
            questdb_server, f'SELECT symbol FROM "{cfg.prices_table}" WHERE venue = %s', [name]
        )
        assert row["symbol"] == name[::-1]


def test_a_row_questdb_refuses_fails_the_flush_with_its_message(
    questdb_server: QuestDBServer, cfg: QuestDBConfig
) -> None:
    """A prices table made by hand with ``ts_kafka BOOLEAN``: QuestDB refuses the first row
    that carries a broker time (rows without one leave the column out)."""
    questdb_server.sql(
        f'CREATE TABLE "{cfg.prices_table}" (ts TIMESTAMP_NS, venue SYMBOL, symbol SYMBOL, ts_kafka BOOLEAN) '
        "TIMESTAMP(ts) PARTITION BY DAY WAL"
    )
    sink = prices_sink(cfg)
    assert sink is not None
    part = sink.build_part("questdb", "0", None)
    bad = sample_price(3)
    part.write_batch([[sample_price(1, ts_kafka=0), sample_price(2, ts_kafka=0), bad]])
    with pytest.raises(SinkError) as info:
        part.snapshot()
    message = str(info.value)
    assert f"QuestDB table {cfg.prices_table!r}: flush of 3 rows failed" in message
    assert "cast error" in message
    assert "ts_kafka" in message
    assert f"offending row (line 3 of the request): {bad!r}" in message
    part.sender.close(flush=False)
    qdb.wait_applied(questdb_server, cfg.prices_table)
    assert qdb.count(questdb_server, cfg.prices_table) == 0  # the request is all or nothing


# -- server down mid-run, then back ----------------------------------------------------------


@pytest.fixture
def private_questdb(tmp_path: Path) -> Iterator[QuestDBServer]:
    """A QuestDB of this test alone (it is stopped and restarted mid-run)."""
    server = QuestDBServer(tmp_path / "services", name="questdb-private").start()
    try:
        yield server
    finally:
        server.stop()


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_server_down_mid_run_then_back_loses_nothing(
    private_questdb: QuestDBServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """1. The job runs with recovery; QuestDB stops under it: the flush fails after
    ``retry_timeout``, the snapshot fails, the job exits with one error line. QuestDB comes
    back; the same command resumes from the last snapshot: every emitted row is there, once.
    2. QuestDB stops and comes back within ``retry_timeout``: the flush retries and succeeds."""
    server = private_questdb
    tables = unique_tables()
    source = {"kind": "file", "file": {"paths": [str(XRP)], "rate": 2500.0}}
    doc = job_doc(
        tmp_path / "data", server, source, retry_timeout="1s", auto_flush_interval="100ms", **tables
    )
    path = write_config(tmp_path / "job.toml", doc)
    ok(ticktape("questdb", "init", "-c", str(path)))
    recovery = tmp_path / "recovery"
    proc = start("run", "-c", str(path), "-r", str(recovery))

    def some_rows() -> bool:
        rows = qdb.query(
            server, "SELECT writerTxn FROM wal_tables() WHERE name = %s", [tables["prices_table"]]
        )
        return bool(rows) and rows[0]["writerTxn"] > 1

    _wait_for(some_rows, 60, "the first rows")
    server.stop()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert re.search(
        r"^error: QuestDB table 'tt_\w+': flush of \d+ rows failed after retrying for 1s: .*Connection refused",
        err,
        re.M,
    ), err[-2000:]
    assert "Traceback" not in err
    server.start()  # same ports, same data
    out = ok(ticktape("run", "-c", str(path), "-r", str(recovery)))
    assert "accounting balanced: True" in out
    qdb.wait_applied(server, *tables.values())
    emitted = emitted_prices(tmp_path / "data")
    assert len(emitted) > 12_000

    def no_wall_clock(u: PriceUpdate) -> PriceUpdate:  # re-processed ticks: the second run's stamps
        return msgspec.structs.replace(u, ts_recv=0, ts_proc=0)

    assert [no_wall_clock(u) for u in qdb.price_rows(server, tables["prices_table"])] == [
        no_wall_clock(u) for u in emitted
    ]
    assert [
        msgspec.structs.replace(c, ts_final=0) for c in qdb.candle_rows(server, tables["candles_table"])
    ] == [msgspec.structs.replace(c, ts_final=0) for c in stored_candles(tmp_path / "data")]

    # 2. down and back within the retry window: the flush waits it out
    cfg = questdb_config(conf=server.client_conf, partitions=1, retry_timeout="90s", **tables)
    sink = prices_sink(cfg)
    assert sink is not None
    part = sink.build_part("questdb", "0", None)
    late = [sample_price(i, symbol="LATE-USD") for i in range(50)]
    part.write_batch([late[:25]])
    part.snapshot()
    server.stop()
    part.write_batch([late[25:]])
    revive = threading.Thread(target=lambda: (time.sleep(1.0), server.start()))
    revive.start()
    try:
        with caplog.at_level("WARNING", logger="ticktape.sinks.questdb"):
            part.snapshot()  # retries until the server is back
    finally:
        revive.join()  # before the fixture stops the server: no server outlives the test
    assert any("retrying the flush of 25 rows" in r.getMessage() for r in caplog.records)
    part.close()
    qdb.wait_applied(server, tables["prices_table"])
    rows = qdb.query(
        server, f'SELECT count() AS n FROM "{tables["prices_table"]}" WHERE symbol = %s', ["LATE-USD"]
    )
    assert rows == [{"n": 50}]


# -- the benchmark scenario ------------------------------------------------------------------


def test_bench_scenario_writes_every_row_into_the_server(questdb_server: QuestDBServer) -> None:
    """``ticktape bench -s questdb`` on a small input: both sides acknowledged, every row there
    (the scenario checks the counts itself and drops its tables)."""
    from ticktape.infra.bench.questdb import questdb_scenario

    m = questdb_scenario(rows=3000, repeats=1, server=questdb_server)
    assert m.scenario == "questdb"
    assert m.value > 0
    assert m.baseline > 0
    assert m.extra["rows"] == 3000
    assert "ILP/HTTP into QuestDB 9." in m.extra["transport"]
    left = qdb.query(
        questdb_server, "SELECT table_name FROM tables() WHERE table_name LIKE %s", ["bench_prices_%"]
    )
    assert left == []
