"""``ticktape bench``: the JSON result file, the goals table and ``--profile``
(pyinstrument, cProfile)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support.bench import check_result_file
from ticktape.infra.bench.cli import bench

pytestmark = [pytest.mark.bench, pytest.mark.timeout(300)]


def test_json_has_every_repetition_the_machine_and_the_ratio(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    args = ["-s", "candles", "-s", "flow", "--ticks", "3000", "--symbols", "20", "--repeat", "2"]
    res = CliRunner().invoke(bench, [*args, "--json", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    check_result_file(doc, ["candles", "flow"], repeats=2)
    assert (doc["options"]["ticks"], doc["options"]["symbols"]) == (3000, 20)
    for r in doc["results"]:
        assert (r["extra"]["ticks"], r["extra"]["symbols"]) == (3000, 20)
    assert doc["profile"] is None
    assert doc["goals"] == []  # 20 symbols: no row of the goals table
    assert "goals of the live path" not in res.output


def test_the_goals_table_has_the_rows_whose_scenarios_ran(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    args = ["-s", "flow", "-s", "flow-10k", "--ticks", "20000", "--repeat", "1", "--json", str(out)]
    res = CliRunner().invoke(bench, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    check_result_file(doc, ["flow", "flow-10k"], repeats=1)
    assert [(r["scenario"], r["extra"]["symbols"]) for r in doc["results"]] == [
        ("flow", 500),
        ("flow-10k", 10_000),
    ]
    flow, wide = doc["results"]
    assert [(g["row"], g["scenario"], g["target"]) for g in doc["goals"]] == [
        (
            "flow, 500 symbols, all embedded outputs, 1 process",
            "flow",
            ">= 150,000 ticks/s and >= 0.8x the plain loop",
        ),
        ("10,000 symbols, 1 process", "flow-10k", ">= 100,000 ticks/s"),
    ]
    first, second = doc["goals"]
    assert first["met"] == (flow["value"] >= 150_000 and flow["ratio"] >= 0.8)
    assert first["values"]["ticks_per_s"] == flow["value"]
    assert second["met"] == (wide["value"] >= 100_000)
    assert "goals of the live path" in res.output
    assert "10,000 symbols, 1 process" in res.output


@pytest.mark.parametrize("tool", ["pyinstrument", "cProfile"])
def test_profile_writes_a_report(tool: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if tool == "cProfile":
        monkeypatch.setitem(sys.modules, "pyinstrument", None)  # as if not installed
    else:
        pytest.importorskip("pyinstrument")
    out = tmp_path / "profile.html"
    args = ["-s", "candles", "--ticks", "3000", "--symbols", "20", "--repeat", "1", "--profile", str(out)]
    res = CliRunner().invoke(bench, args)
    assert res.exit_code == 0, res.output
    assert f"profile ({tool}" in res.output
    assert "functions by own time" in res.output
    text = out.read_text()
    assert ("<html" in text.lower()) if tool == "pyinstrument" else ("tottime" in text)
    if tool == "cProfile":
        assert "run_engine" in text
        assert (tmp_path / "profile.html.prof").stat().st_size > 0
