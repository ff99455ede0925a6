"""``ticktape config show|check``: the effective configuration, and validating a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ticktape.flows.cli.common import common_options, load
from ticktape.flows.config import dump_config


@click.group()
def config() -> None:
    """Show or check configuration."""


@config.command("show")
@common_options
def config_show(**common: Any) -> None:
    """Print the effective configuration (file + environment + flags) as JSON."""
    cfg, _ = load(**common)
    click.echo(json.dumps(dump_config(cfg), indent=2))


@config.command("check")
@common_options
@click.argument("file", required=False, type=click.Path(path_type=Path))
def config_check(file: Path | None, **common: Any) -> None:
    """Validate a configuration FILE (or -c FILE; neither: the environment and the
    embedded defaults); exits 2 with the offending key if it is invalid."""
    if file is not None:  # FILE wins over -c and TICKTAPE_CONFIG
        common["config_path"] = file
    load(**common)
    click.echo("ok")
