"""The QuestDB sink over ILP/HTTP against a local fake (tests/support/ilp_wire.py): protocol
negotiation, flushing by rows/time/snapshot, retries, and errors that name the row."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import questdb

from tests.support.clock import FakeClock
from tests.support.ilp_wire import FakeQuestDB, questdb_config, sample_candle, sample_price
from ticktape.infra.observability.metrics import RunStats
from ticktape.schemas.errors import SinkError
from ticktape.sinks.questdb.sink import QuestDBConfig, candles_sink, prices_sink

Factory = Callable[..., FakeQuestDB]


@pytest.fixture(autouse=True)
def _quiet_reconnect_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(questdb, "WARN_HIGH_RECONNECTS", False)


@pytest.fixture
def fake() -> Iterator[Factory]:
    made: list[FakeQuestDB] = []

    def make(**kwargs: Any) -> FakeQuestDB:
        made.append(FakeQuestDB(**kwargs))
        return made[-1]

    yield make
    for server in made:
        server.close()


def config(server: FakeQuestDB, **changes: Any) -> QuestDBConfig:
    return questdb_config(conf=server.conf, **changes)  # type: ignore[no-any-return]


@pytest.mark.parametrize(("versions", "binary"), [([1, 2], True), (None, False)])
def test_http_negotiates_the_protocol_and_writes(fake: Factory, versions: Any, binary: bool) -> None:
    server = fake(versions=versions)
    stats = RunStats()
    sink = prices_sink(config(server), stats=stats)
    assert sink is not None
    part = sink.build_part("q", "0", None)
    part.write_batch([[sample_price(i) for i in range(3)]])
    part.snapshot()
    assert server.posts == ["/write?precision=n"]
    assert (b"price==" in server.bodies[0]) is binary  # v2 sends doubles in binary
    assert [line.fields["seq"] for line in server.lines()] == [("i", 1), ("i", 2), ("i", 3)]
    assert [line.ns("ts_recv") for line in server.lines()] == [sample_price(i).ts_recv // 1000 * 1000 if not binary else sample_price(i).ts_recv for i in range(3)]  # fmt: skip
    part.close()
    assert stats.sink_writes["questdb_prices"] == 3
    assert not stats.sink_errors


def test_poisoned_row_fails_the_flush_naming_the_row(fake: Factory) -> None:
    server = fake()
    stats = RunStats()
    sink = prices_sink(config(server, retry_timeout="200ms"), stats=stats)
    assert sink is not None
    part = sink.build_part("q", "0", None)
    rows = [sample_price(i) for i in range(5)]
    rows[3] = sample_price(3, symbol="POISON", trade_id="T-3")
    part.write_batch([rows])
    with pytest.raises(SinkError) as info:
        part.snapshot()
    message = str(info.value)
    assert "'ticktape_prices'" in message
    assert "flush of 5 rows failed" in message
    assert "line 4 of the request" in message
    assert "symbol='POISON'" in message
    assert "trade_id='T-3'" in message
    assert "cast error from protocol type" in message  # QuestDB's own words
    assert stats.sink_errors["questdb_prices"] == 1
    assert not server.bodies
    part.write_batch([[sample_price(9)]])  # the failed rows are gone; the sender still works
    part.close()
    assert [line.fields["seq"] for line in server.lines()] == [("i", 10)]


def test_transient_failures_are_retried(fake: Factory) -> None:
    server = fake(fail_first=2)
    sink = candles_sink(config(server, retry_timeout="10s"))
    assert sink is not None
    part = sink.build_part("q", "0", None)
    part.write_batch([[sample_candle(0), sample_candle(1)]])
    part.close()
    assert len(server.posts) == 3
    assert len(server.bodies) == 1
    assert [line.fields["revision"] for line in server.lines()] == [("i", 0), ("i", 1)]


def test_final_failure_after_retry_timeout(fake: Factory) -> None:
    server = fake(always_fail=True, fail_status=500)
    stats = RunStats()
    sink = prices_sink(config(server, retry_timeout="300ms"), stats=stats)
    assert sink is not None
    part = sink.build_part("q", "0", None)
    part.write_batch([[sample_price(0)]])
    t0 = time.monotonic()
    with pytest.raises(SinkError, match=r"after retrying for 300ms.*first row of the request: PriceUpdate\("):
        part.close()
    assert 0.2 < time.monotonic() - t0 < 10
    assert len(server.posts) >= 2
    assert stats.sink_errors["questdb_prices"] == 1


def test_flushes_by_rows_then_by_time_then_on_snapshot(fake: Factory) -> None:
    server = fake()
    clock = FakeClock()
    sink = prices_sink(config(server, auto_flush_rows=3, auto_flush_interval="150ms"), clock=clock)
    assert sink is not None
    part = sink.build_part("q", "0", None)
    part.write_batch(
        [[sample_price(i) for i in range(4)], [sample_price(4), sample_price(5), sample_price(6)]]
    )
    assert [len(body.splitlines()) for body in server.bodies] == [3, 3]  # by rows, within a batch
    part.write_batch([[sample_price(7)]])
    assert len(server.bodies) == 2  # 2 rows buffered, interval not reached
    clock.advance(0.2)  # past the interval
    part.write_batch([[sample_price(8)]])
    assert len(server.bodies) == 3  # by time: the 3 buffered rows
    part.write_batch([[sample_price(9)]])
    part.snapshot()
    part.snapshot()  # nothing buffered: no request
    assert len(server.bodies) == 4
    part.close()
    assert [line.fields["seq"][1] for line in server.lines()] == list(range(1, 11))


def test_unreachable_tcp_server_is_a_sink_error() -> None:
    with socket.socket() as probe:  # a free port nobody listens on
        probe.bind(("127.0.0.1", 0))
        conf = f"tcp::addr=127.0.0.1:{probe.getsockname()[1]};"
    sink = prices_sink(questdb_config(conf=conf))
    assert sink is not None
    with pytest.raises(SinkError, match=r"cannot connect to tcp://127\.0\.0\.1:\d+"):
        sink.build_part("q", "0", None)


def test_secret_never_reaches_an_error_or_log(
    fake: Factory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    server = fake(always_fail=True)
    env = {"QDB_CLIENT_CONF": f"{server.conf}username=ingest;password=hunter2-secret;"}
    with caplog.at_level("INFO", logger="ticktape.sinks.questdb"):
        sink = prices_sink(questdb_config(retry_timeout="100ms"), env=env)
        assert sink is not None
        part = sink.build_part("q", "0", None)
        part.write_batch([[sample_price(0)]])
        with pytest.raises(SinkError) as info:
            part.close()
    assert "password=***" in caplog.text
    assert "from QDB_CLIENT_CONF" in caplog.text
    assert "hunter2" not in caplog.text
    assert "hunter2" not in str(info.value)
