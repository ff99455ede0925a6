"""The ``websocket`` source: venue feeds read by the job directly (one process).

Unit of parallelism: a connection (``ws:<venue>/<n>``: the streams of a feed cut by
``streams_per_connection``); Bytewax spreads them over workers. Each partition runs its
connection on a thread (:class:`~ticktape.connectors.venues.runner.FeedRunner`), drains
its frames every poll and decodes them (:class:`~ticktape.schemas.feed.FeedBatchDecoder`:
trades, quotes, local L2 books); the books' resync requests go back to the connection
(REST snapshot or resubscribe).

Delivery: **at-most-once across a crash** for what was in flight: frames received but not
yet through the outputs when the process dies are not read again (venues do not replay).
What that lost is revealed by the next run: ``SequenceGap`` events (trade ids, with the
keyed step's resume state), ``BookGap``/``BookResync`` events, ``FeedConnected``. Within a
run: every frame received is decoded once, in order per connection; the accounting
``read = accepted + rejected + duplicate`` holds per connection. For a durable log,
``ticktape record`` writes the same frames to Kafka and the job reads that topic.

Frame coordinates: ``src`` is the partition, ``offset`` the frame's number on it, which
starts at the wall clock in µs when the partition starts (resumed: never below the
resumed value), so offsets, and the dead-letter ids made from them, never repeat across
runs. Resume state: ``(next_offset, decoder state)`` (the decoder state holds the local
books; a resumed book is only trusted after the next snapshot, since frames were lost).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from ticktape.connectors.venues.config import WebSocketSourceConfig
from ticktape.connectors.venues.protocol import Stream, VenueProtocol
from ticktape.connectors.venues.protocols import FEED_FORMAT, protocol_for
from ticktape.connectors.venues.rest import SnapshotClient
from ticktape.connectors.venues.runner import FeedRunner
from ticktape.infra.observability.logs import get_logger
from ticktape.infra.observability.metrics import RunStats
from ticktape.schemas.books.keeper import BookKeeper, KeeperSettings
from ticktape.schemas.errors import SourceError
from ticktape.schemas.feed import FeedBatchDecoder, make_batch_decoder
from ticktape.schemas.records import TickBatch
from ticktape.schemas.validation import ValidationRules

log = get_logger("venues")
State = tuple[int, tuple[Any, ...]]
_MAX_IDLE = 0.01


def plan_connections(cfg: WebSocketSourceConfig) -> dict[str, tuple[VenueProtocol, list[Stream]]]:
    """Partition name -> (protocol, streams), numbered per venue in config order."""
    out: dict[str, tuple[VenueProtocol, list[Stream]]] = {}
    counts: dict[str, int] = {}
    for feed in cfg.feeds:
        protocol = protocol_for(feed)
        for streams in protocol.connections():
            n = counts.get(feed.venue, 0)
            counts[feed.venue] = n + 1
            out[f"ws:{feed.venue}/{n}"] = (protocol, streams)
    return out


class _FeedPartition(StatefulSourcePartition[TickBatch, State]):
    def __init__(
        self,
        runner: FeedRunner,
        decoder: FeedBatchDecoder,
        offset: int,
        batch_size: int,
        stop: threading.Event | None,
    ) -> None:
        self.runner = runner
        self.stop = stop
        self.decoder = decoder
        self.offset = offset
        self.batch_size = batch_size
        self._idle = 0.0
        self._wake: datetime | None = None
        self.frames = 0
        self.ended = False

    def next_batch(self) -> list[TickBatch]:
        frames = self.runner.drain(self.batch_size)
        if not frames:
            if self.stop is not None and self.stop.is_set():
                self.runner.stop()
                if not self.runner.queue:
                    if self.ended:
                        raise StopIteration
                    self.ended = True  # last: the books' final state
                    return [self.decoder.final(self.offset, time.time_ns())]
                return []
            if self.runner.failed is not None or not self.runner.alive:
                raise SourceError(f"{self.runner.name}: the feed connection stopped: {self.runner.failed!r}")
            self._idle = min(max(self._idle * 2, 0.0005), _MAX_IDLE)
            self._wake = datetime.now(UTC) + timedelta(seconds=self._idle)
            return []
        self._idle, self._wake = 0.0, None
        base = self.offset
        self.offset = base + len(frames)
        self.frames += len(frames)
        batch = self.decoder.decode([(base + i, f.raw, f.ts_recv, 0) for i, f in enumerate(frames)])
        for _venue, symbol, reason in self.decoder.keeper.take_resyncs():
            self.runner.request_resync(symbol, reason)
        return [batch]

    def next_awake(self) -> datetime | None:
        return self._wake

    def snapshot(self) -> State:
        return (self.offset, self.decoder.state())

    def close(self) -> None:
        self.runner.stop()


class WebSocketSource(FixedPartitionedSource[TickBatch, State]):
    """Venue feeds as tick batches (see the module docstring); ``stats`` gets the
    connection metrics (``ticktape_feed_*``). Setting ``stop`` ends the source: each
    partition closes its connection, reads what it had received, emits a ``final``
    L2 snapshot of every book in sync, then ends (a live run has no end otherwise)."""

    def __init__(
        self,
        cfg: WebSocketSourceConfig,
        *,
        batch_size: int = 2000,
        rules: ValidationRules | None = None,
        keeper_settings: KeeperSettings | None = None,
        check_clock: bool = True,
        stats: RunStats | None = None,
        rest: SnapshotClient | None = None,
        rng: random.Random | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.cfg = cfg
        self.stop = stop
        self.batch_size = batch_size
        self.rules = rules or ValidationRules()
        self.keeper_settings = keeper_settings
        self.check_clock = check_clock
        self.rest = rest
        self.rng = rng
        self.plan = plan_connections(cfg)
        self._parts: dict[str, _FeedPartition] = {}
        if stats is not None:
            stats.collectors.append(self._collect)

    def list_parts(self) -> list[str]:
        return list(self.plan)

    def build_part(self, step_id: str, for_part: str, resume_state: State | None) -> _FeedPartition:
        protocol, streams = self.plan[for_part]
        state = resume_state[1] if resume_state is not None else None
        decoder = make_batch_decoder(
            FEED_FORMAT[protocol.venue], for_part, self.rules, check_clock=self.check_clock, state=state,
            keeper_settings=self.keeper_settings,
        )  # fmt: skip
        assert isinstance(decoder, FeedBatchDecoder)
        if resume_state is not None:
            _distrust_books(decoder.keeper)
        offset = max(resume_state[0] if resume_state is not None else 0, time.time_ns() // 1000)
        runner = FeedRunner(for_part, protocol, streams, rest=self.rest, rng=self.rng).start()
        log.info("%s: %d streams of %s from %s", for_part, len(streams), protocol.venue, protocol.url)
        part = self._parts[for_part] = _FeedPartition(runner, decoder, offset, self.batch_size, self.stop)
        return part

    def frames_read(self) -> int:
        """Frames the partitions of this process took from their connections so far."""
        return sum(p.frames for p in list(self._parts.values()))

    def _collect(self) -> Iterable[Metric]:
        labels = ["partition"]
        connected = GaugeMetricFamily(
            "ticktape_feed_connected", "1 while the venue connection is open.", labels=labels
        )
        backlog = GaugeMetricFamily(
            "ticktape_feed_queue_frames", "Frames received, not yet read by the job.", labels=labels
        )
        age = GaugeMetricFamily(
            "ticktape_feed_last_frame_age_seconds", "Seconds since the last frame.", labels=labels
        )
        counters = {
            name: CounterMetricFamily(f"ticktape_feed_{name}", doc, labels=labels)
            for name, doc in (
                ("sessions", "WebSocket sessions opened."),
                ("reconnects", "Reconnects (sessions after the first)."),
                ("data_frames", "Market-data frames received."),
                ("bytes", "Bytes received."),
                ("heartbeats", "Venue heartbeats received."),
                ("errors", "Venue error messages (logged once, retried with backoff)."),
                ("stalls", "Sessions ended by the idle timeout."),
                ("oversized", "Frames over max_frame_bytes (dead letters)."),
                ("sequence_gaps", "Holes in a connection-wide message sequence."),
                ("snapshots", "Book snapshots asked for (REST or resubscribe)."),
                ("snapshot_failures", "Failed REST snapshot requests (retried)."),
            )
        }
        now = time.time_ns()
        for src, part in list(self._parts.items()):
            st = part.runner.connection.stats
            connected.add_metric([src], 1.0 if st.connected else 0.0)
            backlog.add_metric([src], len(part.runner.queue))
            if st.last_frame_ns:
                age.add_metric([src], max(now - st.last_frame_ns, 0) / 1e9)
            for name, family in counters.items():
                family.add_metric([src], getattr(st, name))
        yield connected
        yield backlog
        yield age
        yield from counters.values()


def _distrust_books(keeper: BookKeeper) -> None:
    """After a restart frames were lost: every resumed book waits for a fresh snapshot."""
    for st in keeper.books.values():
        if st.synced:
            st.synced = False
            st.reason = "restart"
            st.pending = False
