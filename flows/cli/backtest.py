"""``ticktape backtest``: replay market data through a strategy and report its performance."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from ticktape.flows.cli.common import common_options, console, load
from ticktape.schemas.errors import InputError


def _param(item: str) -> tuple[str, Any]:
    key, eq, raw = item.partition("=")
    if not eq or not key.strip():
        raise InputError(f"-p expects NAME=VALUE, got {item!r}")
    try:
        value: Any = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip(), value


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


@click.command()
@common_options
@click.option(
    "-s",
    "--strategy",
    default=None,
    help="module:Class [default: [backtest] strategy, the MA crossover example].",
)
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A strategy parameter (repeatable; TOML values).",
)
@click.option(
    "--params",
    "params_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A TOML file of strategy parameters (top-level keys).",
)
@click.option(
    "--trades",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Trade history files (freqtrade JSON, CSV, Kraken REST JSON, Parquet).",
)
@click.option(
    "--archive", is_flag=True, default=None, help="Replay the job's archived trades ([archive] store)."
)
@click.option(
    "--candles", is_flag=True, default=None, help="Replay stored candles of --interval from the candle store."
)
@click.option(
    "--quotes",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Top-of-book files (CSV/Parquet: ts, symbol, bid, ask, bid_size, ask_size).",
)
@click.option("--symbols", default=None, help="Comma-separated symbols to replay (default: all).")
@click.option("--from", "start", default=None, help="Replay from this time (ns, YYYY-MM-DD, RFC 3339).")
@click.option("--to", "end", default=None, help="Replay up to this time (exclusive).")
@click.option("--interval", default=None, help="Candle interval for on_candle, e.g. 1m [default: 1m].")
@click.option("--speed", default=None, help="max, 1x, 10x, ... [default: max].")
@click.option("--cash", default=None, help="Initial cash (decimal) [default: 10000].")
@click.option("--latency", default=None, help="Order latency, e.g. 50ms [default: 0s].")
@click.option("--slippage-bps", type=float, default=None)
@click.option("--maker-fee-bps", type=float, default=None)
@click.option("--taker-fee-bps", type=float, default=None)
@click.option(
    "--participation",
    type=float,
    default=None,
    help="Largest share of a trade's volume our fills take [default: 1].",
)
@click.option("--sample", default=None, help="Equity sampling period [default: 1m].")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Output directory [default: <data_dir>/backtests/<strategy>].",
)
@click.option("--no-chart", is_flag=True, help="Skip the PNG.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def backtest(
    strategy: str | None, params: tuple[str, ...], params_file: Path | None, trades: tuple[Path, ...],
    archive: bool | None, candles: bool | None, quotes: tuple[Path, ...], symbols: str | None,
    start: str | None, end: str | None, interval: str | None, speed: str | None, cash: str | None,
    latency: str | None, slippage_bps: float | None, maker_fee_bps: float | None, taker_fee_bps: float | None,
    participation: float | None, sample: str | None, out_dir: Path | None, no_chart: bool, as_json: bool,
    **common: Any,
) -> None:  # fmt: skip
    """Replay trades/quotes/candles chronologically through a strategy (module:Class) with
    simulated execution; print the report and write report.json, equity.csv and a PNG.

    \b
    ticktape backtest --trades tests/data/trades/XRP_ETH-trades.json.gz \\
        -s ticktape.flows.backtest.examples:MovingAverageCrossover -p fast=5 -p slow=20 -p quantity=100 --cash 1
    """
    from ticktape.flows.backtest.run import run_backtest

    strategy_params: dict[str, Any] = {}
    if params_file is not None:
        try:
            strategy_params.update(tomllib.loads(params_file.read_text()))
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"--params {params_file}: not valid TOML: {exc}") from None
    strategy_params.update(dict(_param(p) for p in params))
    flags: dict[str, Any] = {
        "strategy": strategy, "trades": [str(p) for p in trades] or None, "archive": archive, "candles": candles,
        "quotes": [str(p) for p in quotes] or None,
        "symbols": [s.strip() for s in symbols.split(",") if s.strip()] if symbols else None,
        "start": start, "end": end, "interval": interval, "speed": speed, "cash": cash, "latency": latency,
        "slippage_bps": slippage_bps, "maker_fee_bps": maker_fee_bps, "taker_fee_bps": taker_fee_bps,
        "participation": participation, "sample": sample,
    }  # fmt: skip
    section = {k: v for k, v in flags.items() if v is not None}
    cfg, _ = load(extra={"backtest": section}, **common)
    if strategy_params:
        import msgspec

        cfg = msgspec.structs.replace(
            cfg,
            backtest=msgspec.structs.replace(cfg.backtest, params={**cfg.backtest.params, **strategy_params}),
        )
    name = cfg.backtest.strategy.rpartition(":")[2] or "backtest"
    out = out_dir or cfg.data_path / "backtests" / name
    result = run_backtest(cfg, out, chart=not no_chart)
    rep = result.report
    if as_json:
        click.echo(json.dumps(rep, indent=2, sort_keys=True))
        return
    con = console()
    m = rep["metrics"]
    table = Table(
        title=f"{name} {rep['params']} on {', '.join(rep['inputs']['symbols'])}", title_justify="left"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("initial equity", rep["settings"]["cash"]), ("final equity", rep["final_equity"]),
        ("total return", m["total_return"]), ("CAGR", m["cagr"]), ("annualized volatility", m["volatility"]),
        ("Sharpe", m["sharpe"]), ("Sortino", m["sortino"]), ("max drawdown", m["max_drawdown"]),
        ("max drawdown duration (s)", m["max_drawdown_duration_s"]), ("win rate", m["win_rate"]),
        ("profit factor", m["profit_factor"]), ("exposure", m["exposure"]), ("trades (closed round trips)", m["trades"]),
        ("orders", rep["orders"]), ("fills", rep["fills"]),
    ]  # fmt: skip
    for label, value in rows:
        table.add_row(label, _fmt(value))
    con.print(table)
    if rep["trades"]:
        from ticktape.schemas.timeparse import ns_to_iso

        trips = Table(title=f"trades (first 20 of {len(rep['trades'])})", title_justify="left")
        for col in ("symbol", "side", "entry (UTC)", "exit (UTC)", "qty", "entry px", "exit px", "pnl"):
            trips.add_column(col, justify="left" if col in ("symbol", "side") else "right")
        for t in rep["trades"][:20]:
            trips.add_row(
                t["symbol"], t["direction"], ns_to_iso(t["entry_ts"])[:19],
                ns_to_iso(t["exit_ts"])[:19] if t["exit_ts"] is not None else "open", t["quantity"],
                _fmt(t["entry_price"]), _fmt(t["exit_price"]), f"{t['pnl_value']:.6g}",
            )  # fmt: skip
        from rich.console import Console

        Console(width=max(con.width, 130), highlight=False).print(trips)
    rate = result.events / result.elapsed if result.elapsed > 0 else 0.0
    con.print(
        f"{result.events:,} market events in {result.elapsed:.2f}s ({rate:,.0f}/s); report {result.report_path}"
        + (f", chart {result.chart_path}" if result.chart_path else "")
    )
