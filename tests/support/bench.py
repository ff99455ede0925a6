"""Shared checks for the bench tests (``pytest tests/bench``; not in the default run).

Each test calls its scenario with small sizes, checks the result is sane (positive
rates, a ratio computed from them) and puts the scenario's numbers into
pytest-benchmark's ``extra_info``, so ``--benchmark-json`` keeps baseline and ratio.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from ticktape.infra.bench.common import Measurement


def check(m: Measurement, scenario: str) -> Measurement:
    """Positive rates, one sample per repetition, and ``ratio == value / baseline``."""
    assert m.scenario == scenario
    assert m.value > 0, m
    assert m.baseline > 0, m
    assert m.samples, m
    assert all(s > 0 and math.isfinite(s) for s in m.samples + m.baseline_samples), m
    assert m.ratio == pytest.approx(m.value / m.baseline)
    assert m.ratio > 0
    return m


def record(benchmark: Any, m: Measurement, **extra: Any) -> None:
    """The scenario's medians, baseline and ratio, into the benchmark's ``extra_info``."""
    benchmark.extra_info.update({
        "scenario": m.scenario, "unit": m.unit, "value": m.value, "baseline_name": m.baseline_name,
        "baseline": m.baseline, "ratio": m.ratio, "samples": m.samples,
        "baseline_samples": m.baseline_samples, **extra,
    })  # fmt: skip


def pedantic_scenario(benchmark: Any, fn: Any, scenario: str, **kwargs: Any) -> Measurement:
    """Run a whole scenario once under the benchmark (for scenarios that own a server)."""
    m = check(benchmark.pedantic(fn, kwargs=kwargs, rounds=1, iterations=1), scenario)
    record(benchmark, m)
    return m
