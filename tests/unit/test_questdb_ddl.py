"""QuestDB tables (exact DDL, identifier checks, ``init`` over ``/exec``) and the sink's
configuration: conf-string resolution, secrets only from the environment, redaction."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from tests.support.ilp_wire import FakeQuestDB
from ticktape.schemas.durations import dec_hook
from ticktape.schemas.errors import ConfigError, SinkError
from ticktape.sinks.questdb.config import QuestDBConfig, parse_conf, resolve_conf, sender_options
from ticktape.sinks.questdb.ddl import create_table, ddl, default_http_addr, init_tables

PRICES = (
    'CREATE TABLE IF NOT EXISTS "ticktape_prices" ("ts" TIMESTAMP_NS, "venue" SYMBOL, "symbol" SYMBOL, '
    '"side" SYMBOL, "price" DOUBLE, "size" DOUBLE, "trade_id" VARCHAR, "tick_id" VARCHAR, "seq" LONG, '
    '"ts_kafka" TIMESTAMP_NS, "ts_recv" TIMESTAMP_NS, "ts_proc" TIMESTAMP_NS, "src" VARCHAR, "offset" LONG) '
    'TIMESTAMP("ts") PARTITION BY DAY WAL DEDUP UPSERT KEYS("ts", "venue", "symbol", "tick_id")'
)
CANDLES = (
    'CREATE TABLE IF NOT EXISTS "ticktape_candles" ("ts" TIMESTAMP_NS, "venue" SYMBOL, "symbol" SYMBOL, '
    '"interval" INT, "open" DOUBLE, "high" DOUBLE, "low" DOUBLE, "close" DOUBLE, "volume" DOUBLE, '
    '"notional" DOUBLE, "vwap" DOUBLE, "trades" LONG, "buy_volume" DOUBLE, "sell_volume" DOUBLE, '
    '"first_trade_id" VARCHAR, "last_trade_id" VARCHAR, "revision" INT, "ts_final" TIMESTAMP_NS) '
    'TIMESTAMP("ts") PARTITION BY DAY WAL DEDUP UPSERT KEYS("ts", "venue", "symbol", "interval")'
)
QUOTES = (
    'CREATE TABLE IF NOT EXISTS "ticktape_quotes" ("ts" TIMESTAMP_NS, "venue" SYMBOL, "symbol" SYMBOL, '
    '"bid" DOUBLE, "bid_size" DOUBLE, "ask" DOUBLE, "ask_size" DOUBLE, "mid" DOUBLE, "spread" DOUBLE, '
    '"seq" LONG, "update_id" LONG, "ts_recv" TIMESTAMP_NS, "src" VARCHAR, "offset" LONG) '
    'TIMESTAMP("ts") PARTITION BY DAY WAL DEDUP UPSERT KEYS("ts", "venue", "symbol", "seq")'
)
HOSTILE_NAMES = [
    "foo; DROP TABLE x",
    'x" (a INT); DROP TABLE y; --',
    "1abc",
    "a-b",
    "",
    "a b",
    "x" * 128,
    "é",
]


def from_file(**section: Any) -> QuestDBConfig:
    """As ``[outputs.questdb]`` of a config file is decoded."""
    return msgspec.convert(section, QuestDBConfig, dec_hook=dec_hook)


@pytest.fixture
def fake() -> Iterator[FakeQuestDB]:
    server = FakeQuestDB()
    yield server
    server.close()


def test_ddl_exact_statements() -> None:
    assert ddl(QuestDBConfig()) == [
        PRICES,
        'ALTER TABLE "ticktape_prices" DEDUP ENABLE UPSERT KEYS("ts", "venue", "symbol", "tick_id")',
        CANDLES,
        'ALTER TABLE "ticktape_candles" DEDUP ENABLE UPSERT KEYS("ts", "venue", "symbol", "interval")',
        QUOTES,
        'ALTER TABLE "ticktape_quotes" DEDUP ENABLE UPSERT KEYS("ts", "venue", "symbol", "seq")',
    ]


def test_ddl_micros_and_custom_names() -> None:
    statements = ddl(QuestDBConfig(prices_table="px", candles_table="ohlc", timestamp_type="TIMESTAMP"))
    assert statements[0] == PRICES.replace("TIMESTAMP_NS", "TIMESTAMP").replace('"ticktape_prices"', '"px"')
    assert statements[2] == CANDLES.replace("TIMESTAMP_NS", "TIMESTAMP").replace(
        '"ticktape_candles"', '"ohlc"'
    )
    assert statements[3].startswith('ALTER TABLE "ohlc" DEDUP ENABLE')


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_table_names_are_identifiers(name: str) -> None:
    with pytest.raises(ConfigError, match="prices_table: expected a name of letters"):
        from_file(prices_table=name)
    with pytest.raises(ConfigError, match="expected a name"):
        create_table(name, (("ts", "TIMESTAMP"),), ("ts",), "TIMESTAMP")


def test_other_config_checks() -> None:
    with pytest.raises(ConfigError, match="must differ"):
        from_file(prices_table="t", candles_table="t")
    with pytest.raises(msgspec.ValidationError, match=r"Expected `int` >= 1 - at `\$.partitions`"):
        from_file(partitions=0)
    with pytest.raises(msgspec.ValidationError, match="timestamp_type"):
        from_file(timestamp_type="DATE")
    assert from_file(auto_flush_interval="250ms", retry_timeout="1m").retry_timeout == 60_000_000_000


@pytest.mark.parametrize("key", ["password", "token", "token_x", "tls_roots_password"])
def test_secrets_only_from_the_environment(key: str) -> None:
    with pytest.raises(ConfigError, match="secrets only from the environment: set QDB_CLIENT_CONF") as info:
        from_file(conf=f"https::addr=db.example:9000;username=u;{key}=s3cr3t;")
    assert "s3cr3t" not in str(info.value)
    env = {"QDB_CLIENT_CONF": f"https::addr=db.example:9000;username=u;{key}=s3cr3t;"}
    resolved = resolve_conf(QuestDBConfig(), env)
    assert resolved.source == "QDB_CLIENT_CONF"
    assert resolved.redacted() == f"https::addr=db.example:9000;username=u;{key}=***;"
    assert resolved.scrub("bad value s3cr3t here") == "bad value *** here"


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ("ws::addr=127.0.0.1:9000;", "expected one of the ILP protocols"),
        ("http::addr=127.0.0.1:9000;auto_flush_rows=5;", "auto_flush_rows is set by the sink"),
        ("http::username=u;", "expected addr=host:port"),
        ("127.0.0.1:9000", "expected a QuestDB conf string"),
        ("http::addr=x:1;=oops;", "expected 'key=value;' at character 16"),
    ],
)
def test_bad_conf_strings(conf: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_file(conf=conf)


def test_conf_resolution_and_sender_options() -> None:
    assert parse_conf("http::addr=h:1;x=a;;b;y=;", "t") == ("http", {"addr": "h:1", "x": "a;b", "y": ""})
    default = resolve_conf(QuestDBConfig(), {})
    assert (default.text, default.source) == ("http::addr=127.0.0.1:9000;", "default")
    env = {"QDB_CLIENT_CONF": "tcp::addr=10.0.0.5:9009;"}
    assert resolve_conf(QuestDBConfig(), env).addr == "10.0.0.5:9009"
    assert resolve_conf(QuestDBConfig(conf="http::addr=a:1;"), env).source == "outputs.questdb.conf"
    cfg = from_file(retry_timeout="2500ms")
    assert sender_options(cfg, resolve_conf(cfg, {})) == {"auto_flush": False, "retry_timeout": 2500}
    tcp = resolve_conf(QuestDBConfig(), env)
    assert sender_options(QuestDBConfig(), tcp) == {"auto_flush": False, "protocol_version": 2}
    assert sender_options(QuestDBConfig(timestamp_type="TIMESTAMP"), tcp) == {"auto_flush": False}
    pinned = resolve_conf(QuestDBConfig(conf="tcp::addr=h:9009;protocol_version=1;"), {})
    assert sender_options(QuestDBConfig(), pinned) == {"auto_flush": False}


def test_default_http_addr() -> None:
    def addr(conf: str) -> str:
        return default_http_addr(resolve_conf(QuestDBConfig(conf=conf), {}))

    assert addr("http::addr=db:9000;") == "http://db:9000"
    assert addr("https::addr=db:443;") == "https://db:443"
    assert addr("tcp::addr=db:9009;") == "http://db:9000"
    assert addr("tcps::addr=db:9009;") == "https://db:9000"


def test_init_tables_runs_the_ddl_over_exec(fake: FakeQuestDB) -> None:
    cfg = QuestDBConfig(enabled=True)
    init_tables(cfg, fake.url, env={"QDB_CLIENT_CONF": f"{fake.conf}username=admin;password=quest;"})
    assert fake.queries == ddl(cfg)  # URL-encoded on the way, decoded by the server
    assert fake.headers[0]["Authorization"] == "Basic YWRtaW46cXVlc3Q="


def test_init_tables_shows_questdb_errors(fake: FakeQuestDB) -> None:
    fake.exec_errors["TIMESTAMP_NS"] = {"error": "unsupported column type: TIMESTAMP_NS", "position": 41}
    with pytest.raises(SinkError) as info:
        init_tables(QuestDBConfig(), fake.url, env={})
    message = str(info.value)
    assert "HTTP 400: unsupported column type: TIMESTAMP_NS (at character 41)" in message
    assert 'timestamp_type = "TIMESTAMP"' in message
    init_tables(QuestDBConfig(timestamp_type="TIMESTAMP"), fake.url, env={})


def test_init_tables_unreachable_or_bad_address() -> None:
    with pytest.raises(SinkError, match=r"cannot reach QuestDB at http://127\.0\.0\.1:9"):
        init_tables(QuestDBConfig(), "http://127.0.0.1:9", env={})
    with pytest.raises(ConfigError, match="expected http://host:port"):
        init_tables(QuestDBConfig(), "file:///etc/passwd", env={})
