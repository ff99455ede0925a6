"""Options shared by the commands: config file, data dir, overrides, logging."""

from __future__ import annotations

import os
import sys
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
    """The terminal's width on a terminal; piped or redirected (no ``COLUMNS``), lines
    and tables are not cut or wrapped at 80 columns."""
    global _console  # noqa: PLW0603 - one console per process
    if _console is None:
        piped = not sys.stdout.isatty() and not os.environ.get("COLUMNS")
        _console = Console(highlight=False, width=PIPED_WIDTH if piped else None)
    return _console


#: Width of the output when it is piped (wide enough for any table ticktape prints).
PIPED_WIDTH = 1000


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
    flags: dict[str, tuple[str, Any]] | None = None,
) -> tuple[Config, str]:
    """Load the config (file, env, ``extra``, ``--set``, then the command's flags) and set
    up logs. ``flags``: ``{"run.workers": ("-w/--workers", value)}``, command-line values
    of config keys (``None``: not given); the config validates them like any value and an
    invalid one is reported under the flag's name."""
    given = {
        "run.data_dir": ("--data-dir", None if data_dir is None else str(data_dir)),
        "log.level": ("--log-level", log_level),
        "log.format": ("--log-format", log_format),
        **(flags or {}),
    }
    overrides = merge(extra or {}, parse_sets(sets))
    named: dict[str, str] = {}
    for key, (flag, value) in given.items():
        if value is None:
            continue
        named[key] = flag
        section, _, name = key.rpartition(".")
        node = overrides
        for part in section.split("."):
            node = node.setdefault(part, {})
        node[name] = value
    try:
        cfg = load_config(config_path, overrides=overrides)
    except ConfigError as exc:
        if exc.key not in named:
            raise
        message = str(exc).removeprefix("invalid configuration: ")
        raise ConfigError(f"{named[exc.key]}: {message}", key=exc.key) from None
    check_data_dir(cfg.data_path, named.get("run.data_dir"))
    run_id = setup_logging(cfg.log.level, cfg.log.format, cfg.log.levels)
    return cfg, run_id


def check_data_dir(path: Path, flag: str | None = None) -> None:
    """The data directory must be a directory when it exists (it is created on first use)."""
    if path.exists() and not path.is_dir():
        raise ConfigError(
            f"{flag or 'run.data_dir'}: {path} exists and is not a directory", key="run.data_dir"
        )


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


def cluster_addresses(process_id: int | None, addresses: str | None) -> list[str] | None:
    """``-a host:port,...`` checked against ``-i``: both or neither, one well-formed
    ``host:port`` per process, distinct, and the process id one of them."""
    if (process_id is None) != (addresses is None):
        raise click.UsageError("--process-id and --addresses go together")
    if addresses is None or process_id is None:
        return None
    addr = [a.strip() for a in addresses.split(",")]
    for a in addr:
        host, sep, port = a.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65_535:
            raise click.BadParameter(
                f"expected host:port for every process, got {a!r}", param_hint="-a/--addresses"
            )
    if len(set(addr)) != len(addr):
        raise click.BadParameter("every process needs its own host:port", param_hint="-a/--addresses")
    if not 0 <= process_id < len(addr):
        raise click.BadParameter(
            f"process id {process_id} is not one of the {len(addr)} processes of -a (0..{len(addr) - 1})",
            param_hint="-i/--process-id",
        )
    return addr


def kafka_bootstrap(cfg: Config, given: str | None) -> str:
    """Bootstrap servers: the flag, else env ``TICKTAPE_KAFKA_BOOTSTRAP``, else ``[source.kafka]``."""
    return given or os.environ.get("TICKTAPE_KAFKA_BOOTSTRAP") or cfg.source.kafka.bootstrap_servers
