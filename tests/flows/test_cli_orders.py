"""`ticktape orders|positions|pnl|backtest` as users run them (a real subprocess each)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import msgspec
import pytest

from tests.flows.test_cli import ticktape
from tests.support.data import TRADES
from ticktape.flows import wiring
from ticktape.flows.config import from_dict
from ticktape.schemas.records import PriceUpdate
from ticktape.sinks.cache.api import PRICE, Write, cache_key

XRP = str(TRADES / "XRP_ETH-trades.json.gz")


def lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def orders_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("orders")
    gen = ticktape("orders", "generate", str(data / "orders.jsonl"), "-n", "400", "--faults", "0.1")
    assert gen.returncode == 0, gen.stderr
    run = ticktape(
        "orders",
        "run",
        "--file",
        str(data / "orders.jsonl"),
        "--data-dir",
        str(data),
        "--set",
        "metrics.enabled=false",
    )
    assert run.returncode == 0, run.stderr
    assert "accounting balanced: True" in run.stdout
    assert "ILLEGAL_TRANSITION" in run.stdout
    return data


def test_orders_get_list_and_the_order_at_an_earlier_time(orders_dir: Path) -> None:
    listed = ticktape(
        "orders", "list", "--data-dir", str(orders_dir), "--status", "filled", "--limit", "5", "--json"
    )
    assert listed.returncode == 0, listed.stderr
    orders = lines(listed.stdout)
    assert len(orders) == 5
    assert all(o["status"] == "filled" and o["remaining"] == "0" for o in orders)
    order = orders[0]
    got = ticktape("orders", "get", str(order["order_id"]), "--data-dir", str(orders_dir), "--json")
    assert json.loads(got.stdout) == order
    fills = order["fills"]
    assert isinstance(fills, list)
    before_fill = int(fills[0]["ts"]) - 1
    then = ticktape(
        "orders",
        "get",
        str(order["order_id"]),
        "--at",
        str(before_fill),
        "--data-dir",
        str(orders_dir),
        "--json",
    )
    assert then.returncode == 0, then.stderr
    assert json.loads(then.stdout)["status"] in ("accepted", "pending")
    assert json.loads(then.stdout)["filled"] == "0"
    open_btc = lines(
        ticktape(
            "orders",
            "list",
            "--data-dir",
            str(orders_dir),
            "--status",
            "open",
            "--symbol",
            "BTC-USDT",
            "--json",
        ).stdout
    )
    assert open_btc
    assert {o["symbol"] for o in open_btc} == {"BTC-USDT"}
    assert {o["status"] for o in open_btc} <= {"pending", "accepted", "partially_filled"}


def test_positions_now_and_then_and_pnl_marked_to_the_cache(orders_dir: Path) -> None:
    now = lines(ticktape("positions", "--data-dir", str(orders_dir), "--json").stdout)
    assert len(now) == 9  # 3 accounts x 3 symbols
    early = lines(
        ticktape("positions", "--data-dir", str(orders_dir), "--at", "1700000010000000000", "--json").stdout
    )
    assert early
    assert sum(int(p["fills"]) for p in early) < sum(int(p["fills"]) for p in now)
    unmarked = lines(ticktape("pnl", "--data-dir", str(orders_dir), "--json").stdout)
    assert all(p["mark"] is None for p in unmarked if p["quantity"] != "0")
    # a cached price for BTC-USDT@synthetic marks those positions
    cfg = from_dict({"run": {"data_dir": str(orders_dir)}})
    cache = wiring.open_cache(cfg)
    update = PriceUpdate(
        "synthetic", "BTC-USDT", 43_100.5, 1.0, "buy", "1", time.time_ns(), 0, 0, 0, 1, "x", 0
    )
    cache.put_many(
        [
            Write(
                PRICE,
                cache_key(PRICE, "synthetic", "BTC-USDT"),
                update.ts_event,
                1,
                msgspec.json.encode(update),
            )
        ]
    )
    cache.close()
    marked = list(
        lines(ticktape("pnl", "--data-dir", str(orders_dir), "--symbol", "BTC-USDT", "--json").stdout)
    )
    assert len(marked) == 3
    for p in marked:
        assert p["mark"] == 43_100.5
        total = float(str(p["realized_pnl"])) + float(str(p["unrealized_pnl"]))
        assert float(str(p["total_pnl"])) == pytest.approx(total)


def test_orders_rebuild_gives_the_same_read_model(orders_dir: Path) -> None:
    before = ticktape("positions", "--data-dir", str(orders_dir), "--json").stdout
    rebuilt = ticktape("orders", "rebuild", "--data-dir", str(orders_dir))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "rebuilt the projections" in rebuilt.stdout
    assert ticktape("positions", "--data-dir", str(orders_dir), "--json").stdout == before


@pytest.mark.parametrize(
    ("strategy", "params"),
    [
        (
            "ticktape.flows.backtest.examples:MovingAverageCrossover",
            ["-p", "fast=5", "-p", "slow=20", "-p", "quantity=100"],
        ),
        (
            "ticktape.flows.backtest.examples:ZScoreMeanReversion",
            ["-p", "window=100", "-p", "entry=2.0", "-p", "quantity=50"],
        ),
    ],
)
def test_backtest_runs_both_example_strategies_on_the_shipped_trades(
    tmp_path: Path, strategy: str, params: list[str]
) -> None:
    out = tmp_path / "bt"
    result = ticktape(
        "backtest", "--trades", XRP, "-s", strategy, *params, "--cash", "1", "--taker-fee-bps", "10",
        "--latency", "20ms", "--data-dir", str(tmp_path), "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for label in (
        "total return",
        "Sharpe",
        "Sortino",
        "max drawdown",
        "win rate",
        "profit factor",
        "exposure",
    ):
        assert label in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["metrics"]["trades"] > 0
    assert report["order_dead_letters"] == 0
    assert (out / "equity.png").read_bytes()[:4] == b"\x89PNG"
    positions = lines(ticktape("positions", "--data-dir", str(out), "--json").stdout)
    assert [p["symbol"] for p in positions] == ["XRP-ETH"]


def test_backtest_parameters_from_toml_and_user_mistakes_are_one_error_line(tmp_path: Path) -> None:
    params = tmp_path / "params.toml"
    params.write_text("fast = 3\nslow = 9\nquantity = 10\n")
    ok = ticktape(
        "backtest",
        "--trades",
        XRP,
        "--params",
        str(params),
        "--no-chart",
        "--json",
        "--data-dir",
        str(tmp_path),
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["params"] == {"fast": 3, "slow": 9, "quantity": 10}
    for args in (
        ["-s", "nowhere.module:Strategy"],
        ["-s", "ticktape.flows.backtest.examples:MovingAverageCrossover", "-p", "fast=50", "-p", "slow=10"],
        ["-p", "bogus=1"],
        ["--speed", "fast"],
        ["--cash", "lots"],
    ):
        bad = ticktape("backtest", "--trades", XRP, *args, "--no-chart", "--data-dir", str(tmp_path))
        assert bad.returncode == 2, (args, bad.stdout, bad.stderr)
        assert bad.stderr.startswith("error:"), bad.stderr
        assert "Traceback" not in bad.stderr
    missing = ticktape("orders", "get", "nope", "--data-dir", str(tmp_path / "empty"))
    assert missing.returncode == 2
    assert missing.stderr.startswith("error:")
