"""Scenario ``soak``, the short version: 30 s (10 s warm-up + 20 s measured)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.bench import check, record
from ticktape.infra.bench.soak import soak_scenario

pytestmark = [pytest.mark.bench, pytest.mark.timeout(300)]


def test_soak_short(benchmark: Any, tmp_path: Path) -> None:
    m = benchmark.pedantic(
        soak_scenario,
        kwargs={
            "rate": 5_000.0, "symbols": 1_000, "duration": 20.0, "warmup": 10.0, "every": 1.0,
            "out_prefix": tmp_path / "bench.",
        },
        rounds=1,
        iterations=1,
    )  # fmt: skip
    check(m, "soak")
    summary = m.extra["summary"]
    assert 0 < summary["min_mib"] <= summary["first_mib"] <= summary["max_mib"]
    assert isinstance(summary["within_tolerance"], bool)
    doc = json.loads((tmp_path / "bench.soak-rss.json").read_text())
    post = [s for s in doc["samples"] if s["t_s"] >= 10.0]
    assert len(post) >= 15  # one sample a second
    assert all(s["rss_mib"] > 0 for s in doc["samples"])
    png = tmp_path / "bench.soak-rss.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert m.extra["files"] == {"samples": str(tmp_path / "bench.soak-rss.json"), "plot": str(png)}
    record(benchmark, m, rss=summary)
