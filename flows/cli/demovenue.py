"""``ticktape demo --venue``: the job on a simulated venue's live feed (no internet).

A :class:`~ticktape.connectors.venuesim.runner.SimThread` serves the venue on 127.0.0.1;
the job reads it through the ``websocket`` source for the demo's duration, then stops
cleanly (final book snapshots). The live view adds the top of book and a book ladder.
"""

from __future__ import annotations

import threading
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table

from ticktape.connectors.venuesim.runner import DEFAULT_SYMBOLS, SimThread, build_venue
from ticktape.flows.cli.venuesim import feed_entry
from ticktape.flows.terminal import add_row, markup_safe
from ticktape.infra.observability.metrics import RunStats
from ticktape.schemas.symbols import normalize

RECORDED_SYMBOLS = ("NKN-USDT", "BLZ-ETH", "LRC-BTC", "RUNE-EUR")


def start_venue(
    venue: str, *, recorded: bool, rate: float, seconds: float
) -> tuple[SimThread, dict[str, Any]]:
    """The simulated venue (started) and the config overrides that read it."""
    from ticktape.connectors.venuesim.binance import RECORDED

    events = max(int(rate * seconds * 1.2), 1000)
    step_ms = max(round(1000 / rate), 1)  # event times keep pace with the wall clock
    sim_venue = build_venue(venue, recorded=RECORDED if recorded else None, events=events, step_ms=step_ms)
    sim = SimThread(sim_venue, rate=rate, start_delay=0.5).start()
    entry = feed_entry(venue, sim.url, sim.rest_url, recorded=recorded)
    symbols = RECORDED_SYMBOLS if recorded else tuple(normalize(venue, s) for s in entry["symbols"])
    extra = {
        "source": {"kind": "websocket", "websocket": {"feeds": [entry]}},
        "run": {"mode": "live"},
        "books": {"snapshot_every": "1s"},
        "metrics": {"symbol_labels": list(symbols)},
    }
    return sim, extra


def stop_after(seconds: float, stop: threading.Event) -> threading.Timer:
    timer = threading.Timer(seconds, stop.set)
    timer.daemon = True
    timer.start()
    return timer


def market_view(stats: RunStats, venue: str) -> RenderableType:
    """Top of book per symbol and the book ladder of the first one."""
    tops, ladders = stats.market.view()
    table = Table(title=f"{venue}: top of book", title_justify="left")
    for col in ("symbol", "bid size", "bid", "ask", "ask size", "spread bps", "quotes"):
        table.add_column(col, justify="left" if col == "symbol" else "right")
    quotes = stats.market.quotes.get(venue, 0)
    for (symbol, v), (bid, ask, bid_size, ask_size) in sorted(tops.items()):
        mid = (bid + ask) / 2
        add_row(table, symbol, f"{bid_size:.6g}", f"{bid:.8g}", f"{ask:.8g}", f"{ask_size:.6g}",
                f"{(ask - bid) / mid * 1e4:.2f}" if mid else "-", f"{quotes:,}" if v == venue else "")  # fmt: skip
    if not ladders:
        return table
    (symbol, _), (bids, asks) = sorted(ladders.items())[0]
    ladder = Table(title=f"{markup_safe(symbol)} book (last L2 snapshot)", title_justify="left")
    for col in ("bid size", "bid", "ask", "ask size"):
        ladder.add_column(col, justify="right")
    for i in range(max(len(bids), len(asks))):
        b = bids[i] if i < len(bids) else None
        a = asks[i] if i < len(asks) else None
        ladder.add_row(f"{b[1]:.6g}" if b else "", f"{b[0]:.8g}" if b else "", f"{a[0]:.8g}" if a else "",
                       f"{a[1]:.6g}" if a else "")  # fmt: skip
    return Group(table, ladder)


__all__ = ["DEFAULT_SYMBOLS", "market_view", "start_venue", "stop_after"]
