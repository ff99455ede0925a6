"""``ticktape bench``: run benchmark scenarios and print ratios against their baselines.

Throughput scenarios (``flow`` ... ``loader``, the peers ``bytewax-stock`` and ``quix``)
run one warm-up and ``--repeat`` measured repetitions and report medians; the time-based
ones run paced live flows: ``latency`` (each ``--rate`` for ``--duration`` after
``--warmup``, ``--repeat`` times) and ``soak`` (one long run at the highest ``--rate``).
After the scenario table comes the goals table of the live path
(:mod:`ticktape.infra.bench.goals`) for the rows whose scenarios ran. ``--json`` writes
every repetition, the machine, the date, each ratio and the goals; ``--profile`` wraps
the chosen scenarios in a profiler (:mod:`ticktape.infra.bench.profile`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import msgspec
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ticktape.flows.cli.common import console
from ticktape.infra.bench.common import Measurement, machine
from ticktape.infra.bench.goals import Goal, goals
from ticktape.schemas.durations import Duration

SCENARIOS = (
    "flow", "flow-10k", "cluster", "candles", "kafka", "archive", "redis", "questdb", "backfill", "loader",
    "latency", "venues", "bytewax-stock", "quix", "backtest", "backtest-candles", "soak",
)  # fmt: skip
#: What ``all`` runs: everything but the long soak (name it to run it).
ALL = tuple(s for s in SCENARIOS if s != "soak")


@dataclass(frozen=True)
class BenchOptions:
    """The command line, as the scenarios see it (``None``: the scenario's default)."""

    ticks: int = 200_000
    symbols: int | None = None
    repeats: int = 3
    duration: float | None = None
    warmup: float | None = None
    rates: tuple[float, ...] = ()
    out_prefix: Path | None = None
    broker: str = "kafka"


def run_scenario(name: str, opts: BenchOptions) -> Measurement:
    """Run one scenario (its module is imported only when chosen)."""
    ticks, repeats, symbols = opts.ticks, opts.repeats, opts.symbols or 500
    if name == "flow":
        from ticktape.infra.bench.flow import flow_scenario

        return flow_scenario(ticks=ticks, symbols=symbols, repeats=repeats)
    if name == "flow-10k":
        from ticktape.infra.bench.flow import flow_scenario

        return flow_scenario(ticks=ticks, symbols=10_000, repeats=repeats, name="flow-10k")
    if name == "bytewax-stock":
        from ticktape.infra.bench.peers.bytewax_stock import bytewax_stock_scenario

        return bytewax_stock_scenario(ticks=ticks, symbols=symbols, repeats=repeats)
    if name == "quix":
        from ticktape.infra.bench.peers.quix import quix_scenario

        return quix_scenario(ticks=ticks, symbols=symbols, repeats=repeats)  # Apache Kafka only
    if name == "candles":
        from ticktape.infra.bench.candles import candles_scenario

        return candles_scenario(ticks=ticks, symbols=symbols, repeats=repeats)
    if name == "kafka":
        from ticktape.infra.bench.kafka import kafka_scenario

        return kafka_scenario(ticks=ticks, symbols=symbols, repeats=repeats, broker=opts.broker)
    if name == "archive":
        from ticktape.infra.bench.archive import archive_scenario

        return archive_scenario(rows=max(ticks, 1_000_000), repeats=repeats, symbols=symbols)
    if name == "redis":
        from ticktape.infra.bench.redis import redis_scenario

        return redis_scenario(writes=ticks, repeats=repeats)
    if name == "questdb":
        from ticktape.infra.bench.questdb import questdb_scenario

        return questdb_scenario(rows=ticks, repeats=repeats)
    if name == "backfill":
        from ticktape.infra.bench.backfill import backfill_scenario

        return backfill_scenario(ticks=max(ticks, 1_000_000), symbols=symbols, repeats=repeats)
    if name == "loader":
        from ticktape.infra.bench.loader import loader_scenario

        return loader_scenario(rows=max(ticks * 10, 2_000_000), repeats=repeats)
    if name == "venues":
        from ticktape.infra.bench.venues import venues_scenario

        return venues_scenario(events=max(ticks // 2, 10_000), repeats=repeats)
    if name == "backtest":
        from ticktape.infra.bench.backtest import backtest_scenario

        return backtest_scenario(
            trades=max(ticks * 5, 1_000_000), symbols=opts.symbols or 50, repeats=repeats
        )
    if name == "backtest-candles":
        from ticktape.infra.bench.backtest import backtest_candles_scenario

        return backtest_candles_scenario(candles=max(ticks // 2, 100_000), repeats=repeats)
    if name == "cluster":
        from ticktape.infra.bench.cluster import cluster_scenario

        return cluster_scenario(ticks=max(ticks * 2, 100_000), symbols=symbols, repeats=repeats)
    if name == "latency":
        from ticktape.infra.bench.latency import DEFAULT_RATES, latency_scenario

        return latency_scenario(
            rates=opts.rates or DEFAULT_RATES, duration=opts.duration or 10.0,
            warmup=3.0 if opts.warmup is None else opts.warmup, symbols=symbols, repeats=repeats,
        )  # fmt: skip
    if name == "soak":
        from ticktape.infra.bench.soak import soak_scenario

        return soak_scenario(
            rate=max(opts.rates, default=50_000.0), symbols=opts.symbols or 10_000,
            duration=opts.duration or 600.0, warmup=660.0 if opts.warmup is None else opts.warmup,
            out_prefix=opts.out_prefix,
        )  # fmt: skip
    raise click.UsageError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")


def _seconds(_ctx: click.Context, _param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return Duration.parse(value).seconds
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(f"expected a duration like 10s or 2m, got {value!r}") from exc


@click.command()
@click.option(
    "-s", "--scenario", "scenarios", multiple=True, type=click.Choice(["all", *SCENARIOS]),
    default=["all"], show_default=True, help="Scenario(s) to run; all = every one but soak.",
)  # fmt: skip
@click.option("--ticks", type=int, default=200_000, show_default=True, help="Ticks per repetition.")
@click.option("--symbols", type=int, default=None, help="Distinct symbols [default: 500; soak 10,000].")
@click.option(
    "--repeat", "repeats", type=int, default=3, show_default=True,
    help="Measured repetitions (after one warm-up); medians are reported. Not for soak.",
)  # fmt: skip
@click.option(
    "--duration", callback=_seconds, default=None,
    help="Measured time of latency (per rate, default 10s) and soak (default 10m).",
)  # fmt: skip
@click.option(
    "--warmup",
    callback=_seconds,
    default=None,
    help="Warm-up of latency (default 3s) and soak (default 11m: closed 5m windows leave the 5m revision horizon).",
)
@click.option(
    "--rate", "rates", type=float, multiple=True,
    help="Offered ticks/s, repeatable: latency runs each (default 10k, 50k, 100k); soak the highest (50k).",
)  # fmt: skip
@click.option(
    "--broker", type=click.Choice(["kafka", "tansu"]), default="kafka", show_default=True,
    help="Broker of the kafka scenario: Apache Kafka, or Tansu (light). quix always runs on Apache Kafka.",
)  # fmt: skip
@click.option(
    "--json", "json_path", type=click.Path(path_type=Path), default=None,
    help="Also write the results (every repetition, machine, date) as JSON here; soak files go next to it.",
)  # fmt: skip
@click.option(
    "--profile", "profile_path", type=click.Path(path_type=Path), default=None,
    help="Profile the scenarios (pyinstrument: .html or text; else cProfile text) into this file.",
)  # fmt: skip
def bench(
    scenarios: tuple[str, ...], ticks: int, symbols: int | None, repeats: int, duration: float | None,
    warmup: float | None, rates: tuple[float, ...], broker: str, json_path: Path | None,
    profile_path: Path | None,
) -> None:  # fmt: skip
    """Measure ticktape against a baseline run in the same process (ratios are what to
    compare across machines; absolute numbers are noisy on shared hosts)."""
    names = list(ALL) if "all" in scenarios else list(dict.fromkeys(scenarios))
    prefix = json_path.with_name(json_path.stem + ".") if json_path is not None else None
    opts = BenchOptions(ticks, symbols, repeats, duration, warmup, tuple(rates), prefix, broker)
    before = machine()
    t0 = time.perf_counter()
    out = console()
    if profile_path is not None:
        from ticktape.infra.bench.profile import profile_call

        results, report = profile_call(lambda: [run_scenario(n, opts) for n in names], profile_path)
    else:
        results, report = [run_scenario(n, opts) for n in names], None
    print_results(results)
    rows = goals(results)
    print_goals(rows)
    if report is not None:
        for line in report.lines():
            out.print(line, markup=False, highlight=False)
    if json_path is not None:
        doc = {
            "date": before["date"],
            "command": " ".join(["ticktape", *sys.argv[1:]]),
            "options": msgspec.to_builtins(opts.__dict__ | {"out_prefix": str(prefix or "")}),
            "machine": before,
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "elapsed_s": round(time.perf_counter() - t0, 1),
            "results": [result_doc(m) for m in results],
            "goals": [msgspec.to_builtins(g) for g in rows],
            "profile": str(profile_path) if profile_path is not None else None,
        }
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(doc, indent=2))
        out.print(f"results written to {json_path}")


def result_doc(m: Measurement) -> dict[str, Any]:
    """One scenario in the JSON file: every repetition, the medians and the ratio."""
    doc: dict[str, Any] = msgspec.to_builtins(m)
    return doc | {"ratio": round(m.ratio, 4), "repetitions": len(m.samples)}


def print_results(results: list[Measurement]) -> None:
    out = console()
    table = Table(title="ticktape bench (medians)", title_justify="left")
    for col in ("scenario", "ticktape", "baseline", "baseline value", "ratio", "runs"):
        table.add_column(col, justify="left" if col in ("scenario", "baseline") else "right")
    for m in results:
        table.add_row(
            m.scenario, f"{m.value:,.0f} {m.unit}", m.baseline_name, f"{m.baseline:,.0f} {m.unit}",
            f"{m.ratio:.2f}x", str(len(m.samples)),
        )  # fmt: skip
    out.print(table)
    for m in results:
        if m.scenario == "venues":
            picows = m.extra.get("picows_bare_per_s")
            out.print(
                f"  venues: {m.extra['frames']:,} frames; connection alone {m.extra['connection_only_per_s']:,.0f} frames/s "
                f"({m.extra['connection_only_per_s'] / m.baseline:.2f}x the bare loop); bare picows loop "
                + (
                    f"{picows:,.0f} frames/s ({picows / m.baseline:.2f}x bare websockets)"
                    if picows
                    else "not installed"
                )
            )
        for stage, pct in m.extra.get("latency_ms", {}).items():
            out.print(
                f"  {m.scenario} {stage}: p50 {pct['p50_ms']:.3f} ms, p95 {pct['p95_ms']:.3f} ms, p99 {pct['p99_ms']:.3f} ms, max {pct['max_ms']:.3f} ms"
            )
        if m.scenario == "latency":
            from ticktape.infra.bench.latency import TABLE_COLUMNS, table_rows

            lat = Table(
                title="latency under an offered load (exact): recv->sink = readable in the cache, "
                "durable = committed in the event log",
                title_justify="left",
            )
            for col in TABLE_COLUMNS:
                lat.add_column(col, justify="right", no_wrap=True)
            for row in table_rows(m):
                lat.add_row(*row)
            Console(width=max(out.width, 200), highlight=False).print(lat)
        if m.scenario in ("bytewax-stock", "quix"):
            agreement, candles = m.extra["agreement"], m.extra["candles"]
            out.print(
                f"  {m.scenario}: candles {'agree' if agreement['ok'] else 'DISAGREE'} with ticktape's "
                f"({agreement['equal']} of {agreement['compared']} equal, {agreement['required']} required, "
                f"{agreement['missing']} missing, {agreement['extra']} extra, {agreement['differing']} differing; "
                f"ticktape {candles['ticktape']} windows, peer {candles['peer']})",
                markup=False,
            )
            for example in agreement["examples"]:
                out.print(f"    {example}", markup=False)
            if m.scenario == "quix":
                out.print(
                    f"  quix: {m.extra['peer']} (a subprocess; its last run took {m.extra['peer_process_s']:.1f} s "
                    "with start-up, timed from its first message)",
                    markup=False,
                )
        if m.scenario == "backtest-candles":
            out.print(
                f"  backtest-candles, whole `ticktape backtest` path (candle store read, event log, projections, report): "
                f"{m.extra['full']:,.0f} candles/s = {m.extra['full_ratio']:.2f}x backtesting.py"
            )
        if m.scenario == "soak":
            v = m.extra["summary"]
            out.print(
                f"  soak: {m.baseline:,.0f}/s offered, {m.value:,.0f}/s achieved ({'sustained' if m.extra['sustained'] else 'not sustained: the highest rate this machine kept up'}), "
                f"RSS after warm-up first {v.get('first_mib')} / last {v.get('last_mib')} / min {v.get('min_mib')} / max {v.get('max_mib')} MiB, "
                f"max deviation {v.get('max_deviation', 0):.1%} -> {'within' if v.get('within_tolerance') else 'NOT within'} {v.get('tolerance', 0):.0%}; "
                f"files: {', '.join(m.extra['files'].values())}"
            )


def print_goals(rows: list[Goal]) -> None:
    """The goals table (nothing when no scenario of a row ran)."""
    if not rows:
        return
    table = Table(title="goals of the live path (issue 14)", title_justify="left")
    for col in ("row", "measured", "target", "met"):
        table.add_column(col)
    for g in rows:
        met = "-" if g.met is None else ("yes" if g.met else "no")
        measured = g.measured + (f" ({g.note})" if g.note else "")
        table.add_row(*(Text(cell) for cell in (g.row, measured, g.target, met)))
    Console(width=max(console().width, 160), highlight=False).print(table)
