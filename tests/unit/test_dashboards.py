"""The Grafana dashboards and provisioning (infra/grafana/) and the Prometheus files are
consistent: generated output is checked in, panel ids are unique, every target has a query
on a provisioned datasource, every metric they use is in infra/METRICS.md, and the Market
dashboard's SQL runs against a table with the columns of ticktape.sinks.questdb.ddl.

The PromQL itself is evaluated against a real Prometheus in
tests/integration/test_observability.py; promtool checks are there too."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from ticktape.infra.grafana import generate as grafana_gen
from ticktape.sinks.questdb.config import QuestDBConfig
from ticktape.sinks.questdb.ddl import CANDLE_COLUMNS, TS

INFRA = Path(__file__).parents[2] / "infra"
GRAFANA = INFRA / "grafana"
BOARDS = {p.name: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))}
CATALOGUE = (INFRA / "METRICS.md").read_text()
GRAFANA_BUILTINS = {"__timeFilter", "__all", "__rate_interval", "__interval"}


def provisioned() -> dict[str, str]:
    doc = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "ticktape.yml").read_text())
    return {d["uid"]: d["type"] for d in doc["datasources"]}


def panels() -> list[tuple[str, dict[str, Any]]]:
    return [(name, p) for name, board in BOARDS.items() for p in board["panels"]]


def test_generated_dashboards_are_checked_in_and_deterministic() -> None:
    rendered = grafana_gen.render()
    assert rendered == grafana_gen.render()
    assert set(rendered) == set(BOARDS) == {"pipeline.json", "storage.json", "market.json"}
    for name, text in rendered.items():
        assert (GRAFANA / "dashboards" / name).read_text() == text, (
            f"run python -m ticktape.infra.grafana.generate ({name})"
        )
    assert grafana_gen.main(["--check"]) == 0


def test_check_mode_reports_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert grafana_gen.main(["--out", str(tmp_path)]) == 0
    assert grafana_gen.main(["--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "storage.json").write_text("{}")
    assert grafana_gen.main(["--check", "--out", str(tmp_path)]) == 1
    assert "storage.json" in capsys.readouterr().err


def test_dashboards_are_well_formed() -> None:
    uids = [b["uid"] for b in BOARDS.values()]
    assert len(set(uids)) == len(uids)
    for name, board in BOARDS.items():
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        assert board["schemaVersion"] >= 36
        assert board["id"] is None  # provisioning assigns ids
        cells: set[tuple[int, int]] = set()
        for p in board["panels"]:
            g = p["gridPos"]
            assert g["x"] >= 0, (name, p["title"])
            assert g["x"] + g["w"] <= 24, (name, p["title"])
            area = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
            assert not area & cells, f"{name}: {p['title']!r} overlaps another panel"
            cells |= area


def test_every_target_has_a_query_on_a_provisioned_datasource() -> None:
    sources = provisioned()
    assert sources == {
        "ticktape-prometheus": "prometheus",
        "ticktape-questdb": "grafana-postgresql-datasource",
    }
    for name, p in panels():
        if p["type"] == "row":
            continue
        assert p["targets"], (name, p["title"])
        assert sources[p["datasource"]["uid"]] == p["datasource"]["type"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs))
        for t in p["targets"]:
            uid, typ = t["datasource"]["uid"], t["datasource"]["type"]
            assert sources[uid] == typ, (name, p["title"])
            query = t["expr"] if typ == "prometheus" else t["rawSql"]
            assert query.strip(), (name, p["title"])
    for name, board in BOARDS.items():
        for var in board["templating"]["list"]:
            if "datasource" in var:
                assert sources[var["datasource"]["uid"]] == var["datasource"]["type"], (name, var["name"])


def test_every_variable_used_is_defined() -> None:
    for name, board in BOARDS.items():
        defined = {v["name"] for v in board["templating"]["list"]} | GRAFANA_BUILTINS
        text = json.dumps([p.get("targets", []) for p in board["panels"]] + [board["templating"]])
        used = set(re.findall(r"\$(\w+)", text))
        assert used <= defined, f"{name}: undefined variables {used - defined}"


def _metric_names(expr: str) -> set[str]:
    names = set(re.findall(r"(?<![\w:])(ticktape_[a-z0-9_]+)(?![\w:])", expr))  # not rule names
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


def test_every_metric_used_is_in_the_catalogue() -> None:
    used: set[str] = set()
    for _, p in panels():
        for t in p.get("targets", []):
            used |= _metric_names(t.get("expr", ""))
    for rules in (INFRA / "prometheus" / "rules").glob("*.yml"):
        for group in yaml.safe_load(rules.read_text())["groups"]:
            for rule in group["rules"]:
                used |= _metric_names(rule["expr"])
    assert len(used) > 40
    missing = sorted(n for n in used if f"`{n}`" not in CATALOGUE)
    assert not missing, f"not in infra/METRICS.md: {missing}"


def test_no_symbol_label_outside_the_allow_list_metric() -> None:
    for name, p in panels():
        for t in p.get("targets", []):
            if "symbol" in t.get("expr", ""):
                assert "ticktape_symbol_ticks_total" in t["expr"], (name, p["title"])


# -- Market: SQL against the candle table of ticktape.sinks.questdb.ddl --------------------------------------

_DUCK_TYPES = {TS: "TIMESTAMP", "SYMBOL": "VARCHAR", "DOUBLE": "DOUBLE", "INT": "INTEGER", "LONG": "BIGINT",
               "VARCHAR": "VARCHAR"}  # fmt: skip


def _sql(raw: str, symbol: str, venue: str, interval: int) -> str:
    time_filter = "ts BETWEEN TIMESTAMP '2024-01-01 00:00:00' AND TIMESTAMP '2024-01-02 00:00:00'"
    return (
        raw.replace("$__timeFilter(ts)", time_filter)
        .replace("$symbol", symbol)
        .replace("$venue", venue)
        .replace("$candle_interval", str(interval))
    )


def test_market_sql_runs_against_the_candle_table() -> None:
    table = QuestDBConfig().candles_table
    cols = ", ".join(f'"{name}" {_DUCK_TYPES[typ]}' for name, typ in CANDLE_COLUMNS)
    con = duckdb.connect()
    con.execute(f"CREATE TABLE {table} ({cols})")
    rows = [
        ("2024-01-01 00:00:00", "binance", "BTC-USDT", 60, 1, 3, 0.5, 2, 10, 20, 2, 4, 6, 4, "1", "4", 0, "2024-01-01 00:01:00"),
        ("2024-01-01 00:01:00", "binance", "BTC-USDT", 60, 2, 4, 1.5, 3, 5, 15, 3, 2, 1, 4, "5", "6", 1, "2024-01-01 00:03:00"),
        ("2024-01-01 00:00:00", "binance", "BTC-USDT", 300, 1, 4, 0.5, 3, 15, 35, 2, 6, 7, 8, "1", "6", 0, "2024-01-01 00:05:00"),
        ("2024-01-01 00:00:00", "kraken", "BTC-USD", 60, 9, 9, 9, 9, 1, 9, 9, 1, 1, 0, "1", "1", 0, "2024-01-01 00:01:00"),
    ]  # fmt: skip
    con.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(CANDLE_COLUMNS))})", rows)
    board = BOARDS["market.json"]
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            got = con.execute(_sql(var["query"], "BTC-USDT", "binance", 60)).fetchall()
            assert got, var["name"]
    seen = 0
    for p in board["panels"]:
        for t in p.get("targets", []):
            result = con.execute(_sql(t["rawSql"], "BTC-USDT", "binance", 60))
            columns = [d[0] for d in result.description]
            got = result.fetchall()
            if "revision > 0" in t["rawSql"]:
                assert len(got) == 1
            else:
                assert len(got) == 2, p["title"]  # the 1m windows of one symbol and venue
            if t["format"] == "time_series":
                assert columns[0] == "time"
            if p["type"] == "candlestick":
                assert columns == ["time", "open", "high", "low", "close", "volume"]
            seen += 1
    assert seen == 6


def test_questdb_datasource_uses_the_pg_wire() -> None:
    doc = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "ticktape.yml").read_text())
    (qdb,) = [d for d in doc["datasources"] if d["uid"] == "ticktape-questdb"]
    assert qdb["url"].endswith(":8812")
    assert qdb["user"] == "admin"
    assert qdb["jsonData"]["database"] == "qdb"
    assert qdb["secureJsonData"]["password"] == "${QUESTDB_PG_PASSWORD}"  # never the secret itself
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "ticktape.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/ticktape"
