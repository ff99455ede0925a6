"""Scenario ``soak``, the short version: 30 s (10 s warm-up + 20 s measured).

Asserted: the settings asked for, RSS sampled about once a second, the run's accounting
balanced, the files written and a complete result. Whether RSS stayed within the
tolerance is reported (``within_tolerance``), not asserted (the bench report's job).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.bench import check, record, spy
from ticktape.infra.bench import soak as soak_mod
from ticktape.infra.bench.soak import soak_scenario

pytestmark = [pytest.mark.bench, pytest.mark.timeout(300)]


def test_soak_short(benchmark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = spy(monkeypatch, soak_mod, "paced_run")
    m = benchmark.pedantic(
        soak_scenario,
        kwargs={
            "rate": 5_000.0, "symbols": 1_000, "duration": 20.0, "warmup": 10.0, "every": 1.0,
            "out_prefix": tmp_path / "bench.",
        },
        rounds=1,
        iterations=1,
    )  # fmt: skip
    check(
        m,
        "soak",
        repeats=1,
        offered_per_s=5_000.0,
        symbols=1_000,
        warmup_s=10.0,
        duration_s=20.0,
        every_s=1.0,
    )
    assert m.baseline == 5_000.0  # the offered rate
    (run,) = runs
    assert run.stats is not None
    accounting = run.stats.accounting()
    assert accounting["balanced"], accounting
    assert accounting["total"]["read"] >= run.read > 0
    assert m.extra["achieved_per_s"] == round(run.achieved, 1)
    assert isinstance(m.extra["sustained"], bool)
    summary = m.extra["summary"]
    assert 0 < summary["min_mib"] <= summary["first_mib"] <= summary["max_mib"]
    assert summary["min_mib"] <= summary["last_mib"] <= summary["max_mib"]
    assert isinstance(summary["within_tolerance"], bool)
    assert summary["tolerance"] == 0.10
    doc = json.loads((tmp_path / "bench.soak-rss.json").read_text())
    post = [s for s in doc["samples"] if s["t_s"] >= 10.0]
    assert len(post) >= 15  # one sample a second
    assert all(s["rss_mib"] > 0 for s in doc["samples"])
    png = tmp_path / "bench.soak-rss.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert m.extra["files"] == {"samples": str(tmp_path / "bench.soak-rss.json"), "plot": str(png)}
    record(benchmark, m, rss=summary)
