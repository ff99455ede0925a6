"""One venue connection against the simulator on 127.0.0.1: the planned reconnect with
overlap (Binance's 24 h limit), venue errors logged once and retried with backoff, REST
snapshot failures retried, application pings."""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any

import msgspec
import pytest

from tests.support.flows import config
from tests.support.venues import SYMBOLS, feed, run_feed_flow, simulator
from ticktape.connectors.venues.config import VenueFeedConfig
from ticktape.connectors.venues.frames import Frame
from ticktape.connectors.venues.protocols import protocol_for
from ticktape.connectors.venues.runner import FeedRunner
from ticktape.schemas.durations import dec_hook
from ticktape.schemas.records import EventType
from ticktape.schemas.venues.feeds.control import Control, is_control

pytestmark = pytest.mark.integration


def runner_for(entry: dict[str, Any]) -> FeedRunner:
    protocol = protocol_for(msgspec.convert(entry, VenueFeedConfig, dec_hook=dec_hook))
    return FeedRunner(f"ws:{entry['venue']}/0", protocol, protocol.connections()[0])


def drain_for(runner: FeedRunner, seconds: float) -> list[Frame]:
    frames: list[Frame] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        frames += runner.drain(1000)
        time.sleep(0.02)
    return frames


def controls(frames: list[Frame]) -> list[Control]:
    return [msgspec.json.decode(f.raw, type=Control) for f in frames if is_control(f.raw)]


def test_a_planned_reconnect_overlaps_and_loses_nothing(tmp_path: Any) -> None:
    with simulator("binance", events=3000, rate=1000.0) as sim:
        entry = feed("binance", sim, lifetime="800ms", overlap="2s")
        cfg = config(tmp_path, source={"kind": "websocket", "websocket": {"feeds": [entry]}})
        run = run_feed_flow(cfg, sim)
    connected = [msgspec.json.decode(e.payload) for e in run.of_type(EventType.FEED_CONNECTED)]
    assert len(connected) >= 3
    assert all(c["session"] > 1 for c in connected[1:])
    reasons = [msgspec.json.decode(e.payload)["reason"] for e in run.of_type(EventType.FEED_DISCONNECTED)]
    assert any(r.startswith("lifetime") for r in reasons), reasons
    assert not run.of_type(EventType.SEQUENCE_GAP)  # trades continuous across the handovers
    assert not list(run.of_type(EventType.BOOK_GAP)), "books never lost sync"
    tape = sim.venue.tape
    assert len(run.updates) == sum(1 for i in tape.items if i.key[0] == "trades")
    assert len(run.quotes) == sum(1 for i in tape.items if i.key[0] == "quotes")  # every one, once
    assert run.stats.accounting()["balanced"]


def test_a_venue_error_is_logged_once_and_retried_with_backoff(caplog: pytest.LogCaptureFixture) -> None:
    with simulator("kraken", events=100) as sim:
        entry = feed("kraken", sim, symbols=["NOPE/USD"], backoff_initial="50ms", backoff_max="300ms")
        runner = runner_for(entry).start()
        with caplog.at_level(logging.WARNING, logger="ticktape"):
            frames = drain_for(runner, 2.5)
        runner.stop()
    errors = [c for c in controls(frames) if c.ticktape == "venue_error"]
    assert len(errors) >= 3  # retried...
    assert runner.connection.stats.sessions <= 60  # ...with backoff, never a tight loop
    assert {c.reason for c in errors} == {"subscribe: Currency pair not supported NOPE/USD"}
    logged = [r for r in caplog.records if "Currency pair not supported" in r.getMessage()]
    assert len(logged) == 1  # logged once with its text


def test_rest_snapshot_failures_are_retried_until_the_book_syncs(tmp_path: Any) -> None:
    with simulator("binance", events=1500, faults=["rest_error:429@1", "rest_error:500@2"]) as sim:
        cfg = config(tmp_path, source={"kind": "websocket", "websocket": {"feeds": [feed("binance", sim)]}})
        run = run_feed_flow(cfg, sim)
        requests = sim.server.stats.rest_requests if sim.server else 0
    resyncs = run.of_type(EventType.BOOK_RESYNC)
    assert {e.aggregate for e in resyncs} == {
        f"book:{s}@binance" for s in ("BTC-USDT", "ETH-USDT", "SOL-USDT")
    }
    assert requests >= 5  # 2 refused, then one per symbol


@pytest.mark.parametrize("venue", ["kraken", "bybit"])
def test_application_pings_are_sent_and_answered(venue: str) -> None:
    with simulator(venue, events=50) as sim:
        runner = runner_for(feed(venue, sim, ping_interval="200ms"))
        runner.start()
        drain_for(runner, 1.5)
        runner.stop()
    subscriptions = {"kraken": 9, "bybit": 1}[venue]  # acks of the subscriptions themselves
    assert runner.connection.stats.acks >= subscriptions + 4


def test_every_frame_is_stamped_at_the_socket() -> None:
    with simulator("bybit", events=300) as sim:
        runner = runner_for(feed("bybit", sim, symbols=list(SYMBOLS["bybit"])))
        runner.start()
        frames = drain_for(runner, 1.5)
        runner.stop()
    data = [f for f in frames if not is_control(f.raw)]
    assert len(data) > 200
    assert [f.seq for f in data] == sorted(f.seq for f in data)
    assert all(f.session == 1 and f.seq > 0 for f in data)
    assert all(a.ts_recv <= b.ts_recv for a, b in itertools.pairwise(data))
