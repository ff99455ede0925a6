"""``ticktape chart``: a candlestick chart (PNG) of stored candles, with volume.

Reads the Parquet candle store like ``ticktape candles`` (latest revision of each
window) and draws it with :func:`ticktape.flows.charts.candlestick.render_candles`. matplotlib (the ``chart``
extra) is imported only when the command runs, so ``ticktape --help`` stays fast and a
missing matplotlib is a one-line error with the install command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ticktape.flows import wiring
from ticktape.flows.cli.common import common_options, interval_seconds, load, parse_time
from ticktape.flows.terminal import printable
from ticktape.schemas.durations import format_duration
from ticktape.schemas.errors import InputError
from ticktape.schemas.records import Candle
from ticktape.schemas.timeparse import ns_to_iso
from ticktape.sinks.candles.store import CandleStore

_NS = 1_000_000_000


def _minute(ns: int) -> str:
    return ns_to_iso(ns)[:16].replace("T", " ")


def _range_text(since: int | None, until: int | None) -> str:
    if since is None and until is None:
        return ""
    lo = ns_to_iso(since)[:19].replace("T", " ") if since is not None else "the beginning"
    hi = ns_to_iso(until)[:19].replace("T", " ") if until is not None else "the end"
    return f" from {lo} to {hi}"


def select_candles(
    store: CandleStore,
    symbol: str,
    *,
    interval: int,
    venue: str | None,
    since: int | None,
    until: int | None,
) -> list[Candle]:
    """The latest revision of each window of one series; :class:`InputError` when there is
    nothing to draw or the symbol trades on several venues and ``venue`` is not given."""
    rows = store.read(symbol=symbol, venue=venue, interval=interval, since=since, until=until)
    if not rows:
        where = f"{symbol}@{venue}" if venue else symbol
        hint = ""
        others = sorted({c.interval for c in store.read(symbol=symbol, venue=venue)})
        if others:
            hint = f"; stored intervals for {where}: " + ", ".join(format_duration(s * _NS) for s in others)
        raise InputError(
            f"no {format_duration(interval * _NS)} candles for {where}{_range_text(since, until)} "
            f"in {store.root}{hint} (run `ticktape demo` or a backfill first, or check --data-dir)"
        )
    venues = sorted({c.venue for c in rows})
    if len(venues) > 1:
        raise InputError(
            f"{symbol} has candles from several venues ({', '.join(venues)}): pick one with --venue"
        )
    return rows


@click.command()
@common_options
@click.argument("symbol")
@click.option(
    "--interval", default="1m", show_default=True, help="Candle interval (1s..1d, e.g. 1m, 5m, 1h)."
)
@click.option("--venue", default=None, help="Only this venue (needed when SYMBOL trades on several).")
@click.option("--from", "since", help="First candle start (inclusive): ns, YYYY-MM-DD, RFC 3339 or now-1h.")
@click.option("--to", "until", help="Last candle start (exclusive).")
@click.option(
    "-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("chart.png"),
    show_default=True, help="PNG file to write (its directory is created).",
)  # fmt: skip
@click.option("--width", type=click.IntRange(400, 10_000), default=1200, show_default=True, help="Pixels.")
@click.option("--height", type=click.IntRange(300, 10_000), default=700, show_default=True, help="Pixels.")
@click.option("--title", default=None, help="Chart title (default: symbol, interval, venue and range).")
def chart(
    symbol: str,
    interval: str,
    venue: str | None,
    since: str | None,
    until: str | None,
    out: Path,
    width: int,
    height: int,
    title: str | None,
    **common: Any,
) -> None:
    """Draw stored candles of SYMBOL as a candlestick chart with volume (PNG, UTC time).

    Up candles (close >= open) are green, down candles red, windows without trades a
    flat grey tick at the previous close.
    """
    cfg, _ = load(**common)
    from ticktape.flows.charts.candlestick import render_candles

    seconds = interval_seconds(interval)
    store = CandleStore(wiring.candles_dir(cfg))
    rows = select_candles(
        store, symbol, interval=seconds, venue=venue, since=parse_time(since), until=parse_time(until)
    )
    first, last = _minute(rows[0].start), _minute(rows[-1].end)
    label = format_duration(seconds * _NS)
    if title is None:
        title = f"{symbol} {label} @ {rows[0].venue}   {first} to {last} UTC"
    info = render_candles(rows, out, title=title, width=width, height=height)
    empty = sum(1 for c in rows if c.trades == 0)
    click.echo(
        printable(
            f"wrote {out} ({info.width}x{info.height}): {len(rows)} {label} candles of {symbol}@{rows[0].venue}"
            f" ({empty} without trades), {first} to {last} UTC"
        )
    )
