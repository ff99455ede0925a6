"""The README stays true: its example configuration loads, its commands exist."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from click.testing import CliRunner

from ticktape.flows.cli.main import cli
from ticktape.flows.config import Config, dump_config, from_dict

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


#: Keys of the README's configuration block that show an example, not the default.
EXAMPLES = {
    "source.file.paths",
    "source.kafka.start_offsets",
    "source.kafka.consumer",
    "dedupe.stale_overrides",
    "log.levels",
    "source.websocket.feeds",  # an example feed: there is none by default
}


def test_the_configuration_block_shows_the_defaults():
    """Issue 13 item 14: the README's [loader] columns (CUSIP/DEALER/TS) were not the
    code's defaults. Every key of the reference block is the default, except the
    marked examples."""
    block = next(
        b for b in re.findall(r"```toml\n(.*?)```", README, flags=re.DOTALL) if b.startswith("[run]")
    )
    doc = tomllib.loads(block)
    shown, default = dump_config(from_dict(doc)), dump_config(Config())
    differ: list[str] = []

    def compare(node: dict[str, object], path: str) -> None:
        for key, value in node.items():
            name = f"{path}.{key}".lstrip(".")
            if name in EXAMPLES:
                continue
            if (
                isinstance(value, dict)
                and name.count(".") < 2
                and not name.endswith(("consumer", "producer"))
            ):
                compare(value, name)
            elif _at(shown, name) != _at(default, name):
                differ.append(f"{name}: README {_at(shown, name)!r}, code {_at(default, name)!r}")

    compare(doc, "")
    assert differ == []


def _at(tree: dict[str, object], name: str) -> object:
    node: object = tree
    for part in name.split("."):
        assert isinstance(node, dict)
        node = node.get(part)
    return node
