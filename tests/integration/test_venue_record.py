"""``ticktape record`` into Kafka (Apache Kafka on 127.0.0.1), then the job on that topic, gives
the outputs the direct ``websocket`` source gives for the same venue feed."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from tests.support.flows import config
from tests.support.venues import FeedRun, collect, feed, run_feed_flow, simulator, until_quiet
from ticktape.connectors.kafka.source import KafkaSource
from ticktape.connectors.venues.config import WebSocketSourceConfig
from ticktape.connectors.venues.record import Recorder
from ticktape.flows.config import Config
from ticktape.infra.devstack.kafka import KafkaBroker
from ticktape.schemas.durations import dec_hook
from ticktape.schemas.records import EventType

BOOKS = {"snapshot_levels": 5000, "snapshot_every": "1s"}
#: The clock rules judge receive timing, which differs between two sessions by nature.
NO_CLOCK = {"max_future": "0s", "max_past": "0s"}


def content(run: FeedRun, *, quote_times: bool) -> dict[str, Any]:
    """What must not depend on the path the frames took (no receive times or coordinates)."""
    return {
        "updates": sorted(
            (u.venue, u.symbol, u.price, u.size, u.side, u.trade_id, u.ts_event, u.seq) for u in run.updates
        ),
        "quotes": sorted(
            (
                q.venue,
                q.symbol,
                q.bid,
                q.bid_size,
                q.ask,
                q.ask_size,
                q.update_id,
                q.seq,
                q.ts_event if quote_times else 0,
            )
            for q in run.quotes
        ),
        "books": {s: (b.bids, b.asks, b.last_id) for s, b in run.final_books().items()},
        "facts": sorted(
            (e.type, e.aggregate)
            for e in run.events
            if e.type in (EventType.BOOK_GAP, EventType.SEQUENCE_GAP)
        ),
        "dead": sorted(d.code for d in run.dead),
    }


@pytest.mark.integration
@pytest.mark.parametrize("venue", ["binance", "kraken"])
def test_record_then_replay_gives_the_direct_outputs(
    tmp_path: Path, kafka_broker: KafkaBroker, kafka_topic: Any, venue: str
) -> None:
    start_ms = int(time.time() * 1000)  # both sessions replay the same market
    with simulator(venue, events=1200, start_ms=start_ms) as sim:
        direct_cfg = config(
            tmp_path / "direct",
            source={"kind": "websocket", "websocket": {"feeds": [feed(venue, sim)]}},
            books=BOOKS,
        )
        direct = run_feed_flow(direct_cfg, sim)

    topic = kafka_topic(2)
    with simulator(venue, events=1200, start_ms=start_ms) as sim:
        feeds = msgspec.convert({"feeds": [feed(venue, sim)]}, WebSocketSourceConfig, dec_hook=dec_hook)
        recorder = Recorder(
            feeds, kafka_broker.bootstrap_servers, topic, keeper_settings=direct_cfg.books.keeper()
        )
        stop = threading.Event()
        watcher = threading.Thread(
            target=until_quiet, args=(sim, lambda: sum(recorder.frames.values()), stop), daemon=True
        )
        watcher.start()
        report = recorder.run(stop=stop)
        watcher.join(5)
    assert report.delivered == sum(report.frames.values()) > 1000
    assert report.format == f"{venue}-ws"

    replay_cfg: Config = config(
        tmp_path / "replay",
        source={"kind": "kafka", "kafka": {
            "bootstrap_servers": kafka_broker.bootstrap_servers, "topic": topic, "format": f"{venue}-ws",
            "start": "beginning", "end": "launch",
        }},
        books=BOOKS,
        validation=NO_CLOCK,
    )  # fmt: skip
    source = KafkaSource(
        replay_cfg.source.kafka, rules=replay_cfg.validation, keeper_settings=replay_cfg.books.keeper()
    )
    replayed = collect(replay_cfg, source)

    assert replayed.stats.accounting()["balanced"]
    assert direct.stats.accounting()["balanced"]
    quote_times = venue != "binance"  # Binance bookTicker has no event time: its receive time stands in
    assert content(replayed, quote_times=quote_times) == content(direct, quote_times=quote_times)
    assert len(replayed.updates) > 100
    assert replayed.quotes
    # the recorded receive times (header ts_recv) are the replay's receive times
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_broker.bootstrap_servers,
            "group.id": "t",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(2)])
    msg = None
    deadline = time.monotonic() + 20
    while msg is None and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
    consumer.close()
    assert msg is not None
    headers = dict(msg.headers() or [])
    assert int.from_bytes(headers["ts_recv"], "big") // 1_000_000 == msg.timestamp()[1]
    assert msg.key().startswith(f"ws:{venue}/".encode())


@pytest.mark.integration
def test_record_command_writes_the_frames_and_says_how_to_replay(
    kafka_broker: KafkaBroker, kafka_topic: Any
) -> None:
    from click.testing import CliRunner

    from ticktape.flows.cli.main import cli

    topic = kafka_topic(1)
    with simulator("binance", events=600, rate=500.0) as sim:
        out = CliRunner().invoke(
            cli,
            ["record", "--topic", topic, "--bootstrap", kafka_broker.bootstrap_servers, "--venue", "binance",
             "--symbol", "BTCUSDT", "--symbol", "ETHUSDT", "--url", sim.url, "--rest-url", sim.rest_url,
             "--duration", "3s"],
            catch_exceptions=False,
        )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert 'format = "binance-ws"' in out.output
    consumer = Consumer({"bootstrap.servers": kafka_broker.bootstrap_servers, "group.id": "t2"})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    values: list[bytes] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        batch = consumer.consume(1000, 0.5)
        values += [m.value() or b"" for m in batch if m.error() is None]
        if not batch and values:
            break
    consumer.close()
    assert any(v.startswith(b'{"ticktape":"connected"') for v in values)
    assert any(v.startswith(b'{"ticktape":"snapshot"') for v in values)  # the REST snapshots are in the log
    assert sum(v.startswith(b'{"stream":') for v in values) > 100


def test_record_refuses_two_venues_in_one_topic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ticktape.flows.cli.main import main

    cfg = tmp_path / "feeds.toml"
    cfg.write_text(
        '[[source.websocket.feeds]]\nvenue = "binance"\nsymbols = ["BTCUSDT"]\n'
        '[[source.websocket.feeds]]\nvenue = "kraken"\nsymbols = ["BTC/USD"]\n'
    )
    with pytest.raises(SystemExit) as exit_info:
        main(["record", "--topic", "t", "-c", str(cfg), "--bootstrap", "127.0.0.1:1"])
    assert exit_info.value.code == 2
    assert "one venue per topic" in capsys.readouterr().err
