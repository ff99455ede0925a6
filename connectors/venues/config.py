"""``[source.websocket]``: venue feeds read directly by the job (and by ``ticktape record``).

Each ``[[source.websocket.feeds]]`` entry names a venue, its symbols (venue spelling:
``BTCUSDT``, ``BTC/USD``, ``BTC-USD``) and channels (``trades``, ``agg_trades`` (Binance),
``quotes``, ``book``); its streams are cut into connections of at most
``streams_per_connection`` streams (0: the venue's limit), one source partition each,
named ``ws:<venue>/<n>``. URLs default to the venue's public endpoints; tests and the
demo point them at ``ticktape venue-sim``.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from ticktape.schemas.bounds import between
from ticktape.schemas.durations import Duration, PositiveDuration

Venue = Literal["binance", "coinbase", "kraken", "bybit"]
VENUES: tuple[str, ...] = ("binance", "coinbase", "kraken", "bybit")
CHANNELS: tuple[str, ...] = ("trades", "agg_trades", "quotes", "book")


class VenueFeedConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One venue's feed (see the module docstring).

    - ``url`` / ``rest_url``: WebSocket and REST bases (empty: the venue's public ones);
    - ``book_depth``: levels asked for (Binance REST snapshot ``limit``, Kraken/Bybit
      subscription depth; 0: the venue default); ``partial_depth`` (Binance): read
      ``<symbol>@depth<N>@100ms`` partial-depth snapshots instead of diffs;
    - ``ping_interval``: WebSocket pings (and the venue's application pings: Kraken
      ``ping``, Bybit ``op: ping``); ``idle_timeout``: reconnect when no frame arrived for
      that long; ``lifetime``: reconnect (with ``overlap``: the new connection opens first)
      before the venue's own limit (Binance closes connections after 24 h);
    - ``backoff_initial``/``backoff_max``: reconnect delays (exponential, full jitter);
    - ``max_frame_bytes``: larger frames are dead letters (``OVERSIZED_FRAME``); frames
      over ``hard_max_frame_bytes`` end the connection (the library refuses them);
    - ``queue_frames``: frames held between the socket and the job; when full, the
      connection stops reading (TCP backpressure; a venue may then drop it: a gap).
    """

    venue: Venue
    symbols: tuple[str, ...]
    channels: tuple[str, ...] = ("trades", "quotes", "book")
    url: str = ""
    rest_url: str = ""
    book_depth: Annotated[int, between(0, 100_000)] = 0
    partial_depth: Annotated[int, between(0, 20)] = 0
    streams_per_connection: Annotated[int, between(0, 100_000)] = 0
    ping_interval: Duration = Duration.parse("20s")
    idle_timeout: PositiveDuration = PositiveDuration.parse("30s")
    lifetime: Duration = Duration.parse("0s")
    overlap: Duration = Duration.parse("10s")
    connect_timeout: PositiveDuration = PositiveDuration.parse("10s")
    backoff_initial: PositiveDuration = PositiveDuration.parse("500ms")
    backoff_max: PositiveDuration = PositiveDuration.parse("30s")
    max_frame_bytes: Annotated[int, between(1024, 1 << 30)] = 1 << 20
    hard_max_frame_bytes: Annotated[int, between(1024, 1 << 30)] = 16 << 20
    queue_frames: Annotated[int, between(1, 10_000_000)] = 10_000

    def __post_init__(self) -> None:
        if not self.symbols:
            raise ValueError(f"symbols: expected at least one {self.venue} symbol")
        unknown = [c for c in self.channels if c not in CHANNELS]
        if unknown or not self.channels:
            raise ValueError(f"channels: expected some of {', '.join(CHANNELS)}, got {list(self.channels)!r}")
        if "agg_trades" in self.channels and self.venue != "binance":
            raise ValueError("channels: agg_trades is a Binance stream")
        if self.partial_depth and (self.venue != "binance" or self.partial_depth not in (5, 10, 20)):
            raise ValueError("partial_depth: Binance only, 5, 10 or 20")
        if self.hard_max_frame_bytes < self.max_frame_bytes:
            raise ValueError("max_frame_bytes: expected at most hard_max_frame_bytes")
        if int(self.backoff_max) < int(self.backoff_initial):
            raise ValueError("backoff_max: expected at least backoff_initial")
        if any(not s or any(c.isspace() for c in s) for s in self.symbols):
            raise ValueError(f"symbols: expected names without spaces, got {list(self.symbols)!r}")


class WebSocketSourceConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[source.websocket]``: the feeds (``[[source.websocket.feeds]]``).

    Delivery: at-most-once across a crash for what was in flight (frames received but
    not yet through the job's outputs are not re-read; the venue does not replay): the
    next run's ``SequenceGap`` (trade ids), ``BookGap``/``BookResync`` and
    ``FeedConnected`` events reveal what was lost. For a durable log, record the feeds
    into Kafka with ``ticktape record`` and run the job on that topic.
    """

    feeds: tuple[VenueFeedConfig, ...] = ()
