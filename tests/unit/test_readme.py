"""The README stays true: its example configuration loads, its commands exist."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from click.testing import CliRunner

from ticktape.flows.cli.main import cli
from ticktape.flows.config import from_dict

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_every_toml_example_is_a_valid_config():
    blocks = re.findall(r"```toml\n(.*?)```", README, flags=re.DOTALL)
    assert blocks
    for block in blocks:
        from_dict(tomllib.loads(block))


def test_every_cli_command_in_the_reference_exists():
    commands = set(re.findall(r"`ticktape ([a-z][a-z-]*)", README))
    assert {"demo", "run", "events", "cache", "candles", "bench", "config"} <= commands
    runner = CliRunner()
    for command in sorted(commands):
        result = runner.invoke(cli, [command, "--help"])
        assert result.exit_code == 0, (command, result.output)
