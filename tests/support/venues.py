"""Venue feeds under test: a simulated venue on 127.0.0.1 and the job reading it.

* :func:`simulator` starts ``ticktape venue-sim``'s server on a thread (the recorded
  Binance session, or a synthetic market) and stops it afterwards;
* :func:`feed` is a ``[[source.websocket.feeds]]`` entry for it with short timeouts;
* :func:`run_feed_flow` runs the live flow on the ``websocket`` source until the venue has
  sent its whole tape and the frames stopped coming, collecting every output;
* :func:`reference_books` rebuilds every book from the tape with plain dicts (independent
  of the job's book code): what a client that missed nothing holds at the end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bytewax.testing import TestingSink, run_main

from ticktape.connectors.venues.source import WebSocketSource
from ticktape.connectors.venuesim.binance import RECORDED
from ticktape.connectors.venuesim.faults import parse_fault
from ticktape.connectors.venuesim.runner import SimThread, build_venue
from ticktape.connectors.venuesim.tape import Tape
from ticktape.flows import wiring
from ticktape.flows.config import Config
from ticktape.flows.live.dataflow import build_flow
from ticktape.flows.wiring import Outputs
from ticktape.infra.observability.metrics import RunStats
from ticktape.schemas.records import BookSnapshot, DeadLetter, Event, PriceUpdate, Quote

#: The venue spelling of the synthetic market's symbols (``BTC-USDT``, ``ETH-USDT``, ``SOL-USDT``).
SYMBOLS: dict[str, tuple[str, ...]] = {
    "binance": ("BTCUSDT", "ETHUSDT", "SOLUSDT"),
    "coinbase": ("BTC-USDT", "ETH-USDT", "SOL-USDT"),
    "kraken": ("BTC/USDT", "ETH/USDT", "SOL/USDT"),
    "bybit": ("BTCUSDT", "ETHUSDT", "SOLUSDT"),
}
RECORDED_SYMBOLS = ("NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR")


@contextmanager
def simulator(
    venue: str, *, recorded: bool = False, events: int = 1500, rate: float = 3000.0, faults: Sequence[str] = (),
    start_ms: int | None = None, **options: Any,
) -> Iterator[SimThread]:  # fmt: skip
    """A simulated ``venue`` on 127.0.0.1 (faults in the ``--fault`` text form); the
    synthetic market starts at ``start_ms`` (default: now)."""
    sim_venue = build_venue(venue, recorded=RECORDED if recorded else None, events=events, start_ms=start_ms)
    options.setdefault("start_delay", 0.3)
    with SimThread(sim_venue, rate=rate, faults=[parse_fault(f) for f in faults], **options) as sim:
        yield sim


def feed(venue: str, sim: SimThread, **over: Any) -> dict[str, Any]:
    """A ``[[source.websocket.feeds]]`` entry for ``sim`` (fast reconnects and timeouts)."""
    entry: dict[str, Any] = {
        "venue": venue, "symbols": list(SYMBOLS[venue]), "url": sim.url, "rest_url": sim.rest_url,
        "idle_timeout": "3s", "backoff_initial": "20ms", "backoff_max": "200ms", "ping_interval": "5s",
    }  # fmt: skip
    entry.update(over)
    return entry


@dataclass
class FeedRun:
    events: list[Event] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    updates: list[PriceUpdate] = field(default_factory=list)
    quotes: list[Quote] = field(default_factory=list)
    books: list[BookSnapshot] = field(default_factory=list)
    market: list[Event] = field(default_factory=list)
    stats: RunStats = field(default_factory=RunStats)

    def of_type(self, typ: str) -> list[Event]:
        return [e for e in self.events if e.type == typ]

    def final_books(self) -> dict[str, BookSnapshot]:
        """The ``final`` snapshot of every book, by symbol."""
        return {b.symbol: b for b in self.books if b.reason == "final"}


def until_quiet(
    sim: SimThread,
    frames: Callable[[], int],
    stop: threading.Event,
    quiet: float = 0.8,
    timeout: float = 60.0,
) -> None:
    """Set ``stop`` once ``sim`` sent its whole tape and ``frames()`` (frames read so far)
    did not change for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    sim.wait_done(timeout)
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        n = frames()
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
        time.sleep(0.05)
    stop.set()


def run_feed_flow(
    cfg: Config, sim: SimThread, *, quiet: float = 0.8, timeout: float = 60.0, cache: bool = False,
    outputs: Outputs | None = None,
) -> FeedRun:  # fmt: skip
    """Run the flow of ``cfg`` (a ``websocket`` source) until ``sim`` sent its whole tape
    and no frame came for ``quiet`` seconds; every output collected (plus the embedded
    cache with ``cache``, and any ``outputs`` given)."""
    stats = RunStats()
    stop = threading.Event()
    source = WebSocketSource(
        cfg.source.websocket, batch_size=cfg.run.batch_size, rules=cfg.validation,
        keeper_settings=cfg.books.keeper(), check_clock=False, stats=stats, stop=stop,
    )  # fmt: skip
    watcher = threading.Thread(
        target=until_quiet, args=(sim, source.frames_read, stop, quiet, timeout), daemon=True
    )
    watcher.start()
    run = collect(cfg, source, stats, cache=cache, outputs=outputs)
    watcher.join(5)
    return run


def collect(
    cfg: Config,
    source: Any,
    stats: RunStats | None = None,
    *,
    cache: bool = False,
    outputs: Outputs | None = None,
) -> FeedRun:
    """Run the flow of ``cfg`` on ``source`` (bounded) with every output collected."""
    names = ("events", "dead", "prices", "quotes", "books", "market")
    raw: dict[str, list[tuple[str, list[Any]]]] = {k: [] for k in names}
    out = outputs or Outputs()
    out.events.append(TestingSink(raw["events"]))
    out.dead_letters.append(TestingSink(raw["dead"]))
    out.prices.append(TestingSink(raw["prices"]))
    out.quotes.append(TestingSink(raw["quotes"]))
    out.books.append(TestingSink(raw["books"]))
    out.market_log.append(TestingSink(raw["market"]))
    stats = stats or RunStats()
    if cache:
        out.cache.append(wiring.cache_sink(cfg, stats))
    run_main(build_flow(cfg, source=source, outputs=out, stats=stats, market=True))

    def flat(name: str) -> list[Any]:
        return [r for _, batch in raw[name] for r in batch]

    return FeedRun(*(flat(n) for n in names), stats)  # type: ignore[arg-type]


def reference_books(tape: Tape) -> dict[str, tuple[dict[float, float], dict[float, float]]]:
    """Every book of ``tape`` after all its changes (plain dicts; ids at or below a book's
    initial id are already in it), by venue symbol."""
    books: dict[str, tuple[dict[float, float], dict[float, float]]] = {}
    first: dict[str, int] = {}
    for symbol, (bids, asks, last_id) in tape.books.items():
        books[symbol] = (dict(bids), dict(asks))
        first[symbol] = last_id
    for item in tape.items:
        op = item.book
        if op is None or (op.last_id >= 0 and op.last_id <= first.get(op.symbol, -1)):
            continue
        bids, asks = books.setdefault(op.symbol, ({}, {}))
        for levels, changes in ((bids, op.bids), (asks, op.asks)):
            for price, size in changes:
                if size == 0.0:
                    levels.pop(price, None)
                else:
                    levels[price] = size
    return books


def top(levels: dict[float, float], n: int, *, bids: bool) -> list[tuple[float, float]]:
    """The ``n`` best levels of one side of a reference book."""
    return sorted(levels.items(), reverse=bids)[:n]
