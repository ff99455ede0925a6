"""``ticktape demo``: the whole job on the embedded default, with a live progress view."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Group
from rich.live import Live
from rich.table import Table

from ticktape.flows import wiring
from ticktape.flows.cli.common import common_options, console, load
from ticktape.flows.config import Config
from ticktape.flows.terminal import add_row
from ticktape.infra.observability.logs import set_process_operation
from ticktape.infra.observability.metrics import RunStats
from ticktape.schemas.durations import Duration
from ticktape.schemas.records import Candle
from ticktape.schemas.timeparse import ns_to_iso
from ticktape.sinks.cache import embedded as cache_mod


class _CacheReader(threading.Thread):
    """Simulated cache clients: read the latest price of random known symbols, so the
    hit rate shows the price TTL at work (quiet symbols expire)."""

    def __init__(self, cfg: Config, rate: float = 200.0) -> None:
        super().__init__(name="demo-cache-reader", daemon=True)
        self.cfg = cfg
        self.rate = rate
        self.stop = threading.Event()

    def run(self) -> None:
        cache = cache_mod.shared(
            wiring.cache_path(self.cfg),
            wiring.cache_ttls(self.cfg),
            self.cfg.cache.max_entries,
            self.cfg.cache.max_bytes,
        )
        keys: list[str] = []
        refreshed = 0.0
        rng = random.Random(1)
        while not self.stop.wait(1.0 / self.rate):
            now = time.monotonic()
            if now - refreshed > 1.0:
                keys = cache.keys("price/")
                refreshed = now
            if keys:
                cache.get(rng.choice(keys))


def _progress(stats: RunStats, cfg: Config, started: float, last: dict[str, float]) -> Group:
    totals = stats.totals()
    now = time.perf_counter()
    elapsed = now - started
    rate = (totals.read - last["read"]) / max(now - last["t"], 1e-9)
    last.update(read=totals.read, t=now)
    lat = stats.latency.report().get("recv_to_sink", {})
    cache = cache_mod.shared(
        wiring.cache_path(cfg), wiring.cache_ttls(cfg), cfg.cache.max_entries, cfg.cache.max_bytes
    )
    price = cache.stats()["price"]
    table = Table(title=f"ticktape demo - {elapsed:5.1f}s", title_justify="left", show_header=True)
    for col in (
        "ticks/s",
        "read",
        "accepted",
        "rejected",
        "duplicate",
        "gaps",
        "candles",
        "recv->sink p50/p99 ms",
        "cache hit rate",
    ):
        table.add_column(col, justify="right")
    add_row(
            table,
        f"{rate:,.0f}", f"{totals.read:,}", f"{totals.accepted:,}", f"{totals.rejected:,}", f"{totals.duplicate:,}",
        f"{stats.events.get('SequenceGap', 0):,}",
        f"{stats.events.get('CandleClosed', 0) + stats.events.get('CandleRevised', 0):,}",
        f"{lat.get('p50_ms', 0):.2f} / {lat.get('p99_ms', 0):.2f}" if lat else "-",
        f"{price['hit_rate']:.1%} ({int(price['hits'] + price['misses']):,} reads)",
    )  # fmt: skip
    recent: list[Candle] = list(stats.recent_candles)  # type: ignore[arg-type]
    if not recent:
        return Group(table)
    closed = Table(title="latest candles closed", title_justify="left")
    for col in (
        "symbol",
        "interval",
        "start (UTC)",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "trades",
        "rev",
    ):
        closed.add_column(col, justify="left" if col in ("symbol", "start (UTC)") else "right", no_wrap=True)
    for c in reversed(recent):
        add_row(
            closed,
            c.symbol, f"{c.interval}s", ns_to_iso(c.start)[11:19], f"{c.open:.6g}", f"{c.high:.6g}", f"{c.low:.6g}",
            f"{c.close:.6g}", f"{c.volume:.6g}", str(c.trades), str(c.revision),
        )  # fmt: skip
    return Group(table, closed)


@click.command()
@common_options
@click.option(
    "--duration",
    default="10s",
    show_default=True,
    help="How long the synthetic feed runs (e.g. 30s, 2m).",
)
@click.option(
    "--rate",
    type=float,
    default=5000.0,
    show_default=True,
    help="Synthetic trades per second (with --file: rows/s, 0 = unlimited).",
)
@click.option("--symbols", type=int, default=50, show_default=True, help="Number of synthetic symbols.")
@click.option(
    "--file",
    "files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Replay a history file instead (freqtrade JSON, CSV, Kraken REST JSON). Repeatable.",
)
@click.option(
    "--faults/--no-faults",
    default=True,
    show_default=True,
    help="Inject duplicates, out-of-order trades, gaps and malformed messages.",
)
@click.option(
    "--progress/--no-progress", default=True, show_default=True, help="Show the live progress view."
)
@click.option(
    "--metrics-port",
    type=int,
    default=0,
    show_default=True,
    help="Prometheus port on 127.0.0.1 (0 = any free port).",
)
@click.option("-w", "--workers", type=int, default=1, show_default=True, help="Worker threads.")
@click.option(
    "--venue",
    type=click.Choice(["binance", "coinbase", "kraken", "bybit"]),
    default=None,
    help="Read a simulated venue's live feed instead (trades, quotes, L2 books; a local `ticktape venue-sim`, no internet).",
)
@click.option("--recorded", is_flag=True, help="With --venue binance: replay the recorded 2021 session.")
def demo(
    duration: str,
    rate: float,
    symbols: int,
    files: tuple[Path, ...],
    faults: bool,
    progress: bool,
    metrics_port: int,
    workers: int,
    venue: str | None,
    recorded: bool,
    **common: Any,
) -> None:
    """Run the job for a bounded time on the embedded default and say where every
    output is. No servers, no config file needed."""
    from ticktape.flows.reporting import print_report
    from ticktape.flows.runner import run as run_flow

    fault = 0.002 if faults else 0.0
    flags: dict[str, tuple[str, Any]] = {
        "run.workers": ("-w/--workers", workers),
        "metrics.port": ("--metrics-port", metrics_port),
    }
    if recorded and venue != "binance":
        raise click.UsageError("--recorded goes with --venue binance")
    if venue is not None:
        from ticktape.flows.cli.demovenue import start_venue

        venue_rate = 200.0 if rate == 5000.0 else rate
        sim, extra = start_venue(
            venue, recorded=recorded, rate=venue_rate, seconds=Duration.parse(duration).seconds
        )
        try:
            _demo_venue(sim, extra, flags, venue, duration, progress, common)
        finally:
            sim.stop()
        return
    if files:
        source: dict[str, Any] = {"kind": "file", "file": {"paths": [str(f) for f in files]}}
        flags["source.file.rate"] = ("--rate", rate if rate != 5000.0 else 0.0)
        mode = "replay"
    else:
        source = {"kind": "synthetic", "synthetic": {
            "duplicate_rate": fault, "out_of_order_rate": fault, "gap_rate": fault / 2, "malformed_rate": fault,
        }}  # fmt: skip
        flags |= {
            "source.synthetic.rate": ("--rate", rate),
            "source.synthetic.symbols": ("--symbols", symbols),
            "source.synthetic.duration": ("--duration", duration),
        }
        mode = "live"
    extra = {"source": source, "run": {"mode": mode}}
    cfg, run_id = load(extra=extra, flags=flags, **common)
    set_process_operation("demo")
    out = console()
    out.print(
        f"[b]ticktape demo[/b] run {run_id}: {'files ' + ', '.join(map(str, files)) if files else f'{symbols} synthetic symbols at {rate:,.0f}/s for {duration}'}"
    )
    stats = RunStats(cfg.metrics.latency_window)
    reader = _CacheReader(cfg)
    reader.start()
    started = time.perf_counter()
    last = {"read": 0.0, "t": started}
    live = (
        Live(_progress(stats, cfg, started, last), console=out, refresh_per_second=4, transient=False)
        if progress
        else None
    )
    stop = threading.Event()

    def refresh() -> None:
        while not stop.wait(0.5):
            if live is not None:
                live.update(_progress(stats, cfg, started, last))

    updater = threading.Thread(target=refresh, daemon=True)
    try:
        if live is not None:
            live.start()
        updater.start()
        result = run_flow(cfg, run_id=run_id, stats=stats)
    finally:
        stop.set()
        reader.stop.set()
        reader.join(timeout=2)
        if live is not None:
            live.update(_progress(stats, cfg, started, last))
            live.stop()
            out.print()
    cache = cache_mod.shared(
        wiring.cache_path(cfg), wiring.cache_ttls(cfg), cfg.cache.max_entries, cfg.cache.max_bytes
    )
    hit = cache.stats()["price"]
    cache_mod.release(wiring.cache_path(cfg))
    print_report(
        result,
        out,
        {
            "metrics": f"http://127.0.0.1:{result.metrics_port}/metrics (served while running)"
            if result.metrics_port
            else "off"
        },
    )
    out.print(
        f"cache: {hit['hits']:,} hits, {hit['misses']:,} misses ({hit['hit_rate']:.1%}) for price reads"
    )
    out.print(
        "next: [b]ticktape events query --type SequenceGap[/b], [b]ticktape events query --type DeadLettered[/b], [b]ticktape cache stats[/b]"
    )


def _demo_venue(
    sim: Any, extra: dict[str, Any], flags: dict[str, tuple[str, Any]], venue: str, duration: str, progress: bool,
    common: dict[str, Any],
) -> None:  # fmt: skip
    """The demo on a simulated venue (see :mod:`ticktape.flows.cli.demovenue`)."""
    from ticktape.connectors.venues.source import WebSocketSource
    from ticktape.flows.cli.demovenue import market_view, stop_after
    from ticktape.flows.reporting import print_report
    from ticktape.flows.runner import run as run_flow

    cfg, run_id = load(extra=extra, **common)
    set_process_operation("demo")
    out = console()
    out.print(
        f"[b]ticktape demo[/b] run {run_id}: the {venue} feed of a local simulator ({sim.url}) for {duration}"
    )
    stats = RunStats(cfg.metrics.latency_window)
    stats.configure(live=True, symbol_labels=cfg.metrics.symbol_labels)
    stop = threading.Event()
    source = WebSocketSource(
        cfg.source.websocket, batch_size=cfg.run.batch_size, rules=cfg.validation,
        keeper_settings=cfg.books.keeper(), stats=stats, stop=stop,
    )  # fmt: skip
    timer = stop_after(Duration.parse(duration).seconds, stop)
    started = time.perf_counter()
    last = {"read": 0.0, "t": started}

    def view() -> Group:
        return Group(_progress(stats, cfg, started, last), market_view(stats, venue))

    live = Live(view(), console=out, refresh_per_second=4, transient=False) if progress else None
    done = threading.Event()

    def refresh() -> None:
        while not done.wait(0.5):
            if live is not None:
                live.update(view())

    updater = threading.Thread(target=refresh, daemon=True)
    try:
        if live is not None:
            live.start()
        updater.start()
        result = run_flow(cfg, run_id=run_id, stats=stats, source=source)
    finally:
        done.set()
        timer.cancel()
        if live is not None:
            live.update(view())
            live.stop()
            out.print()
        cache_mod.release(wiring.cache_path(cfg))
    print_report(result, out)
    out.print(
        f"next: [b]ticktape cache get {cfg.metrics.symbol_labels[0]} --venue {venue} --kind quote[/b], "
        "[b]ticktape events query --type BookResync[/b], [b]ticktape venue-sim --help[/b]"
    )
