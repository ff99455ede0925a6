"""``ticktape archive``: run, list, read back, verify, report and compress the archive.

Every command takes the common options (``-c``, ``--data-dir``, ``--set``); ``--store``
and ``--prefix`` override ``[archive] store`` and ``prefix`` for one command.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

import click
import msgspec
import pyarrow as pa
from rich.progress import Progress
from rich.table import Table

from ticktape.flows import wiring
from ticktape.flows.cli.common import common_options, console, load, parse_time
from ticktape.flows.config import Config
from ticktape.flows.terminal import add_row, markup_safe, printable
from ticktape.schemas.errors import InputError
from ticktape.schemas.timeparse import ns_to_iso

_store_options = [
    click.option("--store", default=None, help="Archive store: a directory, file:// or s3://bucket/prefix."),
    click.option("--prefix", default=None, help="Key prefix inside the store (default: [archive] prefix)."),
]


def _with_store(func: Any) -> Any:
    for option in reversed(_store_options):
        func = option(func)
    return common_options(func)


def _setup(common: dict[str, Any]) -> tuple[Config, Any, list[Path]]:
    """The config, the ``[archive]`` section (with ``--store``/``--prefix``) and the
    event-log partition files."""
    store, prefix = common.pop("store"), common.pop("prefix")
    cfg, _ = load(**common)
    archive = wiring.archive_config(cfg)
    changes = {k: v for k, v in (("store", store), ("prefix", prefix)) if v is not None}
    archive = msgspec.structs.replace(archive, **changes) if changes else archive
    paths = sorted(wiring.events_dir(cfg).glob("part-*.sqlite"))
    return cfg, archive, paths


@click.group()
def archive() -> None:
    """The Parquet archive of the event log (S3/MinIO or a local directory)."""


@archive.command("run")
@_with_store
@click.option("--force", is_flag=True, help="Ignore the triggers: archive everything pending now.")
@click.option(
    "--wait", type=float, default=60.0, show_default=True, help="Seconds to wait for a busy partition."
)
def run(force: bool, wait: float, **common: Any) -> None:
    """One archive pass over every event-log partition (plan, PUT, verify, mark,
    retention, compression), then exit; status 1 if a partition failed."""
    from ticktape.sinks.archive.archiver import archive_all
    from ticktape.sinks.archive.config import open_archive_store

    cfg, settings, paths = _setup(common)
    if not paths:
        raise InputError(f"no event log at {wiring.events_dir(cfg)} (run the job first, or pass --data-dir)")
    store = open_archive_store(settings)
    with Progress(console=console(), transient=True) as progress:
        task = progress.add_task(f"archiving into {markup_safe(store.url)}", total=len(paths))
        results = archive_all(
            cfg.data_path, settings, store=store, force=force, wait=wait,
            progress=lambda _i, _r: progress.advance(task),
        )  # fmt: skip
    table = Table(title=f"archive pass -> {markup_safe(store.url)}", title_justify="left")
    for col in ("partition", "units", "rows", "objects", "bytes", "deleted", "compressed", "status"):
        table.add_column(col, justify="left" if col == "status" else "right")
    for index, r in sorted(results.items()):
        status = "busy (skipped)" if r.skipped else (f"FAILED: {r.error}" if r.error else "ok")
        add_row(
            table,
            *map(str, (index, r.units, r.rows, r.objects, r.bytes, r.deleted_batches, r.compressed_batches)),
            status,
        )
    console().print(table)
    if any(r.error or r.skipped for r in results.values()):
        sys.exit(1)


@archive.command("ls")
@_with_store
@click.option(
    "--stream", type=click.Choice(["ticks", "events", "quotes", "books"]), default=None,
    help="One stream (default: all; quotes/books are the market log's, under --prefix <prefix>/market).",
)  # fmt: skip
@click.option("--from", "since", help="Objects with rows at or after this time (ns, date, RFC 3339, now-1h).")
@click.option("--to", "until", help="... and before this time.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
def ls(stream: str | None, since: str | None, until: str | None, as_json: bool, **common: Any) -> None:
    """List archived objects (only the hour prefixes of a time range are listed)."""
    from ticktape.sinks.archive.config import open_archive_store
    from ticktape.sinks.archive.reader import ArchiveReader

    _, settings, _ = _setup(common)
    reader = ArchiveReader(open_archive_store(settings), settings.prefix)
    objects = reader.list_objects(stream, parse_time(since), parse_time(until))
    if as_json:
        for o in objects:
            click.echo(json.dumps({"key": o.key, "size": o.size, "sha256": o.sha256}))
        return
    table = Table(show_lines=False)
    for col in ("key", "size", "sha256"):
        table.add_column(col, justify="right" if col == "size" else "left", overflow="fold")
    for o in objects:
        add_row(table, o.key, f"{o.size:,}", o.sha256[:16])
    console().print(table)
    console().print(f"{len(objects)} objects, {sum(o.size for o in objects):,} bytes")


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    """Rows with times as ns integers."""
    ints = table.select(table.column_names)
    for i, field in enumerate(ints.schema):
        if pa.types.is_timestamp(field.type):
            ints = ints.set_column(i, field.name, ints[field.name].cast(pa.int64()))
    return list(ints.to_pylist())


@archive.command("read")
@_with_store
@click.argument("symbol")
@click.option("--from", "since", help="From this event time (inclusive).")
@click.option("--to", "until", help="To this event time (exclusive).")
@click.option(
    "--stream", type=click.Choice(["ticks", "events", "quotes", "books"]), default="ticks", show_default=True,
    help="quotes/books: the market log of venue feeds (with --prefix <prefix>/market).",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="JSON lines (times in ns).")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header (times in ns).")
def read(
    symbol: str, since: str | None, until: str | None, stream: str, as_json: bool, as_csv: bool, **common: Any
) -> None:
    """Read back SYMBOL's archived rows (the aggregate, e.g. BTC-USD@binance, with
    --stream events) for a time range; only matching row groups are fetched. Quotes and
    L2 snapshots of venue feeds: --stream quotes|books --prefix <prefix>/market."""
    from ticktape.sinks.archive.config import open_archive_store
    from ticktape.sinks.archive.reader import ArchiveReader

    _, settings, _ = _setup(common)
    reader = ArchiveReader(open_archive_store(settings), settings.prefix)
    t0 = time.perf_counter()
    table = reader.read(symbol, parse_time(since), parse_time(until), stream)
    rows = _rows(table)
    if as_json:
        for row in rows:
            click.echo(printable(json.dumps(row, ensure_ascii=False)))
    elif as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=table.column_names, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: printable(v) if isinstance(v, str) else v for k, v in r.items()} for r in rows)
    else:
        show = {
            "ticks": ["ts_event", "price", "size", "side", "trade_id", "seq"],
            "quotes": ["ts_event", "bid", "bid_size", "ask", "ask_size", "seq"],
            "books": ["ts_event", "last_id", "reason", "bids", "asks"],
        }.get(stream, ["ts_event", "type", "seq", "payload"])
        out = Table()
        for col in show:
            out.add_column(col, overflow="fold")
        for row in rows[:1000]:
            add_row(out, *(ns_to_iso(row[c]) if c == "ts_event" else str(row[c]) for c in show))
        console().print(out)
    click.echo(
        f"{len(rows)} rows; fetched {reader.bytes_fetched:,} bytes in {reader.requests} requests"
        f" ({time.perf_counter() - t0:.2f}s)",
        err=True,
    )


@archive.command("verify")
@_with_store
@click.option("--deep", is_flag=True, help="Also read every object's row numbers (slower).")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
def verify_cmd(deep: bool, as_json: bool, **common: Any) -> None:
    """Check that every archived row range is in the store exactly once (size and
    SHA-256 as recorded, no gaps, overlaps, orphans or unverified deletes); status 1 if not."""
    from ticktape.sinks.archive.config import open_archive_store
    from ticktape.sinks.archive.verify import verify

    _, settings, paths = _setup(common)
    report = verify(open_archive_store(settings), settings.prefix, paths, deep=deep)
    doc = msgspec.to_builtins(report) | {"ok": report.ok}
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        out = console()
        out.print(f"{report.partitions} partitions, {report.units} units, {report.objects} objects, "
                  f"{report.rows:,} rows archived; {report.pending_units} units in progress")  # fmt: skip
        if report.writers:
            out.print(f"writers: {', '.join(report.writers)}", markup=False)
        for name, items in doc.items():
            if isinstance(items, list) and items and name != "writers":
                out.print(f"[red]{name}[/red] ({len(items)}):")
                for item in items[:50]:
                    out.print(f"  {printable(item)}", markup=False)
        out.print("ok" if report.ok else "[red]archive has problems[/red]")
    if not report.ok:
        sys.exit(1)


@archive.command("stats")
@_with_store
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def stats(as_json: bool, **common: Any) -> None:
    """Archived, pending and retained rows per partition; Parquet and local compression
    ratios (raw bytes / stored bytes)."""
    from ticktape.sinks.archive.metrics import partition_stats

    _, _, paths = _setup(common)
    parts = [partition_stats(p) for p in paths]
    if as_json:
        click.echo(json.dumps({"partitions": parts}, indent=2))
        return
    table = Table(title="archive", title_justify="left")
    cols = ("partition", "rows", "archived", "objects", "parquet", "ratio", "pending", "pending age",
            "deleted", "local ratio", "space saved", "last compression")  # fmt: skip
    for col in cols:
        table.add_column(col, justify="right")
    for path, s in zip(paths, parts, strict=True):
        local = s["local_compression"] or {}
        add_row(
            table,
            path.stem, f"{s['rows']:,}", f"{s['archived_rows']:,}", str(s["objects"]), f"{s['archived_bytes']:,}",
            f"{s['ratio']:.1f}x" if s["ratio"] else "-", f"{s['pending_rows']:,}",
            f"{s['pending_age_s']:.0f}s" if s["pending_age_s"] is not None else "-", str(s["deleted_batches"]),
            f"{local['ratio']:.1f}x" if local.get("ratio") else "-", f"{local.get('space_saved', 0):,}",
            ns_to_iso(local["last_run"])[:19] if local.get("last_run") else "-",
        )  # fmt: skip
    console().print(table)


@archive.command("compress")
@_with_store
def compress(**common: Any) -> None:
    """Compress the retained bodies of verified units now (the compression manager)."""
    from ticktape.sinks.archive.units import UnitLog, partition_lock
    from ticktape.sinks.eventlog.compression import compress_retained

    _, settings, paths = _setup(common)
    for path in paths:
        index = int(path.stem.split("-")[1])
        with partition_lock(path, wait=60.0) as got:
            if not got:
                console().print(f"{markup_safe(path.stem)}: busy, skipped")
                continue
            units = UnitLog(path, index)
            try:
                run = compress_retained(
                    units.db, codec=settings.retained_codec, level=settings.retained_level,
                    min_gain=settings.dictionary_min_gain, older_than=time.time_ns(),
                )  # fmt: skip
            finally:
                units.close()
        ratio = run.raw_bytes / run.compressed_bytes if run.compressed_bytes else 0.0
        gain = f", dictionary gain {run.gain:.1%}" if run.gain is not None else ""
        console().print(
            f"{path.stem}: {run.batches} bodies ({run.rows:,} rows) {run.raw_bytes:,} -> {run.compressed_bytes:,} bytes"
            f" ({ratio:.1f}x) with {run.codec}{gain}"
        )
