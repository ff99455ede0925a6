"""``ticktape load``: in-process (click's runner) and as users run it (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ticktape.flows.cli.load import load_command, parse_mapping
from ticktape.flows.loader.generate import GroundTruth, generate_vendor_file
from ticktape.schemas.errors import InputError


@pytest.fixture(scope="module")
def vendor(tmp_path_factory: pytest.TempPathFactory) -> GroundTruth:
    names = {"instrument": "CUSIP", "dealer": "DEALER", "time": "TS"}
    return generate_vendor_file(
        tmp_path_factory.mktemp("vendor") / "runs.csv", 4_000, seed=2, bad_time_rate=0.01, names=names
    )


def ticktape(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "ticktape.flows.cli.main", *args],
        capture_output=True, text=True, timeout=120, cwd=cwd, check=False, env=env,
    )  # fmt: skip


def check_json(path: Path, truth: GroundTruth) -> None:
    doc = json.loads(path.read_text())
    assert doc["rows_read"] == truth.rows
    assert doc["rows_loaded"] == truth.survivors.num_rows
    assert doc["duplicates_resolved"] == truth.duplicates_resolved
    assert doc["rejected"] == truth.rejected


def test_parse_mapping() -> None:
    assert parse_mapping(("instrument=CUSIP, dealer=DEALER", "time=TS,time_unit=ms")) == {
        "instrument": "CUSIP", "dealer": "DEALER", "time": "TS", "time_unit": "ms",
    }  # fmt: skip


def test_runner_loads_and_writes_json(vendor: GroundTruth, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        load_command,
        [str(vendor.path), "--map", "instrument=CUSIP,dealer=DEALER,time=TS", "-o", str(tmp_path / "s"),
         "--json", str(tmp_path / "r.json"), "--no-views"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "rows read" in result.output
    assert "bad_check_digit" in result.output
    check_json(tmp_path / "r.json", vendor)


def test_runner_user_mistakes(vendor: GroundTruth, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(load_command, [str(vendor.path), "-o", str(tmp_path / "s")])
    assert isinstance(result.exception, InputError)  # `ticktape` prints it and exits 2
    assert "no column 'instrument'" in str(result.exception)
    assert "CUSIP, DEALER, TS" in str(result.exception)
    result = runner.invoke(load_command, [str(vendor.path), "--map", "cusip"])
    assert result.exit_code == 2
    assert "expected KEY=COLUMN" in result.output
    result = runner.invoke(load_command, [str(vendor.path), "--map", "instrument=TS,time=TS"])
    assert result.exit_code == 2
    assert "three different columns" in result.output


def test_subprocess_load(vendor: GroundTruth, tmp_path: Path) -> None:
    result = ticktape(
        "load", str(vendor.path), "--map", "instrument=CUSIP,dealer=DEALER,time=TS",
        "--output", str(tmp_path / "s"), "--json", str(tmp_path / "r.json"), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr  # rejected rows are data, not failures
    assert "balanced: True" in result.stdout
    check_json(tmp_path / "r.json", vendor)
    assert (tmp_path / "s" / "analytics.duckdb").is_file()


def test_subprocess_user_mistakes(vendor: GroundTruth, tmp_path: Path) -> None:
    missing = ticktape("load", str(tmp_path / "nope.csv"), cwd=tmp_path)
    assert missing.returncode == 2
    assert "error: no such file" in missing.stderr
    unknown = ticktape("load", str(vendor.path), "--map", "dealer=Dealer_Name,time=TS", cwd=tmp_path)
    assert unknown.returncode == 2
    assert "no column 'instrument' for instrument, 'Dealer_Name' for dealer" in unknown.stderr
    assert "available: CUSIP, DEALER, TS" in unknown.stderr
    assert "Traceback" not in unknown.stderr
