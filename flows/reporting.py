"""End-of-run reports: accounting per partition, latency percentiles, outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ticktape.flows.runner import RunResult
from ticktape.flows.terminal import cell
from ticktape.infra.observability.metrics import RunStats


def accounting_table(stats: RunStats, processes: int = 1) -> Table:
    """Per source partition and in total. In a cluster a tick read here may be processed
    by another process, so the balance of one process is not a check ("-"): only the sum
    of every process's report balances."""
    acc = stats.accounting()
    title = "Accounting (read = accepted + rejected + duplicate)"
    if processes > 1:
        title += f"; this process of {processes}: only their sum balances"
    table = Table(title=title, title_justify="left")

    def balanced(ok: bool) -> str:
        return "-" if processes > 1 else ("yes" if ok else "NO")

    for col in ("source partition", "read", "accepted", "rejected", "duplicate", "balanced"):
        table.add_column(col, justify="left" if col == "source partition" else "right")
    for src, row in acc["partitions"].items():
        table.add_row(
            cell(src),
            *(f"{row[k]:,}" for k in ("read", "accepted", "rejected", "duplicate")),
            balanced(row["balanced"]),
        )
    total = acc["total"]
    table.add_row(
        "[b]total[/b]",
        *(f"[b]{total[k]:,}[/b]" for k in ("read", "accepted", "rejected", "duplicate")),
        balanced(acc["balanced"]),
    )
    return table


def latency_table(stats: RunStats) -> Table:
    table = Table(title="Latency per stage (ms, exact over the last samples)", title_justify="left")
    for col in ("stage", "samples", "p50", "p95", "p99", "max"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for stage, pct in stats.latency.report().items():
        table.add_row(
            stage,
            f"{int(pct['count']):,}",
            *(f"{pct[k]:.3f}" for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")),
        )
    return table


def counts_table(title: str, counts: dict[str, int]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("name")
    table.add_column("count", justify="right")
    for name, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        table.add_row(cell(name), f"{n:,}")
    return table


def print_report(result: RunResult, console: Console, extra_outputs: dict[str, str] | None = None) -> None:
    """Print the run summary and write it as JSON next to the outputs."""
    stats = result.stats
    console.print(accounting_table(stats, result.processes))
    if stats.dead_letters:
        console.print(counts_table("Dead letters by code", dict(stats.dead_letters)))
    if stats.events:
        console.print(counts_table("Events by type", dict(stats.events)))
    if stats.latency.report():
        console.print(latency_table(stats))
    report = result.report()
    outputs = {**result.outputs, **(extra_outputs or {})}
    if outputs.get("events"):
        path = Path(outputs["events"]).parent / "reports" / f"run-{result.run_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report | {"outputs": outputs}, indent=2))
        outputs["report"] = str(path)
    table = Table(title="Outputs", title_justify="left")
    table.add_column("output")
    table.add_column("where")
    for name, where in outputs.items():
        table.add_row(cell(name), cell(where))
    console.print(table)
    rate = report["ticks_per_s"]
    if result.processes > 1:
        balance = (
            f"accounting: this process's share of a {result.processes}-process cluster (sum the run reports)"
        )
    else:
        balance = f"accounting balanced: {report['accounting']['balanced']}"
    console.print(f"{stats.totals().read:,} records in {result.elapsed:.2f}s ({rate:,.0f}/s); {balance}")
    if result.stopped_by:
        console.print(
            f"stopped by {result.stopped_by}: input stopped, work in flight drained, outputs flushed"
            " and snapshotted; rerun the same command (same -r recovery dir) to continue"
        )


def report_json(result: RunResult) -> dict[str, Any]:
    return result.report()
