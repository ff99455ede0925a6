"""What a venue protocol tells the connection: URL, subscriptions, limits, pings, and what
each frame is.

A :class:`VenueProtocol` is plain logic (no I/O); :mod:`ticktape.connectors.venues.connection`
drives it. Frames are classified cheaply (a prefix test on the bytes, a parse only for the
rare control messages), since every frame passes here before it is decoded once more by
the job's decoder.
"""

from __future__ import annotations

import re
from enum import IntEnum
from typing import NamedTuple

import msgspec

from ticktape.connectors.venues.config import VenueFeedConfig
from ticktape.schemas.symbols import normalize


class Kind(IntEnum):
    """What a venue frame is, for the connection."""

    DATA = 0  # market data: goes to the job
    ACK = 1  # a reply to a subscription or a ping
    HEARTBEAT = 2  # a keep-alive
    ERROR = 3  # the venue refused something (rate limit, bad subscription)


class Classified(NamedTuple):
    kind: Kind
    detail: str = ""  # ERROR: the venue's text
    seq: int = -1  # the connection-wide message sequence when the venue sends one (Coinbase)


class Stream(NamedTuple):
    """One subscription: a channel (``trades``, ``agg_trades``, ``quotes``, ``book``) of a
    symbol (venue spelling)."""

    channel: str
    symbol: str


DATA = Classified(Kind.DATA)
ACK = Classified(Kind.ACK)
HEARTBEAT = Classified(Kind.HEARTBEAT)
_enc = msgspec.json.Encoder()
_SEQ = re.compile(rb'"sequence_num":\s*(\d+)')


def encode(obj: object) -> str:
    """A JSON text frame."""
    return _enc.encode(obj).decode()


def sequence_num(raw: bytes) -> int:
    """``sequence_num`` near the start of a frame (-1 when absent)."""
    match = _SEQ.search(raw, 0, 256)
    return int(match.group(1)) if match else -1


class VenueProtocol:
    """Base class; one subclass per venue (see the venue modules)."""

    venue = ""
    default_url = ""
    default_rest_url = ""
    #: Streams one connection may carry (the venue's limit).
    max_streams = 200
    #: Whether book resyncs come from a REST snapshot (else: resubscribe the book).
    rest_snapshots = False
    #: Application-level ping interval (s) the venue needs beside WebSocket pings (0: none).
    app_ping_every = 0.0

    def __init__(self, cfg: VenueFeedConfig) -> None:
        self.cfg = cfg
        self.url = (cfg.url or self.default_url).rstrip("/")
        self.rest_url = (cfg.rest_url or self.default_rest_url).rstrip("/")
        self._symbols = {normalize(self.venue, s): s for s in cfg.symbols}

    # --- subscriptions ----------------------------------------------------------------
    def streams(self) -> list[Stream]:
        """Every stream of the feed, symbol by symbol."""
        return [Stream(c, s) for s in self.cfg.symbols for c in self.cfg.channels]

    def connections(self) -> list[list[Stream]]:
        """The streams cut into connections of at most the allowed number each."""
        per = self.cfg.streams_per_connection or self.max_streams
        per = min(per, self.max_streams)
        streams = self.streams()
        return [streams[i : i + per] for i in range(0, len(streams), per)]

    def connect_url(self, streams: list[Stream]) -> str:
        """The URL to open for ``streams``."""
        return self.url

    def subscribe(self, streams: list[Stream]) -> list[str]:
        """Messages to send once connected."""
        return []

    def resubscribe_book(self, symbol: str) -> list[str]:
        """Messages that make the venue send a fresh book snapshot of ``symbol`` (venue
        spelling); venues with REST snapshots return []."""
        return []

    def snapshot_url(self, symbol: str) -> str:
        """The REST URL of ``symbol``'s book snapshot (REST-snapshot venues)."""
        raise NotImplementedError

    def app_ping(self) -> str | None:
        """The venue's application ping message, if it wants one."""
        return None

    def venue_symbol(self, normalized: str) -> str | None:
        """The venue spelling of a normalized symbol of this feed (None: not ours)."""
        return self._symbols.get(normalized)

    def book_symbols(self, streams: list[Stream]) -> list[str]:
        return [s.symbol for s in streams if s.channel == "book"]

    # --- frames -----------------------------------------------------------------------
    def classify(self, raw: bytes) -> Classified:
        """What ``raw`` is (see :class:`Kind`)."""
        return DATA
