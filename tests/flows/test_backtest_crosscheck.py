"""Cross-checks of the backtester on the real XRP/ETH trades and their candles: the moving
average crossover's trades and final equity equal (1) a vectorized polars computation
written here, independently of the engine, and (2) the backtesting.py library."""

from __future__ import annotations

import gzip
import json
import warnings
from decimal import Decimal
from typing import Any

import polars as pl
import pytest

from tests.support.data import TRADES
from tests.support.flows import config
from ticktape.flows.backfill.run import backfill
from ticktape.flows.backtest.run import run_backtest

FAST, SLOW, QTY, FEE_BPS = 5, 20, 2, 10.0
XRP = TRADES / "XRP_ETH-trades.json.gz"


def polars_candles() -> pl.DataFrame:
    """1-minute OHLCV of the trades (windows with trades only), open/close by (time, id)."""
    with gzip.open(XRP) as fh:
        rows = json.load(fh)
    trades = pl.DataFrame(
        {"ts": [r[0] for r in rows], "id": [int(r[1]) for r in rows], "price": [r[4] for r in rows],
         "amount": [r[5] for r in rows]}
    )  # fmt: skip
    return (
        trades.sort(["ts", "id"])
        .group_by((pl.col("ts") // 60_000).alias("w"), maintain_order=True)
        .agg(
            pl.col("price").first().alias("open"),
            pl.col("price").max().alias("high"),
            pl.col("price").min().alias("low"),
            pl.col("price").last().alias("close"),
            pl.col("amount").sum().alias("volume"),
        )
        .sort("w")
        .with_columns((pl.col("w") * 60_000_000_000).alias("start"))
    )


def polars_crossover(candles: pl.DataFrame, fee: float) -> tuple[list[dict[str, Any]], float]:
    """Long-only SMA crossover, orders at a candle's close filled at the next candle's open:
    every trade (entry/exit time and price) and the final equity from 1 unit of cash."""
    df = candles.with_columns(
        (pl.col("close").rolling_mean(FAST) > pl.col("close").rolling_mean(SLOW)).alias("above"),
        pl.col("open").shift(-1).alias("next_open"), pl.col("start").shift(-1).alias("next_start"),
    )  # fmt: skip
    df = df.with_columns(pl.col("above").shift(1).alias("before"))
    crosses = df.filter(
        pl.col("above").is_not_null() & pl.col("before").is_not_null() & (pl.col("above") != pl.col("before"))
    )
    crosses = crosses.filter(pl.col("next_open").is_not_null())  # a cross on the last candle never fills
    up = crosses["above"].to_list()
    first_up = up.index(True)
    crosses = crosses.slice(first_up)  # a down-cross while flat does nothing; then they alternate
    entries = crosses.gather_every(2, 0)
    exits = crosses.gather_every(2, 1)
    trades = []
    cash = 1.0
    for i in range(entries.height):
        e_px, e_ts = entries["next_open"][i], entries["next_start"][i]
        cash -= QTY * e_px * (1 + fee)
        if i < exits.height:
            x_px, x_ts = exits["next_open"][i], exits["next_start"][i]
            cash += QTY * x_px * (1 - fee)
            trades.append({"entry_ts": e_ts, "exit_ts": x_ts, "entry_price": e_px, "exit_price": x_px})
        else:
            cash += QTY * candles["close"][-1]  # still open: marked at the last close
            trades.append({"entry_ts": e_ts, "exit_ts": None, "entry_price": e_px, "exit_price": None})
    return trades, cash


@pytest.fixture(scope="module")
def engine_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[float, dict[str, Any]]:
    data = tmp_path_factory.mktemp("xcheck")
    cfg = config(data, candles={"intervals": ["1m"], "grace": "0s"})
    backfill(cfg, files=[XRP])  # the job's own candles of the real trades, into the candle store
    out = {}
    for fee in (0.0, FEE_BPS):
        section = {
            "candles": True, "interval": "1m", "cash": "1", "taker_fee_bps": fee,
            "strategy": "ticktape.flows.backtest.examples:MovingAverageCrossover",
            "params": {"fast": FAST, "slow": SLOW, "quantity": QTY},
        }  # fmt: skip
        out[fee] = run_backtest(
            config(data, candles={"intervals": ["1m"]}, backtest=section), data / f"bt-{fee}", chart=False
        ).report
    return out


def test_the_candles_are_the_same_candles(engine_runs: dict[float, dict[str, Any]]) -> None:
    assert engine_runs[0.0]["inputs"]["events"] == polars_candles().height
    assert polars_candles()["volume"].min() >= QTY  # so every order fills at once in both models


def test_crossover_trades_and_final_equity_equal_a_vectorized_polars_computation(
    engine_runs: dict[float, dict[str, Any]],
) -> None:
    candles = polars_candles()
    for fee, report in engine_runs.items():
        want_trades, want_equity = polars_crossover(candles, fee / 10_000)
        got = [
            {"entry_ts": t["entry_ts"], "exit_ts": t["exit_ts"], "entry_price": float(t["entry_price"]),
             "exit_price": float(t["exit_price"]) if t["exit_price"] is not None else None}
            for t in report["trades"]
        ]  # fmt: skip
        assert len(got) > 50
        assert got == want_trades
        tolerance = 1e-12 if fee == 0 else 5e-10 * report["fills"]  # fees are exact to 1e-9 in the engine
        assert float(Decimal(report["final_equity"])) == pytest.approx(want_equity, abs=tolerance, rel=0)


def test_crossover_equals_the_backtesting_py_library(engine_runs: dict[float, dict[str, Any]]) -> None:
    import pandas as pd
    from backtesting import Backtest, Strategy

    frame = polars_candles().to_pandas()
    frame.index = pd.to_datetime(frame["start"], unit="ns")
    frame = frame.rename(columns=str.capitalize)[["Open", "High", "Low", "Close", "Volume"]]

    def sma(values: Any, n: int) -> Any:
        return pd.Series(values).rolling(n).mean()

    class Crossover(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.fast = self.I(sma, self.data.Close, FAST)
            self.slow = self.I(sma, self.data.Close, SLOW)

        def next(self) -> None:
            above, before = self.fast[-1] > self.slow[-1], self.fast[-2] > self.slow[-2]
            if above and not before and not self.position:
                self.buy(size=QTY)
            elif before and not above and self.position:
                self.position.close()

    for fee, report in engine_runs.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stats = Backtest(frame, Crossover, cash=1, commission=fee / 10_000, finalize_trades=False).run()
        theirs = stats._trades
        closed = [t for t in report["trades"] if t["exit_ts"] is not None]
        assert len(theirs) == len(closed)
        assert [int(t.value) for t in theirs["EntryTime"]] == [t["entry_ts"] for t in closed]
        assert [int(t.value) for t in theirs["ExitTime"]] == [t["exit_ts"] for t in closed]
        assert theirs["EntryPrice"].tolist() == [float(t["entry_price"]) for t in closed]
        assert theirs["ExitPrice"].tolist() == [float(t["exit_price"]) for t in closed]
        tolerance = 1e-12 if fee == 0 else 5e-10 * report["fills"]
        assert float(Decimal(report["final_equity"])) == pytest.approx(
            stats["Equity Final [$]"], abs=tolerance, rel=0
        )
