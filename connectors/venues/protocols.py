"""The protocol of each venue by name."""

from __future__ import annotations

from ticktape.connectors.venues.binance import BinanceProtocol
from ticktape.connectors.venues.bybit import BybitProtocol
from ticktape.connectors.venues.coinbase import CoinbaseProtocol
from ticktape.connectors.venues.config import VenueFeedConfig
from ticktape.connectors.venues.kraken import KrakenProtocol
from ticktape.connectors.venues.protocol import VenueProtocol

PROTOCOLS: dict[str, type[VenueProtocol]] = {
    "binance": BinanceProtocol,
    "coinbase": CoinbaseProtocol,
    "kraken": KrakenProtocol,
    "bybit": BybitProtocol,
}
#: The feed format (``ticktape.schemas.feed``) of each venue's frames.
FEED_FORMAT: dict[str, str] = {name: f"{name}-ws" for name in PROTOCOLS}


def protocol_for(cfg: VenueFeedConfig) -> VenueProtocol:
    return PROTOCOLS[cfg.venue](cfg)
