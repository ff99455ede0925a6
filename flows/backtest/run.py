"""One backtest end to end: inputs -> engine -> order event log -> projections -> report.

``run_backtest(cfg, out_dir)`` loads the market data of ``[backtest]``, runs the strategy
through the engine and the simulated broker, appends every order event to
``<out_dir>/orders/events`` (the same event log format as live orders, one partition
file per ``[orders] eventlog_partitions``), folds that log into
``<out_dir>/orders/projections.sqlite`` (the same projector as live orders), and writes
``report.json``, ``equity.csv`` and ``equity.png`` (unless ``chart=False``). The orders
directory is recreated by each run. The report depends only on the inputs and the
settings (file names, never paths or wall-clock times): same input, same report, bit for
bit (tested).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ticktape.flows import wiring
from ticktape.flows.backfill.inputs import read_archive, read_files
from ticktape.flows.backtest.broker import Execution, SimBroker, fx
from ticktape.flows.backtest.data import (
    MarketData,
    candles_from_store,
    candles_from_trades,
    read_quotes,
    trades_from_tables,
)
from ticktape.flows.backtest.engine import Engine, Samples
from ticktape.flows.backtest.metrics import drawdown_series, metrics
from ticktape.flows.backtest.report import closed_pnls, round_trips, to_json
from ticktape.flows.backtest.strategy import Strategy, load_strategy, overrides
from ticktape.flows.config import BacktestConfig, Config, speed_factor
from ticktape.schemas.errors import InputError
from ticktape.schemas.orders.fixed import SCALE2, format_fixed, parse_fixed
from ticktape.schemas.timeparse import rfc3339_to_ns
from ticktape.sinks.candles.store import CandleStore
from ticktape.sinks.eventlog.log import EventLogPartition, partition_of, partition_path
from ticktape.sinks.projections.open import open_store
from ticktape.sinks.projections.projector import Projector


@dataclass
class BacktestResult:
    report: dict[str, Any]
    samples: Samples
    out_dir: Path
    report_path: Path
    chart_path: Path | None
    elapsed: float
    events: int


def _time(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if text.lstrip("-").isdigit():
        return int(text)
    if len(text) == 10:
        text += "T00:00:00Z"
    try:
        return rfc3339_to_ns(text)
    except ValueError:
        raise InputError(f"backtest: cannot read time {text!r} (ns, YYYY-MM-DD or RFC 3339)") from None


def _remap(data: MarketData, old: list[str], new: list[str]) -> None:
    mapping = np.array([new.index(n) for n in old], np.int32)
    for part in (data.trades, data.candles, data.quotes):
        if part is not None:
            part.sym = mapping[part.sym]


def load_market_data(cfg: Config, bt: BacktestConfig, strategy: Strategy) -> MarketData:
    """The market data ``[backtest]`` names (see :mod:`ticktape.flows.backtest.data`)."""
    since, until = _time(bt.start), _time(bt.end)
    symbols = list(bt.symbols)
    data = MarketData(names=[])
    if bt.trades or bt.archive:
        if bt.archive:
            arch = wiring.archive_config(cfg)
            tables = read_archive(arch.store, arch.prefix, since=since, until=until, symbols=symbols)
        else:
            tables, _ = read_files([Path(p) for p in bt.trades], cfg.source.file)
        data.names, data.trades = trades_from_tables(tables, symbols=symbols, since=since, until=until)
    interval_s = int(bt.interval) // 1_000_000_000
    if bt.candles:
        store = CandleStore(wiring.candles_dir(cfg))
        names, candles = candles_from_store(
            store, interval_s=interval_s, since=since, until=until, symbols=symbols
        )
        if data.trades is None:
            data.names, data.candles = names, candles
            data.candle_symbols = frozenset(range(len(names)))
        else:  # trades and candles: the trades' symbols (trades fill the orders)
            if not set(names) <= set(data.names):
                raise InputError(
                    f"stored candles of symbols without trades: {sorted(set(names) - set(data.names))} (use --symbols)"
                )
            remap = np.array([data.names.index(n) for n in names], np.int32)
            candles.sym = remap[candles.sym]
            data.candles = candles
    elif overrides(strategy, "on_candle") and data.trades is not None:
        data.candles = candles_from_trades(data.trades, interval_s)
    for path in bt.quotes:
        old = list(data.names)
        names, quotes = read_quotes(Path(path), old)
        if names != old and old:
            _remap(data, old, names)
        data.names, data.quotes = names, quotes
    if not data.names:
        raise InputError("backtest: no inputs: give --trades FILE, --archive, --candles or --quotes FILE")
    data.span  # noqa: B018 - raises InputError when nothing is left to replay
    return data


def execution_of(bt: BacktestConfig) -> Execution:
    def units(x: float) -> int:
        return parse_fixed(repr(float(x)))

    return Execution(
        latency_ns=int(bt.latency), slippage_bps=units(bt.slippage_bps), maker_fee_bps=units(bt.maker_fee_bps),
        taker_fee_bps=units(bt.taker_fee_bps), participation=units(bt.participation), account=bt.account,
        venue=bt.venue,
    )  # fmt: skip


def run_backtest(
    cfg: Config,
    out_dir: Path,
    *,
    chart: bool = True,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> BacktestResult:
    """Run ``[backtest]`` (module doc); the report and where everything went."""
    bt = cfg.backtest
    t0 = time.perf_counter()
    strategy = load_strategy(bt.strategy, dict(bt.params))
    data = load_market_data(cfg, bt, strategy)
    try:
        cash = parse_fixed(bt.cash)
    except ValueError as exc:
        raise InputError(f"backtest cash: {exc}") from None
    orders_root = out_dir / "orders"
    if orders_root.exists():
        shutil.rmtree(orders_root)
    events_dir = orders_root / "events"
    parts = cfg.orders.eventlog_partitions
    writers = [EventLogPartition(partition_path(events_dir, i)) for i in range(parts)]
    broker = SimBroker(
        data.names,
        execution_of(bt),
        cash,
        on_fill=strategy.on_fill if overrides(strategy, "on_fill") else None,
    )

    def drain() -> None:
        by_part: dict[int, list[Any]] = {}
        for e in broker.events:
            by_part.setdefault(partition_of(e.aggregate, parts), []).append(e)
        for i, chunk in by_part.items():
            writers[i].append(chunk)
        broker.events = []

    broker.drain = drain
    engine = Engine(
        data,
        strategy,
        broker,
        sample_ns=int(bt.sample),
        speed=speed_factor(bt.speed),
        clock=clock,
        sleep=sleep,
    )
    try:
        samples = engine.run()
        drain()
    finally:
        for w in writers:
            w.close()
    with open_store("sqlite", orders_root) as store:
        Projector(store, snapshot_every=cfg.orders.snapshot_every).catch_up_dir(events_dir)
        positions = [p.as_dict() for p in store.positions()]
        n_orders = store.count_orders()
    trips = round_trips(broker.fills, data.names)
    period_s = int(bt.sample) / 1e9
    mets = metrics(samples.ts, samples.equity, samples.exposed, period_s, closed_pnls(trips))
    final18 = broker.equity18()
    report: dict[str, Any] = {
        "strategy": bt.strategy, "params": dict(bt.params),
        "inputs": {
            "trades": [Path(p).name for p in bt.trades], "archive": bt.archive, "candles": bt.candles,
            "quotes": [Path(p).name for p in bt.quotes], "symbols": data.names, "start": bt.start, "end": bt.end,
            "interval_s": int(bt.interval) // 1_000_000_000, "events": data.events(),
            "first_ts": data.span[0], "last_ts": data.span[1],
        },
        "settings": {
            "cash": bt.cash, "latency_ns": int(bt.latency), "slippage_bps": bt.slippage_bps,
            "maker_fee_bps": bt.maker_fee_bps, "taker_fee_bps": bt.taker_fee_bps,
            "participation": bt.participation, "sample_s": period_s, "speed": bt.speed,
            "account": bt.account, "venue": bt.venue,
        },
        "metrics": mets,
        "final_equity": format_fixed(final18, SCALE2),
        "marks": {n: format_fixed(fx(p)) for n, p in zip(data.names, broker.last, strict=True) if p},
        "orders": n_orders, "fills": len(broker.fills), "order_dead_letters": len(broker.dead),
        "positions": positions, "trades": trips,
        "files": {"equity_csv": "equity.csv", "chart": "equity.png" if chart else None,
                  "event_log": "orders/events", "projections": "orders/projections.sqlite"},
    }  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    report_path = out_dir / "report.json"
    report_path.write_text(to_json(report) + "\n")
    dd = drawdown_series(samples.equity)
    with (out_dir / "equity.csv").open("w") as fh:
        fh.write("ts,equity,drawdown,exposed\n")
        for row in zip(samples.ts, samples.equity, dd, samples.exposed, strict=True):
            fh.write(f"{row[0]},{row[1]!r},{row[2]!r},{int(row[3])}\n")
    chart_path = None
    if chart:
        from ticktape.flows.charts.equity import render_equity

        title = f"{bt.strategy.rpartition(':')[2]} on {', '.join(data.names)}"
        chart_path = render_equity(
            samples.ts, samples.equity, dd, out_dir / "equity.png", title=title,
            fills=[(f[0], f[2]) for f in broker.fills],
        )  # fmt: skip
    return BacktestResult(
        report, samples, out_dir, report_path, chart_path, time.perf_counter() - t0, engine.events
    )
