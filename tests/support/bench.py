"""Shared checks for the bench tests (``pytest tests/bench``; not in the default run).

Each test runs its scenario with small sizes and asserts what a run can honestly show,
never how fast it was (speed and its targets belong to the bench report, ``ticktape
bench``): the scenario ran with the sizes asked for, one sample per repetition, the
reported value and baseline are the medians of those samples and the ratio is theirs,
the counts add up (what went in came out; the accounting balances where the scenario
has one), and the JSON result (``ticktape bench --json``) has every field. The numbers
go into pytest-benchmark's ``extra_info``, so ``--benchmark-json`` keeps baseline and
ratio.

Counts that a scenario does not return are observed on its own calls: :func:`spy`
records what a function of the scenario's module returns while the scenario runs.
"""

from __future__ import annotations

import json
import math
import statistics
from types import ModuleType
from typing import Any

import pytest

from ticktape.infra.bench.cli import result_doc
from ticktape.infra.bench.common import VERSIONED, Measurement

#: Every field of one scenario in the JSON result file (``result_doc``).
RESULT_FIELDS = frozenset(
    ("scenario", "unit", "value", "baseline_name", "baseline", "samples", "baseline_samples", "extra",
     "ratio", "repetitions")
)  # fmt: skip
#: Every field of the JSON result file around the scenarios.
FILE_FIELDS = frozenset(
    (
        "date",
        "command",
        "options",
        "machine",
        "load_average_after",
        "elapsed_s",
        "results",
        "goals",
        "profile",
    )
)
#: Every field of the machine section (where, when, what versions).
MACHINE_FIELDS = frozenset(
    ("cpu_model", "cpu_mhz", "cores", "cores_usable", "memory_total", "load_average", "os", "machine",
     "python", "versions", "date", "when")
)  # fmt: skip


def check(m: Measurement, scenario: str, *, repeats: int, **sizes: Any) -> Measurement:
    """The scenario ran ``repeats`` times with ``sizes`` (each must appear in ``m.extra``
    with that value) and its numbers are consistent; its JSON result has every field."""
    assert m.scenario == scenario
    assert len(m.samples) == len(m.baseline_samples) == repeats, m
    assert all(s > 0 and math.isfinite(s) for s in m.samples + m.baseline_samples), m
    assert m.value == statistics.median(m.samples), "the value is the median of the samples"
    assert m.baseline == statistics.median(m.baseline_samples), "the baseline is the median of its samples"
    assert m.ratio == pytest.approx(m.value / m.baseline)
    for name, value in sizes.items():
        assert m.extra[name] == value, (name, m.extra.get(name), value)
    check_result(json.loads(json.dumps(result_doc(m))), m)
    return m


def check_result(doc: dict[str, Any], m: Measurement | None = None) -> None:
    """One scenario's JSON result: every field, one sample per repetition, the medians
    and the ratio agree (and equal ``m``'s when given)."""
    assert set(doc) == RESULT_FIELDS, set(doc) ^ RESULT_FIELDS
    assert doc["unit"]
    assert doc["baseline_name"]
    assert len(doc["samples"]) == len(doc["baseline_samples"]) == doc["repetitions"] >= 1
    assert doc["value"] == statistics.median(doc["samples"])
    assert doc["baseline"] == statistics.median(doc["baseline_samples"])
    assert doc["ratio"] == round(doc["value"] / doc["baseline"], 4)
    assert isinstance(doc["extra"], dict)
    if m is not None:
        assert (doc["scenario"], doc["value"], doc["baseline"], doc["samples"]) == (
            m.scenario, m.value, m.baseline, m.samples,
        )  # fmt: skip


def check_result_file(doc: dict[str, Any], scenarios: list[str], repeats: int) -> None:
    """The whole ``ticktape bench --json`` file: the machine (with every tracked
    package's version), the options, and every scenario's result."""
    assert set(doc) == FILE_FIELDS, set(doc) ^ FILE_FIELDS
    assert doc["date"] == doc["machine"]["date"]
    assert doc["command"].startswith("ticktape")
    assert doc["elapsed_s"] > 0
    assert len(doc["load_average_after"]) == 3
    machine = doc["machine"]
    assert set(machine) == MACHINE_FIELDS, set(machine) ^ MACHINE_FIELDS
    assert machine["cpu_model"] != "-"
    assert machine["cores"] >= machine["cores_usable"] >= 1
    assert machine["python"].startswith("CPython")
    assert set(machine["versions"]) == set(VERSIONED)
    assert all(v != "-" for v in machine["versions"].values()), machine["versions"]
    assert machine["versions"]["bytewax"] == "0.21.1"
    assert doc["options"]["repeats"] == repeats
    assert [r["scenario"] for r in doc["results"]] == scenarios
    for result in doc["results"]:
        check_result(result)
        assert result["repetitions"] == repeats


def record(benchmark: Any, m: Measurement, **extra: Any) -> None:
    """The scenario's medians, baseline and ratio, into the benchmark's ``extra_info``."""
    benchmark.extra_info.update({
        "scenario": m.scenario, "unit": m.unit, "value": m.value, "baseline_name": m.baseline_name,
        "baseline": m.baseline, "ratio": m.ratio, "samples": m.samples,
        "baseline_samples": m.baseline_samples, **extra,
    })  # fmt: skip


def pedantic_scenario(benchmark: Any, fn: Any, scenario: str, *, repeats: int, **kwargs: Any) -> Measurement:
    """Run a whole scenario once under the benchmark (for scenarios that own a server)."""
    m = benchmark.pedantic(fn, kwargs={**kwargs, "repeats": repeats}, rounds=1, iterations=1)
    record(benchmark, m)
    return check(m, scenario, repeats=repeats)


def spy(monkeypatch: pytest.MonkeyPatch, module: ModuleType, name: str) -> list[Any]:
    """Wrap ``module.name`` for this test: every value it returns (to the scenario that
    calls it) is also appended to the returned list."""
    real = getattr(module, name)
    seen: list[Any] = []

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        out = real(*args, **kwargs)
        seen.append(out)
        return out

    monkeypatch.setattr(module, name, wrapper)
    return seen
