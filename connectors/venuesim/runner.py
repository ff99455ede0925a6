"""Build a simulated venue from a tape choice and run it on a background thread.

:func:`build_venue` makes the :class:`~ticktape.connectors.venuesim.venue.SimVenue` of a
venue from the recorded session (Binance) or a synthetic market; :class:`SimThread`
serves it from its own event loop (tests, the demo, benchmarks), ``ticktape venue-sim``
in the foreground.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ticktape.connectors.venuesim import binance, bybit, coinbase, kraken
from ticktape.connectors.venuesim.faults import Fault
from ticktape.connectors.venuesim.market import SyntheticMarket
from ticktape.connectors.venuesim.server import VenueSimServer
from ticktape.connectors.venuesim.venue import SimVenue
from ticktape.schemas.errors import InputError

T = TypeVar("T")
VENUES: dict[str, type[SimVenue]] = {
    "binance": binance.BinanceSim,
    "coinbase": coinbase.CoinbaseSim,
    "kraken": kraken.KrakenSim,
    "bybit": bybit.BybitSim,
}
SYNTHETIC = {
    "binance": binance.synthetic_tape,
    "coinbase": coinbase.synthetic_tape,
    "kraken": kraken.synthetic_tape,
    "bybit": bybit.synthetic_tape,
}
#: Symbols of the synthetic market (normalized; each venue spells them its way).
DEFAULT_SYMBOLS = ("BTC-USDT", "ETH-USDT", "SOL-USDT")


def build_venue(
    venue: str,
    *,
    recorded: tuple[Path, Path] | None = None,
    symbols: Sequence[str] = DEFAULT_SYMBOLS,
    events: int = 5000,
    seed: int = 7,
    depth: int = 20,
    start_ms: int | None = None,
    step_ms: int = 10,
) -> SimVenue:
    """The simulated ``venue``: a recorded session (Binance: ``(ws file, REST file)``,
    e.g. :data:`ticktape.connectors.venuesim.binance.RECORDED`, with its times moved to
    now unless ``start_ms`` is given) or ``events`` events of a synthetic market of
    ``symbols`` from ``start_ms`` (default: now), one every ``step_ms``."""
    if venue not in VENUES:
        raise InputError(f"venue: expected one of {', '.join(VENUES)}, got {venue!r}")
    if recorded is not None:
        if venue != "binance":
            raise InputError(
                "recorded sessions are available for binance only (the others use older protocols)"
            )
        for path in recorded:
            if not Path(path).is_file():
                raise InputError(f"recorded session file not found: {path}")
        return VENUES[venue](binance.recorded_tape(*recorded, now=start_ms is None))
    start = int(time.time() * 1000) if start_ms is None else start_ms
    market = SyntheticMarket(list(symbols), seed=seed, depth=depth, start_ms=start, step_ms=step_ms)
    return VENUES[venue](SYNTHETIC[venue](market, events))


class SimThread:
    """A :class:`VenueSimServer` on a daemon thread with its own event loop."""

    def __init__(self, venue: SimVenue, **server_options: object) -> None:
        self.venue = venue
        self.options = server_options
        self.server: VenueSimServer | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="venue-sim", daemon=True)

    def start(self) -> SimThread:
        self._thread.start()
        self.server = self.call(self._start())
        return self

    async def _start(self) -> VenueSimServer:
        return await VenueSimServer(self.venue, **self.options).start()  # type: ignore[arg-type]

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``coro`` on the simulator's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    @property
    def rest_url(self) -> str:
        assert self.server is not None
        return self.server.rest_url

    def wait_done(self, timeout: float) -> bool:
        """Wait until the tape was fully sent."""
        assert self.server is not None
        done = self.server.done

        async def wait() -> bool:
            try:
                await asyncio.wait_for(done.wait(), timeout)
                return True
            except TimeoutError:
                return False

        return bool(asyncio.run_coroutine_threadsafe(wait(), self._loop).result(timeout + 5))

    def stop(self) -> None:
        if self.server is not None:
            self.call(self.server.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> SimThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["Fault", "SimThread", "build_venue"]
