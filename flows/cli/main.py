"""The ``ticktape`` command group and its entry point.

Commands live one group per module beside this one. Developer commands (``ticktape dev``,
``ticktape bench``) come from the ``ticktape-devtools`` distribution through the
``ticktape.commands`` entry-point group, so the runtime wheel carries none of their code.

User mistakes (bad config key, missing file, unknown format) print one line starting
with ``error:`` and exit with status 2, without a traceback.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import sys
from importlib.metadata import entry_points

import click

from ticktape.flows.terminal import printable
from ticktape.schemas.errors import InputError, TicktapeError

#: Developer commands and where they come from when they are missing.
DEV_COMMANDS = {
    "dev": "the local dev stack",
    "bench": "the benchmarks",
}


class _Cli(click.Group):
    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        cmd = super().get_command(ctx, name)
        if cmd is None and name in DEV_COMMANDS:
            raise InputError(
                f"`ticktape {name}` ({DEV_COMMANDS[name]}) is a developer command: install the dev tools "
                "from a checkout with `make install-dev` (or `pip install -e infra/`)"
            )
        return cmd


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="ticktape")
def cli() -> None:
    """ticktape: market-data ticks in; validated price updates, cache, event log and
    OHLCV candles out.

    Start with `ticktape demo` (no servers, no config file). Every command has --help.
    """


def _register() -> None:
    from ticktape.flows.cli.archive import archive
    from ticktape.flows.cli.backfill import backfill
    from ticktape.flows.cli.backtest import backtest
    from ticktape.flows.cli.cache import cache
    from ticktape.flows.cli.candles import candles
    from ticktape.flows.cli.chart import chart
    from ticktape.flows.cli.config import config
    from ticktape.flows.cli.demo import demo
    from ticktape.flows.cli.events import events
    from ticktape.flows.cli.load import load_command
    from ticktape.flows.cli.orders import orders, pnl, positions
    from ticktape.flows.cli.produce import produce
    from ticktape.flows.cli.questdb import questdb
    from ticktape.flows.cli.record import record
    from ticktape.flows.cli.replay import replay
    from ticktape.flows.cli.run import run
    from ticktape.flows.cli.venuesim import venue_sim

    for command in (
        run, config, demo, events, cache, candles, backfill, archive, load_command, chart, produce, replay, questdb,
        orders, positions, pnl, backtest, record, venue_sim,
    ):  # fmt: skip
        cli.add_command(command)
    for ep in entry_points(group="ticktape.commands"):
        try:
            cli.add_command(ep.load(), ep.name)
        except ImportError as exc:  # a broken dev-tools install must not break the job's CLI
            cli.add_command(_unavailable(ep.name, exc), ep.name)


def _unavailable(name: str, exc: ImportError) -> click.Command:
    def fail() -> None:
        raise InputError(f"`ticktape {name}` is installed but cannot load: {exc}")

    return click.Command(name, callback=fail, help=f"(unavailable: {exc})")


_register()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point. A fatal signal (a crash inside a native library) dumps
    every thread's Python stack to stderr, so even that leaves a trace behind."""
    with contextlib.suppress(ValueError, OSError):  # a stderr without a file descriptor (captured)
        faulthandler.enable()
    # A step that fails inside Bytewax is reported as one `error:` line (the runner finds
    # the ticktape error behind Bytewax's); Rust's own panic note then stays one line too.
    os.environ["RUST_BACKTRACE"] = "0"
    try:
        cli.main(args=argv, prog_name="ticktape", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"error: {_one_line(exc)}", err=True)
        sys.exit(exc.exit_code)
    except TicktapeError as exc:
        click.echo(f"error: {printable(exc)}", err=True)
        sys.exit(getattr(exc, "exit_code", 2))
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


def _one_line(exc: click.ClickException) -> str:
    """A usage mistake as one line, with where to find help."""
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, click.UsageError) and ctx is not None:
        message += f" (see `{ctx.command_path} -h`)"
    return message


if __name__ == "__main__":
    main()
