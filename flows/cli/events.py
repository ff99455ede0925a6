"""``ticktape events``: query, replay, point-in-time state, export, stats and snapshots
of the embedded event log."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
import msgspec
from rich.table import Table

from ticktape.flows import wiring
from ticktape.flows.cli.common import common_options, console, load, parse_time
from ticktape.flows.config import Config
from ticktape.flows.terminal import add_row, markup_safe, printable
from ticktape.schemas.errors import InputError
from ticktape.schemas.records import Event, payload_doc
from ticktape.schemas.timeparse import ns_to_iso

_TIME_HELP = "ns, YYYY-MM-DD, RFC 3339 or now-5m"


def _short(payload: bytes, width: int = 70) -> str:
    text = payload.decode("utf-8", "replace")
    return text if len(text) <= width else text[: width - 3] + "..."


def _events_dir(cfg: Config) -> Path:
    directory = wiring.events_dir(cfg)
    if not directory.is_dir():
        raise InputError(f"no event log at {directory} (run `ticktape demo` first, or pass --data-dir)")
    return directory


def _event_json(e: Event) -> str:
    """One event as a JSON object; its payload with named fields (``payload_doc``)."""
    return json.dumps(msgspec.structs.asdict(e) | {"payload": payload_doc(e.type, e.payload)})


@click.group()
def events() -> None:
    """The event log: query, replay an aggregate, its state at a time, export, stats."""


@events.command("query")
@common_options
@click.option("--aggregate", help="Events of one aggregate, e.g. BTC-USDT@binance (ordered by seq).")
@click.option(
    "--type",
    "type_",
    help="Event type: PriceUpdated, DeadLettered, SequenceGap, SymbolStale, AnomalyFlagged, CandleClosed, ...",
)
@click.option("--since", help="From this time (inclusive): ns, YYYY-MM-DD, RFC 3339 or now-5m.")
@click.option("--until", help="Up to this time (exclusive).")
@click.option("--limit", type=int, default=20, show_default=True, help="Events per page.")
@click.option("--cursor", help="Continue after a previous page (printed at the bottom).")
@click.option("--stats", "show_stats", is_flag=True, help="Print event-log statistics instead.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
def query(
    aggregate: str | None,
    type_: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    cursor: str | None,
    show_stats: bool,
    as_json: bool,
    **common: Any,
) -> None:
    """Query the event log by aggregate, type and time range, one page at a time."""
    cfg, _ = load(**common)
    directory = wiring.events_dir(cfg)
    if not directory.is_dir():
        raise InputError(f"no event log at {directory} (run `ticktape demo` first, or pass --data-dir)")
    with wiring.open_event_store(cfg) as store:
        if show_stats:
            click.echo(json.dumps(store.stats(), indent=2))
            return
        page = store.query(
            aggregate=aggregate,
            type=type_,
            since=parse_time(since),
            until=parse_time(until),
            cursor=cursor,
            limit=limit,
        )
    if as_json:
        for e in page.events:
            click.echo(_event_json(e))
        if page.cursor:
            click.echo(json.dumps({"cursor": page.cursor}))
        return
    table = Table(show_lines=False)
    for col in ("ts_event", "type", "aggregate", "seq", "payload"):
        table.add_column(col, overflow="fold")
    for e in page.events:
        add_row(
            table,
            ns_to_iso(e.ts_event) if e.ts_event else "-",
            e.type,
            e.aggregate,
            str(e.seq),
            _short(e.payload),
        )
    out = console()
    out.print(table)
    out.print(
        f"{len(page.events)} events" + (f"; next page: --cursor {page.cursor}" if page.cursor else "; end")
    )


@events.command("replay")
@common_options
@click.argument("aggregate")
@click.option("--since-seq", type=int, default=0, show_default=True, help="From this seq (inclusive).")
@click.option("--until", help=f"Only events before this time (exclusive): {_TIME_HELP}.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines (payload decoded) instead of text lines.")
def replay(aggregate: str, since_seq: int, until: str | None, as_json: bool, **common: Any) -> None:
    """Replay every event of AGGREGATE in seq order, streamed (AGGREGATE: SYMBOL@venue, book:SYMBOL@venue or source:SRC)."""
    cfg, _ = load(**common)
    n = 0
    _events_dir(cfg)
    with wiring.open_event_store(cfg) as store:
        for e in store.replay(aggregate, since_seq=since_seq, until=parse_time(until)):
            n += 1
            if as_json:
                click.echo(_event_json(e))
            else:
                when = ns_to_iso(e.ts_event) if e.ts_event else "-"
                click.echo(printable(f"{e.seq:>9}  {when:<30}  {e.type:<14}  {_short(e.payload)}"))
    if not as_json:
        click.echo(printable(f"{n} events of {aggregate}"), err=True)


@events.command("state")
@common_options
@click.argument("aggregate")
@click.option("--at", "at", default="now", show_default=True, help=f"Point in time: {_TIME_HELP}.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def state(aggregate: str, at: str, as_json: bool, **common: Any) -> None:
    """What the job knew about AGGREGATE at a point in time (its events up to --at)."""
    from ticktape.sinks.eventlog.state import state_json

    cfg, _ = load(**common)
    at_ns = parse_time(at)
    assert at_ns is not None
    t0 = time.perf_counter()
    _events_dir(cfg)
    with wiring.open_event_store(cfg) as store:
        st = store.state_at(aggregate, at_ns)
        took = time.perf_counter() - t0
        if not st.events and not store.query(aggregate=aggregate, limit=1).events:
            raise InputError(
                f"no events of aggregate {aggregate!r} (aggregates are SYMBOL@venue, book:SYMBOL@venue or source:SRC, "
                "as `ticktape events query` shows them)"
            )
    doc = state_json(st)
    if as_json:
        click.echo(json.dumps({"at": at_ns, **doc}, indent=2))
        return
    out = console()
    table = Table(title=f"{markup_safe(aggregate)} at {ns_to_iso(at_ns)}", title_justify="left")
    table.add_column("field")
    table.add_column("value", overflow="fold")
    for name, value in doc.items():
        if name in ("candles", "aggregate"):
            continue
        is_time = name.endswith("ts_event") or name == "stale_since"
        text = (ns_to_iso(value) if value else "-") if is_time else "-" if value is None else str(value)
        add_row(table, name, text)
    out.print(table)
    if st.candles:
        candles = Table(title="last candle per interval", title_justify="left")
        for col in ("interval", "start (UTC)", "open", "high", "low", "close", "volume", "trades", "rev"):
            candles.add_column(col, justify="left" if col == "start (UTC)" else "right")
        for iv, c in sorted(st.candles.items()):
            add_row(
            candles,
                f"{iv}s", ns_to_iso(c.start)[:19], f"{c.open:.8g}", f"{c.high:.8g}", f"{c.low:.8g}",
                f"{c.close:.8g}", f"{c.volume:.8g}", str(c.trades), str(c.revision),
            )  # fmt: skip
        out.print(candles)
    out.print(f"{st.events} events folded in {took * 1000:.1f} ms")


@events.command("export")
@common_options
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json", show_default=True)
@click.option("--zstd", "compress", is_flag=True, help="zstd-compress (writes PATH.zst).")
@click.option("--aggregate", help="Only this aggregate (in seq order).")
@click.option("--type", "type_", help="Only this event type.")
@click.option("--since", help=f"From this time (inclusive): {_TIME_HELP}.")
@click.option("--until", help="Up to this time (exclusive).")
def export(
    path: Path,
    fmt: str,
    compress: bool,
    aggregate: str | None,
    type_: str | None,
    since: str | None,
    until: str | None,
    **common: Any,
) -> None:
    """Export matching events to PATH as JSON lines or CSV (streamed; complete or absent)."""
    from ticktape.sinks.eventlog.export import export_path

    cfg, _ = load(**common)
    t0 = time.perf_counter()
    _events_dir(cfg)
    with wiring.open_event_store(cfg) as store:
        rows = store.export(
            path, format=fmt, compress=compress, aggregate=aggregate, type=type_,
            since=parse_time(since), until=parse_time(until),
        )  # fmt: skip
    final = export_path(path, compress)
    took = time.perf_counter() - t0
    click.echo(printable(f"{rows:,} events -> {final} ({final.stat().st_size:,} bytes, {took:.1f}s)"))


@events.command("stats")
@common_options
@click.option("--json", "as_json", is_flag=True, help="JSON instead of tables.")
def stats(as_json: bool, **common: Any) -> None:
    """Events per type and per partition, aggregates, time range, snapshots, bytes."""
    cfg, _ = load(**common)
    _events_dir(cfg)
    with wiring.open_event_store(cfg) as store:
        doc: dict[str, Any] = store.stats()
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    out = console()

    def when(ns: int | None) -> str:
        return "-" if ns is None else ns_to_iso(ns) if ns else "0 (events of unknown time)"

    out.print(
        f"{doc['events']:,} events, {doc['aggregates']:,} aggregates, {doc['snapshots']:,} snapshots, "
        f"{doc['bytes']:,} bytes; event times from {when(doc['first_ts'])} to {when(doc['last_ts'])}"
    )
    types = Table(title="events per type", title_justify="left")
    types.add_column("type")
    types.add_column("events", justify="right")
    for typ, n in sorted(doc["types"].items(), key=lambda kv: -kv[1]):
        add_row(types, typ, f"{n:,}")
    out.print(types)
    parts = Table(title="partitions", title_justify="left")
    for col in ("file", "events", "batches", "aggregates", "snapshots", "bytes"):
        parts.add_column(col, justify="left" if col == "file" else "right")
    for p in doc["partitions"]:
        add_row(
            parts,
            Path(p["path"]).name, f"{p['events']:,}", f"{p['batches']:,}", f"{p['aggregates']:,}",
            f"{p['snapshots']:,}", f"{p['bytes']:,}",
        )  # fmt: skip
    out.print(parts)


@events.command("snapshot")
@common_options
@click.option(
    "--every", type=int, default=1000, show_default=True, help="A snapshot every N events per aggregate."
)
def snapshot(every: int, **common: Any) -> None:
    """Snapshot every aggregate now (catch up on every partition file; safe while the job runs)."""
    from ticktape.sinks.eventlog.snapshots import snapshot_all

    cfg, _ = load(**common)
    if every < 1:
        raise InputError(f"--every must be >= 1, got {every}")
    t0 = time.perf_counter()
    results = snapshot_all(_events_dir(cfg), every=every)
    took = time.perf_counter() - t0
    for path, r in results.items():
        click.echo(
            f"{Path(path).name}: {r.batches:,} batches, {r.events:,} events, {r.snapshots:,} new snapshots"
        )
    total = sum(r.events for r in results.values())
    rate = f", {total / took:,.0f} events/s" if took > 0 and total else ""
    click.echo(f"done in {took:.2f}s{rate}")
