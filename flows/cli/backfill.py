"""``ticktape backfill``: rebuild candles and stores for a past period."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import msgspec
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from ticktape.flows.cli.common import common_options, console, load, parse_time
from ticktape.flows.terminal import add_row, markup_safe
from ticktape.infra.observability.logs import set_process_operation
from ticktape.schemas.errors import InputError


class _RowsPerSecond(TextColumn):
    def __init__(self) -> None:
        super().__init__("")

    def render(self, task: Any) -> Any:
        speed = task.finished_speed or task.speed
        return super().render(task) if speed is None else f"{speed:,.0f} rows/s"


@click.command()
@common_options
@click.option(
    "--source",
    "sources",
    multiple=True,
    required=True,
    help="History file(s) (freqtrade JSON, CSV, Kraken REST JSON, Parquet) or the archive (a local dir with --archive, or s3://bucket/prefix).",
)
@click.option(
    "--archive",
    "is_archive",
    is_flag=True,
    help="Treat --source as the job's own archive (implied for s3:// URLs).",
)
@click.option("--from", "since", help="First trade time (inclusive): ns, YYYY-MM-DD, RFC 3339.")
@click.option("--to", "until", help="Last trade time (exclusive).")
@click.option("--symbols", default="", help="Comma-separated symbols (default: all).")
@click.option(
    "--intervals",
    default="",
    help="Comma-separated candle intervals, e.g. 1m,5m,1h (default: [candles] intervals).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "freqtrade", "csv", "kraken-rest", "parquet"]),
    default=None,
    help="History format (default: [source.file] format, auto: by extension and content).",
)
@click.option("--venue", default=None, help="Venue of the history file(s) (default: [source.file] venue).")
@click.option(
    "--symbol",
    default=None,
    help="Symbol of the history file(s) when the format does not carry it (default: [source.file] symbol).",
)
@click.option(
    "--exact-streaming",
    is_flag=True,
    help="Use the streaming steps even when the vectorized path applies (writes every output, incl. the event log).",
)
@click.option(
    "--repair-gaps",
    is_flag=True,
    help="Instead of a backfill: refill the windows of the event log's SequenceGap events from --source and emit candle revisions.",
)
def backfill(
    sources: tuple[str, ...],
    is_archive: bool,
    since: str | None,
    until: str | None,
    symbols: str,
    intervals: str,
    fmt: str | None,
    venue: str | None,
    symbol: str | None,
    exact_streaming: bool,
    repair_gaps: bool,
    **common: Any,
) -> None:
    """Rebuild candles (and, on the streaming path, every output) from history files or
    the archive, through the live job's steps and idempotent sinks. Event time only."""
    from ticktape.flows.backfill.run import backfill as run_backfill

    extra: dict[str, Any] = {}
    if intervals:
        extra["candles"] = {"intervals": [i.strip() for i in intervals.split(",") if i.strip()]}
    cfg, _ = load(extra=extra, **common)
    set_process_operation("backfill")
    archive = sources[0] if (is_archive or sources[0].startswith("s3://")) else None
    if archive and len(sources) > 1:
        raise InputError("--archive takes a single source (a directory or s3://bucket/prefix)")
    files = [] if archive else [Path(s) for s in sources]
    for f in files:
        if not f.is_file():
            raise InputError(f"history file not found: {f}")
    # [source.file] (its CSV/Parquet column mapping too), with the flags given on top
    given = {"format": fmt, "venue": venue, "symbol": symbol}
    fcfg = msgspec.structs.replace(cfg.source.file, **{k: v for k, v in given.items() if v is not None})
    out = console()
    if repair_gaps:
        from ticktape.flows.backfill.repair import repair_gaps as run_repair

        fixed = run_repair(
            cfg, files=files, archive=archive, file_cfg=fcfg, since=parse_time(since), until=parse_time(until),
            symbols=[s.strip() for s in symbols.split(",") if s.strip()],
        )  # fmt: skip
        out.print(
            f"gap repair: {fixed.gaps} gaps ({fixed.missing_ids:,} missing trade ids); recovered {fixed.recovered_trades:,} "
            f"trades from the source; {fixed.windows_revised} candle windows revised; {fixed.unrecoverable_gaps} gaps not in the source"
        )
        return
    with Progress(
        TextColumn("backfill"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(), _RowsPerSecond(), TimeRemainingColumn(),
        console=out, transient=False,
    ) as bar:  # fmt: skip
        task = bar.add_task("rows", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        report = run_backfill(
            cfg, files=files, archive=archive, file_cfg=fcfg, since=parse_time(since), until=parse_time(until),
            symbols=[s.strip() for s in symbols.split(",") if s.strip()], exact_streaming=exact_streaming, progress=progress,
        )  # fmt: skip
    table = Table(title=f"backfill ({report.path} path)", title_justify="left")
    table.add_column("")
    table.add_column("value", justify="right")
    for name, value in (
        ("rows", f"{report.rows:,}"), ("candles written", f"{report.candles:,}"), ("duplicates dropped", f"{report.duplicates:,}"),
        ("late trades rejected", f"{report.late_rejected:,}"), ("elapsed", f"{report.elapsed_s:.2f} s"), ("rows/s", f"{report.rows_per_s:,.0f}"),
    ):  # fmt: skip
        add_row(table, name, value)
    out.print(table)
    if report.reason:
        out.print(f"streaming path because: {markup_safe(report.reason)}")
    if report.accounting:
        out.print(f"accounting balanced: {report.accounting.get('balanced')}")
    out.print(
        f"intervals: {', '.join(f'{int(i) // 1_000_000_000}s' for i in cfg.candles.intervals)}; outputs under {markup_safe(cfg.data_path)}"
    )
