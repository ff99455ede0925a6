"""``ticktape config show|check``: the effective configuration, and validating a file."""

from __future__ import annotations

import json
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
def config_check(**common: Any) -> None:
    """Validate a configuration file; exits 2 with the offending key if it is invalid."""
    load(**common)
    click.echo("ok")
