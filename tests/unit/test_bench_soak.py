"""The soak's verdict (pure; the soak itself runs from ``ticktape bench -s soak``)."""

from __future__ import annotations

from ticktape.infra.bench.paced import PacedResult
from ticktape.infra.bench.soak import MIB, RssSampler, soak_doc


def test_only_the_measured_interval_is_judged() -> None:
    """Start-up growth before the warm-up ends and the drop while the job shuts down
    (its state freed) are on the curve but not in the verdict."""
    run = PacedResult(
        offered=100.0, achieved=100.0, read=6000, seconds=60.0, mean_batch=1.0, latency={}, lost=0
    )
    sampler = RssSampler(every=5.0)  # not started: samples set below
    sampler.samples = [
        (0.0, 100 * MIB),
        (20.0, 500 * MIB),
        (40.0, 520 * MIB),
        (60.0, 540 * MIB),
        (65.0, 200 * MIB),
    ]
    doc = soak_doc(run, sampler, symbols=10, warmup=20.0, duration=40.0, every=5.0, tolerance=0.10)
    summary = doc["summary"]
    assert (summary["first_mib"], summary["last_mib"], summary["min_mib"], summary["max_mib"]) == (
        500,
        540,
        500,
        540,
    )
    assert summary["max_deviation"] == 0.08
    assert summary["within_tolerance"] is True
    assert len(doc["samples"]) == 5  # the plot keeps every sample
