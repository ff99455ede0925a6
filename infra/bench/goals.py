"""The goals table of the live path (issue 14): each row, what the run measured, its target
and whether it was met.

A row appears when the scenario that measures it ran (``ticktape bench`` prints the table
after the scenario table and writes it to ``--json`` as ``"goals"``):

====================================================  ===============  ===========================================
row                                                   scenario         target
====================================================  ===============  ===========================================
flow, 500 symbols, all embedded outputs, 1 process    ``flow``         >= 150,000 ticks/s and >= 0.8x the plain loop
10,000 symbols, 1 process                             ``flow-10k``     >= 100,000 ticks/s
recv->sink p99 at 10,000 ticks/s offered              ``latency``      p99 <= 1 ms, p99.9 <= 3 ms
recv->sink p99 at 50,000 ticks/s offered              ``latency``      p99 <= 5 ms, all of it achieved
2 processes vs 1                                      ``cluster``      >= 1.7x
Kafka source -> whole job                             ``kafka``        >= 0.5x of the Kafka source alone
ticktape vs Bytewax stock operators                   ``bytewax-stock``  ahead (> 1x), candles agree
ticktape vs Quix Streams                              ``quix``         ahead (> 1x), candles agree
====================================================  ===============  ===========================================

The ``flow`` rows go by the symbols the scenario ran with (``flow --symbols 10000`` feeds
the 10,000-symbol row); a latency row needs that offered rate in the run (``--rate``).
"All of it achieved" is :data:`~ticktape.infra.bench.paced.SUSTAINED` of the offered rate
read in the measured interval. A peer row is met only if ticktape is ahead **and** the
peer's candles agreed with ticktape's (otherwise the comparison would not be of the same job).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from ticktape.infra.bench.common import Measurement


class Goal(msgspec.Struct):
    """One row: ``met`` is None when the run cannot judge it (``note`` says why)."""

    row: str
    scenario: str
    measured: str
    target: str
    met: bool | None
    values: dict[str, float]
    note: str = ""


def _flow(m: Measurement, symbols: int, floor: float, loop_ratio: float | None) -> Goal:
    row = (
        "flow, 500 symbols, all embedded outputs, 1 process"
        if symbols == 500
        else "10,000 symbols, 1 process"
    )
    target = f">= {floor:,.0f} ticks/s" + (f" and >= {loop_ratio:g}x the plain loop" if loop_ratio else "")
    met = m.value >= floor and (loop_ratio is None or m.ratio >= loop_ratio)
    return Goal(
        row, m.scenario, f"{m.value:,.0f} ticks/s, {m.ratio:.2f}x the plain loop", target, met,
        {"ticks_per_s": m.value, "vs_plain_loop": m.ratio},
    )  # fmt: skip


def flow_goals(m: Measurement) -> list[Goal]:
    symbols = m.extra.get("symbols")
    if symbols == 500:
        return [_flow(m, 500, 150_000.0, 0.8)]
    if symbols == 10_000:
        return [_flow(m, 10_000, 100_000.0, None)]
    return []


def latency_goals(m: Measurement) -> list[Goal]:
    out = []
    for row in m.extra.get("rates", []):
        rate = row["offered_per_s"]
        if row.get("target_p99_ms") is None:
            continue
        rs = row["latency_ms"]["recv_to_sink"]
        durable = row["latency_ms"].get("recv_to_durable", {})
        target = f"p99 <= {row['target_p99_ms']:g} ms"
        if row.get("target_p999_ms") is not None:
            target += f", p99.9 <= {row['target_p999_ms']:g} ms"
        if row.get("target_sustained"):
            target += ", all of it achieved"
        measured = (
            f"p99 {rs['p99_ms']:.2f} ms, p99.9 {rs['p999_ms']:.2f} ms, {row['achieved_per_s']:,.0f}/s achieved"
            f" (durable p99 {durable.get('p99_ms', 0.0):.2f} ms)"
        )
        out.append(
            Goal(
                f"recv->sink p99 at {rate:,.0f} ticks/s offered",
                m.scenario,
                measured,
                target,
                bool(row["meets_target"]),
                {
                    "p99_ms": rs["p99_ms"],
                    "p999_ms": rs["p999_ms"],
                    "achieved_per_s": row["achieved_per_s"],
                    "offered_per_s": rate,
                    "durable_p99_ms": durable.get("p99_ms", 0.0),
                },
            )
        )
    return out


def cluster_goals(m: Measurement) -> list[Goal]:
    return [
        Goal(
            "2 processes vs 1",
            m.scenario,
            f"{m.ratio:.2f}x ({m.value:,.0f} vs {m.baseline:,.0f} ticks/s)",
            ">= 1.7x",
            m.ratio >= 1.7,
            {"ratio": m.ratio},
        )
    ]


def kafka_goals(m: Measurement) -> list[Goal]:
    source = float(m.extra.get("source_only_per_s", 0.0))
    ratio = m.value / source if source else 0.0
    return [
        Goal(
            "Kafka source -> whole job",
            m.scenario,
            f"{ratio:.2f}x: {m.value:,.0f} ticks/s, source alone {source:,.0f}/s ({m.extra.get('broker', '')})",
            ">= 0.5x of the Kafka source alone",
            ratio >= 0.5,
            {"job_vs_source_only": ratio, "job_per_s": m.value, "source_only_per_s": source},
        )
    ]


def peer_goals(m: Measurement) -> list[Goal]:
    agreement: dict[str, Any] = m.extra.get("agreement", {})
    ok = bool(agreement.get("ok"))
    peer = "Bytewax stock operators" if m.scenario == "bytewax-stock" else "Quix Streams"
    measured = f"{m.ratio:.2f}x ({m.value:,.0f} vs {m.baseline:,.0f} ticks/s)"
    measured += f", candles {'agree' if ok else 'DISAGREE'} ({agreement.get('equal', 0)} equal)"
    return [
        Goal(
            f"ticktape vs {peer}",
            m.scenario,
            measured,
            "ahead (> 1x), candles agree",
            ok and m.ratio > 1.0,
            {"ratio": m.ratio, "candles_equal": float(agreement.get("equal", 0))},
            "" if ok else "; ".join(agreement.get("examples", [])[:2]),
        )
    ]


#: The row builders by scenario.
BUILDERS: dict[str, Callable[[Measurement], list[Goal]]] = {
    "flow": flow_goals,
    "flow-10k": flow_goals,
    "latency": latency_goals,
    "cluster": cluster_goals,
    "kafka": kafka_goals,
    "bytewax-stock": peer_goals,
    "quix": peer_goals,
}
#: Row order of the table (the issue's order).
ORDER = (
    "flow, 500 symbols", "10,000 symbols", "recv->sink p99 at 10,000", "recv->sink p99 at 50,000",
    "2 processes", "Kafka source", "ticktape vs Bytewax", "ticktape vs Quix",
)  # fmt: skip


def _rank(goal: Goal) -> int:
    return next((i for i, prefix in enumerate(ORDER) if goal.row.startswith(prefix)), len(ORDER))


def _no_goal(_m: Measurement) -> list[Goal]:
    return []


def goals(results: list[Measurement]) -> list[Goal]:
    """The rows the run's scenarios measured, in the issue's order."""
    rows = [g for m in results for g in BUILDERS.get(m.scenario, _no_goal)(m)]
    return sorted(rows, key=_rank)
