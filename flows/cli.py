"""The ``ticktape`` command line.

User mistakes (bad config key, missing file, unknown format) print one line starting
with ``error:`` and exit with status 2, without a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from flows.cli_common import common_options, console, load
from flows.config import dump_config
from flows.logs import get_logger, set_process_operation
from schemas.errors import TicktapeError

log = get_logger("cli")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="ticktape")
def cli() -> None:
    """ticktape: market-data ticks in; validated price updates, cache, event log and
    OHLCV candles out.

    Start with `ticktape demo` (no servers, no config file). Every command has --help.
    """


@cli.command()
@common_options
@click.option(
    "-w",
    "--workers",
    type=int,
    default=None,
    help="Worker threads in this process (default: [run] workers).",
)
@click.option(
    "-i",
    "--process-id",
    type=int,
    default=None,
    help="This process's index in a cluster (with --addresses).",
)
@click.option(
    "-a",
    "--addresses",
    default=None,
    help="Comma-separated host:port of every cluster process, in process-id order.",
)
@click.option(
    "-r",
    "--recovery-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Snapshot state here and resume from it after a crash.",
)
def run(
    workers: int | None,
    process_id: int | None,
    addresses: str | None,
    recovery_dir: Path | None,
    **common: Any,
) -> None:
    """Run the job with the configured source and outputs until the source ends."""
    from flows import wiring
    from flows.reporting import print_report
    from flows.runner import run as run_flow
    from sinks import cache as cache_mod

    cfg, run_id = load(**common)
    set_process_operation("run")
    addr = [a.strip() for a in addresses.split(",")] if addresses else None
    if (process_id is None) != (addr is None):
        raise click.UsageError("--process-id and --addresses go together")
    try:
        result = run_flow(
            cfg,
            run_id=run_id,
            workers=workers,
            process_id=process_id,
            addresses=addr,
            recovery_dir=recovery_dir,
        )
    finally:
        cache_mod.release(wiring.cache_path(cfg))
    print_report(result, console())


@cli.group()
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


def _register() -> None:
    from flows.bench.cli import bench
    from flows.cli_archive import archive
    from flows.cli_backfill import backfill
    from flows.cli_cache import cache
    from flows.cli_chart import chart
    from flows.cli_demo import demo
    from flows.cli_events import events
    from flows.cli_kafka import produce, questdb, replay
    from flows.cli_load import load_command
    from flows.cli_query import candles

    cli.add_command(demo)
    cli.add_command(events)
    cli.add_command(cache)
    cli.add_command(candles)
    cli.add_command(bench)
    cli.add_command(backfill)
    cli.add_command(archive)
    cli.add_command(load_command)
    cli.add_command(chart)
    cli.add_command(produce)
    cli.add_command(replay)
    cli.add_command(questdb)
    try:
        from infra.cli import dev
    except ImportError:  # pragma: no cover - infra ships with the package
        return
    cli.add_command(dev)


_register()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        cli.main(args=argv, prog_name="ticktape", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except TicktapeError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
