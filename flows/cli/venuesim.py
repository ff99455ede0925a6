"""``ticktape venue-sim``: a local venue (WebSocket + REST on 127.0.0.1) for demos and tests."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from ticktape.flows.cli.common import common_options, console, load
from ticktape.infra.observability.logs import set_process_operation

_VENUES = ("binance", "coinbase", "kraken", "bybit")
_EXAMPLE_SYMBOLS = {
    "binance": ("BTCUSDT", "ETHUSDT", "SOLUSDT"),
    "coinbase": ("BTC-USDT", "ETH-USDT", "SOL-USDT"),
    "kraken": ("BTC/USDT", "ETH/USDT", "SOL/USDT"),
    "bybit": ("BTCUSDT", "ETHUSDT", "SOLUSDT"),
}
_RECORDED_SYMBOLS = ("NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR")


def feed_entry(venue: str, url: str, rest_url: str, *, recorded: bool = False) -> dict[str, Any]:
    """The ``[[source.websocket.feeds]]`` entry that reads the simulator."""
    symbols = _RECORDED_SYMBOLS if recorded else _EXAMPLE_SYMBOLS[venue]
    channels = ["agg_trades", "quotes", "book"] if recorded else ["trades", "quotes", "book"]
    return {"venue": venue, "symbols": list(symbols), "channels": channels, "url": url, "rest_url": rest_url}


@click.command("venue-sim")
@common_options
@click.option("--venue", type=click.Choice(_VENUES), default="binance", show_default=True)
@click.option("--port", type=int, default=0, show_default=True, help="Port on 127.0.0.1 (0 = any free port).")
@click.option(
    "--recorded",
    is_flag=True,
    help="Replay the recorded Binance session (2021, 4 symbols, ~25 s) instead of a synthetic market.",
)
@click.option(
    "--events",
    type=int,
    default=60_000,
    show_default=True,
    help="Synthetic market events (trades and book changes).",
)
@click.option(
    "--rate", type=float, default=100.0, show_default=True, help="Events per second (0 = all at once)."
)
@click.option(
    "--mode", type=click.Choice(["market", "replay"]), default="market", show_default=True,
    help="market: one shared market clock (a live venue); replay: every connection gets the whole tape as fast as it reads.",
)  # fmt: skip
@click.option(
    "--fault", "faults", multiple=True, metavar="KIND[:ARG][@FRAME][#CONN]",
    help="Inject a fault (repeatable): disconnect, close:CODE, stall:SECS, malformed, oversized:BYTES, skip, duplicate:K, slow:Q, rest_error:STATUS.",
)  # fmt: skip
@click.option("--seed", type=int, default=7, show_default=True, help="Synthetic market seed.")
def venue_sim(
    venue: str, port: int, recorded: bool, events: int, rate: float, mode: str, faults: tuple[str, ...], seed: int,
    **common: Any,
) -> None:  # fmt: skip
    """Serve a simulated venue on 127.0.0.1 until interrupted: its WebSocket feed and REST
    snapshots, replaying recorded or synthetic market data, with injected faults. Point
    a [[source.websocket.feeds]] entry (or `ticktape record`) at the URLs it prints."""
    from ticktape.connectors.venuesim.binance import RECORDED
    from ticktape.connectors.venuesim.faults import parse_fault
    from ticktape.connectors.venuesim.runner import build_venue
    from ticktape.connectors.venuesim.server import VenueSimServer

    load(**common)
    set_process_operation("venue-sim")
    if recorded and venue != "binance":
        raise click.UsageError("--recorded replays the recorded Binance session: use --venue binance")
    plan = [parse_fault(f) for f in faults]
    step_ms = max(round(1000 / rate), 1) if rate > 0 else 10  # event times keep pace with the wall clock
    sim_venue = build_venue(
        venue, recorded=RECORDED if recorded else None, events=events, seed=seed, step_ms=step_ms
    )
    out = console()

    async def serve() -> None:
        server = await VenueSimServer(
            sim_venue, rate=rate, mode=mode, faults=plan, port=port, start_delay=0.5
        ).start()
        entry = feed_entry(venue, server.url, server.rest_url, recorded=recorded)
        out.print(f"[b]{venue} simulator[/b]: WebSocket {server.url}  REST {server.rest_url}  "
                  f"({len(sim_venue.tape.items):,} frames at {rate:g}/s, mode {mode}, faults {list(faults) or 'none'})")  # fmt: skip
        out.print("read it with this config (then `ticktape run -c feed.toml`):\n")
        out.print('[source]\nkind = "websocket"\n\n[[source.websocket.feeds]]', markup=False)
        for key, value in entry.items():
            shown = (
                "[" + ", ".join(f'"{v}"' for v in value) + "]" if isinstance(value, list) else f'"{value}"'
            )
            out.print(f"{key} = {shown}", markup=False)
        out.print()
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        out.print("stopped")
