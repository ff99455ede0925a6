"""``ticktape candles``: stored OHLCV candles."""

from __future__ import annotations

import json
from typing import Any

import click
import msgspec
from rich.table import Table

from ticktape.flows import wiring
from ticktape.flows.cli.common import common_options, console, interval_seconds, load, parse_time
from ticktape.flows.terminal import add_row, markup_safe
from ticktape.schemas.errors import InputError
from ticktape.schemas.timeparse import ns_to_iso
from ticktape.sinks.candles.store import CandleStore


@click.command()
@common_options
@click.argument("symbol", required=False)
@click.option(
    "--interval", default="1m", show_default=True, help="Candle interval (1s..1d, e.g. 1m, 5m, 1h)."
)
@click.option("--venue", default=None, help="Only this venue.")
@click.option("--from", "since", help="First candle start (inclusive): ns, YYYY-MM-DD, RFC 3339 or now-1h.")
@click.option("--to", "until", help="Last candle start (exclusive).")
@click.option("--revisions", is_flag=True, help="Show every stored revision, not only the latest.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
@click.option(
    "--compact",
    is_flag=True,
    help="Instead of printing: rewrite the store so each stored revision is kept once (reruns of the same input add files).",
)
def candles(
    symbol: str | None,
    interval: str,
    venue: str | None,
    since: str | None,
    until: str | None,
    revisions: bool,
    as_json: bool,
    compact: bool,
    **common: Any,
) -> None:
    """Print stored OHLCV candles of SYMBOL (latest revision of each window), or
    compact the store (--compact)."""
    cfg, _ = load(**common)
    root = wiring.candles_dir(cfg)
    if not root.is_dir():
        raise InputError(f"no candle store at {root} (run `ticktape demo` first, or pass --data-dir)")
    store = CandleStore(root)
    if compact:
        before, after = store.compact()
        console().print(f"compacted {root}: {before:,} files -> {after:,}")
        return
    if not symbol:
        raise click.UsageError("give a SYMBOL (or --compact)")
    seconds = interval_seconds(interval)
    rows = store.read(
        symbol=symbol,
        venue=venue,
        interval=seconds,
        since=parse_time(since),
        until=parse_time(until),
        all_revisions=revisions,
    )
    if as_json:
        for c in rows:
            click.echo(json.dumps(msgspec.structs.asdict(c)))
        return
    table = Table(title=f"{markup_safe(symbol)} {markup_safe(interval)} candles", title_justify="left")
    for col in ("start (UTC)", "venue", "open", "high", "low", "close", "volume", "vwap", "trades", "rev"):
        table.add_column(col, justify="left" if col in ("start (UTC)", "venue") else "right")
    for c in rows:
        add_row(
            table,
            ns_to_iso(c.start)[:19], c.venue, f"{c.open:.8g}", f"{c.high:.8g}", f"{c.low:.8g}", f"{c.close:.8g}",
            f"{c.volume:.8g}", f"{c.vwap:.8g}", str(c.trades), str(c.revision),
        )  # fmt: skip
    out = console()
    out.print(table)
    out.print(f"{len(rows)} candles from {markup_safe(wiring.candles_dir(cfg))}")
