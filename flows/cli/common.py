"""Options shared by the commands: config file, data dir, overrides, logging."""

from __future__ import annotations

import os
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from ticktape.flows.config import Config, load_config, merge
from ticktape.infra.observability.logs import setup_logging
from ticktape.schemas.durations import Duration
from ticktape.schemas.errors import ConfigError, InputError
from ticktape.schemas.timeparse import rfc3339_to_ns

F = TypeVar("F", bound=Callable[..., Any])
_console: Console | None = None


def console() -> Console:
    global _console  # noqa: PLW0603 - one console per process
    if _console is None:
        _console = Console(highlight=False)
    return _console


def common_options(func: F) -> F:
    """``-c/--config``, ``--data-dir``, ``--set``, ``--log-level``, ``--log-format``."""
    options = [
        click.option(
            "-c", "--config", "config_path", type=click.Path(path_type=Path), default=None,
            envvar="TICKTAPE_CONFIG", help="TOML config file (env TICKTAPE_CONFIG). Without it, the embedded defaults.",
        ),
        click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="Where local outputs live (default: ./ticktape-data)."),
        click.option(
            "--set", "sets", multiple=True, metavar="SECTION.KEY=VALUE",
            help="Override one config value (repeatable), e.g. --set run.shards=64.",
        ),
        click.option("--log-level", default=None, help="DEBUG, INFO, WARNING or ERROR."),
        click.option("--log-format", type=click.Choice(["text", "json"]), default=None, help="Log records as text or JSON lines."),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def parse_sets(sets: tuple[str, ...]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for item in sets:
        key, eq, raw = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"--set expects SECTION.KEY=VALUE, got {item!r}")
        try:
            value: Any = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node = tree
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return tree


def load(
    *,
    config_path: Path | None,
    data_dir: Path | None,
    sets: tuple[str, ...],
    log_level: str | None,
    log_format: str | None,
    extra: dict[str, Any] | None = None,
) -> tuple[Config, str]:
    """Load the config (file, env, ``extra``, ``--set``, ``--data-dir``) and set up logs."""
    overrides = merge(extra or {}, parse_sets(sets))
    if data_dir is not None:
        overrides.setdefault("run", {})["data_dir"] = str(data_dir)
    cfg = load_config(config_path, overrides=overrides)
    run_id = setup_logging(log_level or cfg.log.level, log_format or cfg.log.format, cfg.log.levels)
    return cfg, run_id


def parse_time(text: str | None) -> int | None:
    """ns from an int (ns), ``2024-01-01``, an RFC 3339 time, or ``now-5m``-style offsets."""
    if text is None:
        return None
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    if text.startswith("now"):
        rest = text[3:].strip()
        if not rest:
            return time.time_ns()
        sign = -1 if rest[0] == "-" else 1
        return time.time_ns() + sign * int(Duration.parse(rest.lstrip("+-")))
    if len(text) == 10:
        text += "T00:00:00Z"
    elif "Z" not in text and "+" not in text[10:] and text.count("-") <= 2:
        text += "Z"
    try:
        return rfc3339_to_ns(text.replace(" ", "T"))
    except ValueError:
        raise InputError(f"cannot read time {text!r}: use ns, YYYY-MM-DD, RFC 3339 or now-5m") from None


def interval_seconds(text: str) -> int:
    """Whole seconds of an ``--interval`` such as ``1m`` (candles exist from 1s to 1d)."""
    ns = int(Duration.parse(text))
    if ns < 1_000_000_000 or ns % 1_000_000_000:
        raise InputError(f"--interval must be whole seconds from 1s to 1d, got {text!r}")
    return ns // 1_000_000_000


def kafka_bootstrap(cfg: Config, given: str | None) -> str:
    """Bootstrap servers: the flag, else env ``TICKTAPE_KAFKA_BOOTSTRAP``, else ``[source.kafka]``."""
    return given or os.environ.get("TICKTAPE_KAFKA_BOOTSTRAP") or cfg.source.kafka.bootstrap_servers
