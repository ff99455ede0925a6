"""Run the ``ticktape`` command line as a user would (a subprocess) and write its TOML config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def toml_text(doc: Mapping[str, Any]) -> str:
    """``doc`` as TOML: nested mappings are tables, mappings inside a table's values whose
    keys are not identifiers (e.g. ``{"0": 42}``) are inline tables."""
    return _table(doc, "")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return json.dumps(value)


def _table(doc: Mapping[str, Any], prefix: str) -> str:
    lines, tables = [], []
    for key, value in doc.items():
        nested = isinstance(value, Mapping) and all(str(k).isidentifier() for k in value)
        if nested and value:
            tables.append((key, value))
        else:
            lines.append(f"{key} = {_value(value)}")
    out = "".join(line + "\n" for line in lines)
    for key, value in tables:
        name = f"{prefix}.{key}" if prefix else key
        out += f"\n[{name}]\n" + _table(value, name)
    return out


def write_config(path: Path, doc: Mapping[str, Any]) -> Path:
    """Write ``doc`` as TOML to ``path``; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(toml_text(doc))
    return path


def _argv(args: tuple[str, ...]) -> list[str]:
    return [sys.executable, "-m", "ticktape.flows.cli.main", *args]


def ticktape(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 300, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``ticktape ARGS`` to completion (output captured as text; never raises on exit)."""
    return subprocess.run(
        _argv(args), capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def start(*args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``ticktape ARGS`` in its own session (so a test may kill it); output piped."""
    return subprocess.Popen(
        _argv(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, env={**os.environ, **(env or {})},
    )  # fmt: skip


def ok(done: subprocess.CompletedProcess[str]) -> str:
    """The stdout of a command that must have succeeded (its stderr tail on failure)."""
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-3000:]}"
    return done.stdout
