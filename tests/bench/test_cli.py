"""``ticktape bench``: the JSON result file and ``--profile`` (pyinstrument, cProfile)."""

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
