"""The peers of the live job, small sizes: ``bytewax-stock`` (Bytewax's stock operators)
and ``quix`` (Quix Streams on Apache Kafka, started by the scenario; the peer runs as a
subprocess with the Python of its own virtualenv, made here on first use: see
:mod:`ticktape.infra.bench.peers.quix_venv`).

Asserted: each ran over every message, and its candles agree with ticktape's on the same
trades within the documented differences (:mod:`ticktape.infra.bench.peers.compare`):
OHLC and trade counts equal, float sums within the tolerance, no window missing or extra.
The feed is slow in event time (5 trades/s over 20 symbols), so a run spans many 1m and
5m windows and several close during it. Whether ticktape is ahead is the bench report's
job, not asserted.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.support.bench import pedantic_scenario, spy
from ticktape.infra.bench.common import synthetic_messages
from ticktape.infra.bench.peers import bytewax_stock as bytewax_mod
from ticktape.infra.bench.peers import quix as quix_mod
from ticktape.infra.bench.peers.bytewax_stock import (
    INTERVALS_S,
    bytewax_stock_scenario,
    run_peer,
    run_ticktape,
)
from ticktape.infra.bench.peers.compare import PeerCandle, agree, from_ticktape
from ticktape.infra.bench.peers.quix import QuixRun, quix_scenario
from ticktape.infra.bench.peers.quix_venv import QUIXSTREAMS_VERSION, quix_python
from ticktape.infra.devstack.errors import ServiceError

pytestmark = [pytest.mark.bench, pytest.mark.timeout(600)]
TICKS, SYMBOLS, EVENT_RATE = 6_000, 20, 5.0  # 1,200 s of event time


def trades_per_interval(candles: list[PeerCandle]) -> Counter[int]:
    return Counter({iv: sum(c.trades for c in candles if c.interval == iv) for iv in INTERVALS_S})


def test_bytewax_stock_candles_equal_ticktapes_on_the_same_trades() -> None:
    messages = synthetic_messages(TICKS, SYMBOLS, rate=EVENT_RATE)
    _, ours = run_ticktape(messages)
    rate, theirs, late = run_peer(messages["bench/0"], batch_size=100)
    assert rate > 0
    assert late == 0
    assert trades_per_interval(theirs) == dict.fromkeys(INTERVALS_S, TICKS)  # every trade once per interval
    mine = from_ticktape(ours)
    assert sum(1 for c in mine.values() if c.interval == 60) > 10 * SYMBOLS  # many windows per symbol
    a = agree(mine, theirs)
    assert a.ok, a.examples
    assert a.equal == len(mine) == len(theirs)


def test_bytewax_stock(benchmark: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    peers = spy(monkeypatch, bytewax_mod, "run_peer")
    m = pedantic_scenario(
        benchmark, bytewax_stock_scenario, "bytewax-stock", ticks=TICKS, symbols=SYMBOLS, repeats=1,
        event_rate=EVENT_RATE,
    )  # fmt: skip
    assert (m.extra["ticks"], m.extra["symbols"], m.extra["event_rate"]) == (TICKS, SYMBOLS, EVENT_RATE)
    assert len(peers) == 2  # the warm-up and one repetition
    for _, candles, late in peers:
        assert late == 0
        assert trades_per_interval(candles) == dict.fromkeys(INTERVALS_S, TICKS)
    agreement = m.extra["agreement"]
    assert agreement["ok"], agreement["examples"]
    assert agreement["equal"] == m.extra["candles"]["ticktape"] == m.extra["candles"]["peer"] > 0


@pytest.fixture(scope="module")
def quix_venv_python() -> Path:
    """The Quix peer's virtualenv, made before the test's servers start (a first use
    installs quixstreams from PyPI); one line when it cannot be made."""
    try:
        return quix_python()
    except ServiceError as exc:
        error = str(exc)
    pytest.fail(error, pytrace=False)


def test_quix(benchmark: Any, monkeypatch: pytest.MonkeyPatch, quix_venv_python: Path) -> None:
    peers: list[QuixRun] = spy(monkeypatch, quix_mod, "run_quix")
    ours = spy(monkeypatch, quix_mod, "run_ticktape")
    m = pedantic_scenario(
        benchmark, quix_scenario, "quix", ticks=TICKS, symbols=SYMBOLS, repeats=1, event_rate=EVENT_RATE
    )
    assert (m.extra["ticks"], m.extra["partitions"]) == (TICKS, 2)
    assert m.extra["broker"].startswith("apache-kafka ")
    assert m.extra["peer"] == f"quixstreams {QUIXSTREAMS_VERSION} in {quix_venv_python.parent.parent}"
    assert len(peers) == len(ours) == 2  # the warm-up and one repetition of each
    # Quix closes a window when its partition's time passes the end plus the grace, so
    # the last windows of the run stay open: it emits the required ones, no more.
    agreement = m.extra["agreement"]
    assert agreement["ok"], agreement["examples"]
    assert agreement["equal"] == agreement["required"] == m.extra["candles"]["peer"]
    assert 10 * SYMBOLS < agreement["required"] < m.extra["candles"]["ticktape"]
    for _, candles in ours:  # ticktape, closing everything at the end of its bounded read
        assert Counter({iv: sum(c.trades for c in candles if c.interval == iv) for iv in INTERVALS_S}) == (
            dict.fromkeys(INTERVALS_S, TICKS)
        )  # fmt: skip
    for run in peers:  # each a subprocess of the peer's virtualenv, its candles read back
        assert run.version == QUIXSTREAMS_VERSION
        assert run.process_s > TICKS / run.rate  # its own timing leaves start-up out
        assert {c.key for c in run.candles} == {c.key for c in peers[-1].candles}  # the same windows each run
