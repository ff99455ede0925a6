"""``ticktape cache get|stats|warm|clear`` against the configured backend (embedded or Redis)."""

from __future__ import annotations

import json
import time
from typing import Any

import click
import msgspec
from rich.table import Table

from ticktape.flows import wiring
from ticktape.flows.cli.common import common_options, console, load
from ticktape.flows.config import Config
from ticktape.flows.terminal import add_row, printable
from ticktape.schemas.errors import InputError
from ticktape.sinks.cache.api import HISTORY, METADATA, PRICE, CacheBackend, cache_key, decode_key_part
from ticktape.sinks.cache.sink import QUOTE_SUFFIX

_KINDS = {"price": PRICE, "metadata": METADATA, "candle": HISTORY, "quote": PRICE}


def _open(cfg: Config) -> CacheBackend:
    if cfg.cache.backend == "embedded" and not wiring.cache_path(cfg).is_file():
        raise InputError(
            f"no cache at {wiring.cache_path(cfg)} (run `ticktape demo` first, or pass --data-dir)"
        )
    return wiring.open_cache(cfg)


@click.group()
def cache() -> None:
    """The cache of latest prices, metadata, candles and top of book ([cache] backend: embedded or redis)."""


@cache.command("get")
@common_options
@click.argument("symbol")
@click.option(
    "--venue", default=None, help="Venue of the symbol (default: the one venue that has SYMBOL in the cache)."
)
@click.option("--kind", type=click.Choice(list(_KINDS)), default="price", show_default=True)
@click.option(
    "--interval", default="60", show_default=True, help="Candle interval in seconds (with --kind candle)."
)
def cache_get(symbol: str, venue: str | None, kind: str, interval: str, **common: Any) -> None:
    """Print the cached value of SYMBOL, its version and whether it is still fresh
    (--kind quote: the top of book of a venue feed, with mid and spread)."""
    if not symbol.strip():
        raise click.BadParameter("expected a symbol, got ''", param_hint="SYMBOL")
    if venue is not None and not venue.strip():
        raise click.BadParameter("expected a venue, got ''", param_hint="--venue")
    cfg, _ = load(**common)
    store = _open(cfg)
    suffix = {"candle": f"candle/{interval}", "quote": QUOTE_SUFFIX}.get(kind, "")
    try:
        if venue is None:
            venue = _venue_of(store, _KINDS[kind], symbol)
        key = cache_key(_KINDS[kind], venue, symbol, suffix)
        entry = store.peek(key)
    finally:
        store.close()
    if entry is None:
        raise InputError(f"no cache entry for {key} (absent, or expired and evicted by the backend)")
    now = time.time_ns()
    state = "fresh" if entry.expires_at > now else f"expired {(now - entry.expires_at) / 1e9:.1f}s ago (TTL)"
    doc = {
        "key": key,
        "version": [entry.v1, entry.v2],
        "state": state,
        "value": msgspec.json.decode(entry.value),
    }
    click.echo(printable(json.dumps(doc, indent=2), lines=True))


def _venue_of(store: CacheBackend, kind: str, symbol: str) -> str:
    """The venue whose ``kind`` entries hold ``symbol``: the only one, else an error that
    lists the venues there are."""
    keys = store.keys(f"{kind}/")
    venues = sorted({decode_key_part(k.split("/")[1]) for k in keys if k.count("/") >= 2})
    wanted = {v: cache_key(kind, v, symbol) for v in venues}
    have = sorted(v for v, base in wanted.items() if any(k == base or k.startswith(base + "/") for k in keys))
    if len(have) == 1:
        return have[0]
    listed = ", ".join(repr(v) for v in (have or venues)[:20]) or "none"
    if have:
        raise InputError(f"{symbol!r} is cached for several venues ({listed}): pass --venue")
    raise InputError(f"no {kind} entry for {symbol!r} at any venue; venues in the cache: {listed}")


@cache.command("stats")
@common_options
def cache_stats(**common: Any) -> None:
    """Entries per type (fresh/expired), and hit/miss/eviction counters of every run."""
    cfg, _ = load(**common)
    store = _open(cfg)
    try:
        rows = store.persisted_summary(time.time_ns())
        counters = store.persisted_counters()
    finally:
        store.close()
    table = Table(title=f"cache ({cfg.cache.backend})", title_justify="left")
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
        add_row(
            table,
            typ, f"{n:,}", f"{fresh:,}", f"{n - fresh:,}", f"{size:,}", f"{hits:,}", f"{misses:,}", rate,
            f"{c.get('writes', 0):,}", f"{c.get('stale_writes', 0):,}", f"{c.get('evictions', 0):,}",
        )  # fmt: skip
    console().print(table)


@cache.command("warm")
@common_options
def cache_warm(**common: Any) -> None:
    """Load the newest price of every symbol from the event log and the latest candles
    from the candle store into the cache (never over newer values)."""
    from ticktape.flows.runner import warm_cache

    cfg, _ = load(**common)
    n = warm_cache(cfg, shared=False)
    console().print(f"warmed {n:,} entries into the {cfg.cache.backend} cache")


@cache.command("clear")
@common_options
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def cache_clear(yes: bool, **common: Any) -> None:
    """Delete every ticktape entry (Redis: only keys under the prefix, never FLUSHDB)."""
    cfg, _ = load(**common)
    if not yes:
        click.confirm(f"delete every entry of the {cfg.cache.backend} cache?", abort=True)
    store = _open(cfg)
    try:
        n = store.clear()
    finally:
        store.close()
    console().print(f"cleared {n:,} entries")
