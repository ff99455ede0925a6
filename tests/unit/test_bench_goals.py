"""The peers' candle comparison and the goals table of ``ticktape bench`` (pure functions;
the scenarios that feed them are run in tests/bench)."""

from __future__ import annotations

from typing import Any

import msgspec

from tests.support.records import T0, S, candle
from ticktape.infra.bench.common import Measurement
from ticktape.infra.bench.goals import goals
from ticktape.infra.bench.peers.compare import REL_TOLERANCE, PeerCandle, agree, from_ticktape

MINUTE = 60 * S


def ours() -> dict[tuple[str, int, int], PeerCandle]:
    return from_ticktape([
        candle(symbol="A", start=T0, open=1.0, high=3.0, low=0.5, close=2.0, volume=3.0, vwap=1.5, trades=3),
        candle(symbol="A", start=T0 + MINUTE, close=4.0, trades=1),
        candle(symbol="A", start=T0 + MINUTE, close=5.0, trades=2, revision=1),  # a late trade's revision
        candle(symbol="B", interval=300, start=T0, trades=1),
    ])  # fmt: skip


def test_ticktape_candles_are_compared_at_their_latest_revision() -> None:
    mine = ours()
    assert len(mine) == 3
    assert (mine["A", 60, T0 + MINUTE].close, mine["A", 60, T0 + MINUTE].trades) == (5.0, 2)


def test_equal_candles_agree_and_float_sums_within_the_tolerance() -> None:
    mine = ours()
    theirs = [msgspec.structs.replace(c, volume=c.volume * (1 + REL_TOLERANCE / 10)) for c in mine.values()]
    a = agree(mine, theirs)
    assert a.ok
    assert (a.compared, a.equal, a.required, a.missing, a.extra, a.differing) == (3, 3, 3, 0, 0, 0)


def test_every_kind_of_disagreement_is_found() -> None:
    mine = ours()
    a_first, a_second, b = mine.values()
    theirs = [
        msgspec.structs.replace(a_first, open=1.5),  # another trade taken as the open
        msgspec.structs.replace(a_second, volume=a_second.volume * (1 + 1e-6)),  # beyond the tolerance
        msgspec.structs.replace(b, start=b.start + 300 * S),  # a window ticktape does not have
    ]
    a = agree(mine, theirs)
    assert not a.ok
    assert (a.compared, a.equal, a.missing, a.extra, a.differing) == (3, 0, 1, 1, 2)
    assert any("open 1.0 != 1.5" in e for e in a.examples)
    assert any("not emitted" in e for e in a.examples)
    assert not agree(mine, []).ok  # nothing compared is no agreement


def test_windows_not_required_may_be_left_out() -> None:
    mine = ours()
    a = agree(mine, [mine["A", 60, T0]], required=lambda c: c.start == T0 and c.interval == 60)
    assert a.ok
    assert (a.required, a.missing) == (1, 0)


def measurement(scenario: str, value: float, baseline: float, **extra: Any) -> Measurement:
    return Measurement(scenario, "ticks/s", value, "baseline", baseline, [value], [baseline], extra)


def latency_row(
    rate: float, p99: float, p999: float, achieved: float, meets: bool | None, **target: Any
) -> dict[str, Any]:
    pct = {"p50_ms": p99 / 4, "p95_ms": p99 / 2, "p99_ms": p99, "p999_ms": p999, "max_ms": p999}
    return {
        "offered_per_s": rate, "achieved_per_s": achieved, "meets_target": meets,
        "latency_ms": {"recv_to_sink": pct, "recv_to_durable": pct},
        "target_p99_ms": target.get("target_p99"), "target_p999_ms": target.get("target_p999"),
        "target_sustained": target.get("sustained", False),
    }  # fmt: skip


def test_each_row_with_its_target_and_verdict_in_the_issue_order() -> None:
    agreeing = {"ok": True, "equal": 10, "examples": []}
    results = [
        measurement("quix", 30_000, 10_000, agreement={"ok": False, "equal": 3, "examples": ["x: not emitted"]}),
        measurement("flow", 160_000, 180_000, symbols=500),
        measurement("flow-10k", 90_000, 100_000, symbols=10_000),
        measurement("kafka", 40_000, 1_000_000, source_only_per_s=200_000, broker="apache-kafka 4.4.0"),
        measurement("cluster", 170_000, 100_000),
        measurement("bytewax-stock", 50_000, 20_000, agreement=agreeing),
        measurement("candles", 1, 1),  # no goal
        measurement(
            "latency", 49_000, 100_000,
            rates=[
                latency_row(10_000, 0.9, 2.5, 9_990, True, target_p99=1.0, target_p999=3.0),
                latency_row(50_000, 4.0, 6.0, 40_000, False, target_p99=5.0, sustained=True),
                latency_row(100_000, 9.0, 9.0, 50_000, None),
            ],
        ),
    ]  # fmt: skip
    rows = goals(results)
    assert [(g.row, g.met) for g in rows] == [
        ("flow, 500 symbols, all embedded outputs, 1 process", True),  # 160k >= 150k, 0.89x >= 0.8x
        ("10,000 symbols, 1 process", False),
        ("recv->sink p99 at 10,000 ticks/s offered", True),
        ("recv->sink p99 at 50,000 ticks/s offered", False),  # not all of it achieved
        ("2 processes vs 1", True),
        ("Kafka source -> whole job", False),  # 0.2x of the source alone
        ("ticktape vs Bytewax stock operators", True),
        ("ticktape vs Quix Streams", False),  # ahead, but the candles did not agree
    ]
    by_row = {g.row: g for g in rows}
    assert by_row["flow, 500 symbols, all embedded outputs, 1 process"].target == (
        ">= 150,000 ticks/s and >= 0.8x the plain loop"
    )
    assert by_row["recv->sink p99 at 10,000 ticks/s offered"].target == "p99 <= 1 ms, p99.9 <= 3 ms"
    assert by_row["recv->sink p99 at 50,000 ticks/s offered"].target == "p99 <= 5 ms, all of it achieved"
    assert by_row["Kafka source -> whole job"].values["job_vs_source_only"] == 0.2
    assert "x: not emitted" in by_row["ticktape vs Quix Streams"].note


def test_rows_follow_the_scenarios_that_ran() -> None:
    assert goals([]) == []
    assert goals([measurement("flow", 1, 1, symbols=20)]) == []  # not a size the goals speak of
    assert [g.row for g in goals([measurement("flow", 1, 1, symbols=10_000)])] == [
        "10,000 symbols, 1 process"
    ]
