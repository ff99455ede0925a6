"""``ticktape bench``: run benchmark scenarios and print ratios against their baselines."""

from __future__ import annotations

import json
from pathlib import Path

import click
import msgspec
from rich.table import Table

from flows.bench.common import Measurement, machine
from flows.cli_common import console

SCENARIOS = ("flow", "candles", "kafka", "archive", "redis", "questdb", "backfill", "loader")


def run_scenario(name: str, *, ticks: int, symbols: int, repeats: int) -> Measurement:
    """Run one scenario (its module is imported only when chosen)."""
    if name == "flow":
        from flows.bench.flow import flow_scenario

        return flow_scenario(ticks=ticks, symbols=symbols, repeats=repeats)
    if name == "candles":
        from flows.bench.candles import candles_scenario

        return candles_scenario(ticks=ticks, symbols=symbols, repeats=repeats)
    if name == "kafka":
        from flows.bench.kafka import kafka_scenario

        return kafka_scenario(ticks=ticks, symbols=symbols, repeats=repeats)
    if name == "archive":
        from flows.bench.archive import archive_scenario

        return archive_scenario(rows=max(ticks, 1_000_000), repeats=repeats, symbols=symbols)
    if name == "redis":
        from flows.bench.redis import redis_scenario

        return redis_scenario(writes=ticks, repeats=repeats)
    if name == "questdb":
        from flows.bench.questdb import questdb_scenario

        return questdb_scenario(rows=ticks, repeats=repeats)
    if name == "backfill":
        from flows.bench.backfill import backfill_scenario

        return backfill_scenario(ticks=max(ticks, 1_000_000), symbols=symbols, repeats=repeats)
    if name == "loader":
        from flows.bench.loader import loader_scenario

        return loader_scenario(rows=max(ticks * 10, 2_000_000), repeats=repeats)
    raise click.UsageError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")


@click.command()
@click.option(
    "-s",
    "--scenario",
    "scenarios",
    multiple=True,
    type=click.Choice(["all", *SCENARIOS]),
    default=["all"],
    show_default=True,
    help="Scenario(s) to run.",
)
@click.option("--ticks", type=int, default=200_000, show_default=True, help="Ticks per repetition.")
@click.option("--symbols", type=int, default=500, show_default=True, help="Distinct symbols.")
@click.option(
    "--repeat",
    "repeats",
    type=int,
    default=3,
    show_default=True,
    help="Measured repetitions (after one warm-up); medians are reported.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the results as JSON here.",
)
def bench(scenarios: tuple[str, ...], ticks: int, symbols: int, repeats: int, json_path: Path | None) -> None:
    """Measure ticktape against a baseline run in the same process (ratios are what to
    compare across machines; absolute numbers are noisy on shared hosts)."""
    names = SCENARIOS if "all" in scenarios else scenarios
    results = [run_scenario(n, ticks=ticks, symbols=symbols, repeats=repeats) for n in names]
    table = Table(title="ticktape bench (medians)", title_justify="left")
    for col in ("scenario", "ticktape", "baseline", "baseline value", "ratio"):
        table.add_column(col, justify="left" if col in ("scenario", "baseline") else "right")
    for m in results:
        table.add_row(
            m.scenario,
            f"{m.value:,.0f} {m.unit}",
            m.baseline_name,
            f"{m.baseline:,.0f} {m.unit}",
            f"{m.ratio:.2f}x",
        )
    out = console()
    out.print(table)
    for m in results:
        lat = m.extra.get("latency_ms", {})
        for stage, pct in lat.items():
            out.print(
                f"  {m.scenario} {stage}: p50 {pct['p50_ms']:.3f} ms, p95 {pct['p95_ms']:.3f} ms, p99 {pct['p99_ms']:.3f} ms, max {pct['max_ms']:.3f} ms"
            )
    if json_path is not None:
        doc = {
            "machine": machine(),
            "results": [msgspec.to_builtins(m) | {"ratio": m.ratio} for m in results],
        }
        json_path.write_text(json.dumps(doc, indent=2))
        out.print(f"results written to {json_path}")
