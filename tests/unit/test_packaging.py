"""The install is the architecture: every folder the layout names installs under the one
``ticktape`` namespace, and the runtime wheel carries nothing else (dev tools are the
``ticktape-devtools`` distribution in infra/)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _declared(pyproject: Path) -> tuple[set[str], dict[str, str]]:
    setup = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]
    return set(setup["packages"]), setup["package-dir"]


def _on_disk(base: Path, package_dir: dict[str, str]) -> set[str]:
    found = set()
    for name, folder in package_dir.items():
        for init in (base / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(base / folder)
            found.add(".".join([name, *rel.parts]))
    return found


@pytest.mark.parametrize("pyproject", ["pyproject.toml", "infra/pyproject.toml"])
def test_every_package_folder_is_declared(pyproject: str) -> None:
    path = ROOT / pyproject
    declared, package_dir = _declared(path)
    assert declared == _on_disk(path.parent, package_dir)
    assert all(name.startswith("ticktape.") for name in declared)


def test_runtime_and_dev_tools_share_the_namespace_without_overlap() -> None:
    runtime, _ = _declared(ROOT / "pyproject.toml")
    dev, _ = _declared(ROOT / "infra" / "pyproject.toml")
    assert not runtime & dev
    assert {p for p in dev if p.count(".") == 2} == {
        "ticktape.infra.devstack", "ticktape.infra.bench", "ticktape.infra.grafana",
    }  # fmt: skip
    assert not any(p.startswith(("ticktape.infra.devstack", "ticktape.infra.bench")) for p in runtime)


@pytest.mark.slow
def test_a_fresh_install_exposes_only_the_ticktape_namespace(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    had_build_dir = (ROOT / "build").exists()
    try:
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
            check=True,
            env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )
    finally:
        if not had_build_dir:  # setuptools builds in the checkout: leave no copy of the tree behind
            shutil.rmtree(ROOT / "build", ignore_errors=True)
    (wheel,) = wheels.glob("ticktape-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", str(wheel)], check=True)
    probe = """
import importlib.util, json
names = ["ticktape.flows.cli.main", "ticktape.flows.live", "ticktape.sinks.cache.api", "ticktape.infra.observability.metrics",
         "schemas", "flows", "sinks", "connectors", "infra", "ticktape.infra.devstack", "ticktape.infra.bench"]
print(json.dumps({n: importlib.util.find_spec(n) is not None for n in names}))
"""
    out = subprocess.run([python, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == (
        '{"ticktape.flows.cli.main": true, "ticktape.flows.live": true, "ticktape.sinks.cache.api": true, '
        '"ticktape.infra.observability.metrics": true, "schemas": false, "flows": false, "sinks": false, '
        '"connectors": false, "infra": false, "ticktape.infra.devstack": false, "ticktape.infra.bench": false}'
    )
    ticktape = env_dir / "bin" / "ticktape"
    assert "demo" in subprocess.run([ticktape, "--help"], capture_output=True, text=True, check=True).stdout
    missing = subprocess.run([ticktape, "bench"], check=False, capture_output=True, text=True, cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: `ticktape bench` (the benchmarks) is a developer command")
    assert missing.stderr.count("\n") == 1
