"""``ticktape events``, ``ticktape cache`` and ``ticktape candles``: read the embedded outputs."""

from __future__ import annotations

import json
import time
from typing import Any

import click
import msgspec
from rich.table import Table

from flows import wiring
from flows.cli_common import common_options, console, load, parse_time
from schemas.durations import Duration
from schemas.errors import InputError
from schemas.timeparse import ns_to_iso
from sinks import cache as cache_mod
from sinks.cache import HISTORY, METADATA, PRICE, cache_key
from sinks.candlestore import CandleStore
from sinks.eventstore import EventStore


def _short(payload: bytes, width: int = 70) -> str:
    text = payload.decode("utf-8", "replace")
    return text if len(text) <= width else text[: width - 3] + "..."


@click.command()
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
def events(
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
    with EventStore(directory) as store:
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
            doc = msgspec.structs.asdict(e) | {"payload": msgspec.json.decode(e.payload)}
            click.echo(json.dumps(doc))
        if page.cursor:
            click.echo(json.dumps({"cursor": page.cursor}))
        return
    table = Table(show_lines=False)
    for col in ("ts_event", "type", "aggregate", "seq", "payload"):
        table.add_column(col, overflow="fold")
    for e in page.events:
        table.add_row(
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


@click.group()
def cache() -> None:
    """Read the embedded cache (latest price, metadata and candles per symbol)."""


_KINDS = {"price": PRICE, "metadata": METADATA, "candle": HISTORY}


@cache.command("get")
@common_options
@click.argument("symbol")
@click.option("--venue", default="synthetic", show_default=True, help="Venue of the symbol.")
@click.option("--kind", type=click.Choice(list(_KINDS)), default="price", show_default=True)
@click.option(
    "--interval",
    default="60",
    show_default=True,
    help="Candle interval in seconds (with --kind candle).",
)
def cache_get(symbol: str, venue: str, kind: str, interval: str, **common: Any) -> None:
    """Print the cached value of SYMBOL, with its version and whether it is still fresh."""
    cfg, _ = load(**common)
    path = wiring.cache_path(cfg)
    if not path.is_file():
        raise InputError(f"no cache at {path} (run `ticktape demo` first, or pass --data-dir)")
    store = cache_mod.EmbeddedCache(path, wiring.cache_ttls(cfg))
    try:
        key = cache_key(_KINDS[kind], venue, symbol, f"candle/{interval}" if kind == "candle" else "")
        entry = store.peek(key)
    finally:
        store.close()
    if entry is None:
        raise InputError(f"no cache entry for {key}")
    age = (time.time_ns() - entry.expires_at) / 1e9
    fresh = "fresh" if entry.expires_at > time.time_ns() else f"expired {age:.1f}s ago (TTL)"
    click.echo(
        json.dumps(
            {
                "key": key,
                "version": [entry.v1, entry.v2],
                "state": fresh,
                "value": msgspec.json.decode(entry.value),
            },
            indent=2,
        )
    )


@cache.command("stats")
@common_options
def cache_stats(**common: Any) -> None:
    """Entries per type in the cache file, and hit/miss/eviction counters of every run."""
    cfg, _ = load(**common)
    path = wiring.cache_path(cfg)
    if not path.is_file():
        raise InputError(f"no cache at {path} (run `ticktape demo` first, or pass --data-dir)")
    store = cache_mod.EmbeddedCache(path, wiring.cache_ttls(cfg))
    try:
        now = time.time_ns()
        rows = store.persisted_summary(now)
        counters = store.persisted_counters()
    finally:
        store.close()
    table = Table(title=f"cache {path}", title_justify="left")
    cols = (
        "type",
        "entries",
        "fresh",
        "expired",
        "bytes",
        "hits",
        "misses",
        "hit rate",
        "writes",
        "refused older",
        "evicted",
    )
    for col in cols:
        table.add_column(col, justify="left" if col == "type" else "right")
    for typ in sorted(rows.keys() | counters.keys()):
        n, fresh, size = rows.get(typ, (0, 0, 0))
        c = counters.get(typ, {})
        hits, misses = c.get("hits", 0), c.get("misses", 0)
        rate = f"{hits / (hits + misses):.1%}" if hits + misses else "-"
        table.add_row(
            typ, f"{n:,}", f"{fresh:,}", f"{n - fresh:,}", f"{size:,}", f"{hits:,}", f"{misses:,}", rate,
            f"{c.get('writes', 0):,}", f"{c.get('stale_writes', 0):,}", f"{c.get('evictions', 0):,}",
        )  # fmt: skip
    console().print(table)


@click.command()
@common_options
@click.argument("symbol")
@click.option(
    "--interval", default="1m", show_default=True, help="Candle interval (1s..1d, e.g. 1m, 5m, 1h)."
)
@click.option("--venue", default=None, help="Only this venue.")
@click.option("--from", "since", help="First candle start (inclusive): ns, YYYY-MM-DD, RFC 3339 or now-1h.")
@click.option("--to", "until", help="Last candle start (exclusive).")
@click.option("--revisions", is_flag=True, help="Show every stored revision, not only the latest.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
def candles(
    symbol: str,
    interval: str,
    venue: str | None,
    since: str | None,
    until: str | None,
    revisions: bool,
    as_json: bool,
    **common: Any,
) -> None:
    """Print stored OHLCV candles of SYMBOL (latest revision of each window)."""
    cfg, _ = load(**common)
    seconds = int(Duration.parse(interval)) // 1_000_000_000
    store = CandleStore(wiring.candles_dir(cfg))
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
    table = Table(title=f"{symbol} {interval} candles", title_justify="left")
    for col in ("start (UTC)", "venue", "open", "high", "low", "close", "volume", "vwap", "trades", "rev"):
        table.add_column(col, justify="left" if col in ("start (UTC)", "venue") else "right")
    for c in rows:
        table.add_row(
            ns_to_iso(c.start)[:19], c.venue, f"{c.open:.8g}", f"{c.high:.8g}", f"{c.low:.8g}", f"{c.close:.8g}",
            f"{c.volume:.8g}", f"{c.vwap:.8g}", str(c.trades), str(c.revision),
        )  # fmt: skip
    out = console()
    out.print(table)
    out.print(f"{len(rows)} candles from {wiring.candles_dir(cfg)}")
