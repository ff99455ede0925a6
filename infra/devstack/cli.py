"""``ticktape dev up|status|down|fetch``: the local dev stack from the command line.

Attach with ``from ticktape.infra.devstack.cli import dev`` and ``main.add_command(dev)``. ``up`` starts
the services detached (Apache Kafka, QuestDB, moto S3, Redis, Prometheus, PostgreSQL; ``--light``:
Tansu instead of the JVM servers) and prints the environment block that points ticktape
at them (``eval "$(ticktape dev status --env)"`` sets it in a shell); ``down`` stops them;
``fetch`` downloads the JVM servers' jars from Maven Central into the cache (``up`` does it
when needed).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ticktape.infra.devstack.errors import ServiceError, StackError
from ticktape.infra.devstack.jars import SERVERS, server_jars, server_version
from ticktape.infra.devstack.stack import (
    ALL_SERVICES,
    DEFAULT_SERVICES,
    DEFAULT_STATE_DIR,
    LIGHT_SERVICES,
    StackInfo,
    stack_down,
    stack_status,
    stack_up,
)
from ticktape.schemas.errors import TicktapeError

_STATE_DIR_OPTION = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_STATE_DIR,
    show_default=True,
    help="Directory with the stack's state file, logs and data.",
)


def _parse_only(only: tuple[str, ...], default: tuple[str, ...] = DEFAULT_SERVICES) -> tuple[str, ...]:
    """``--only kafka,redis --only s3`` -> ``("kafka", "redis", "s3")`` in stack order;
    nothing chosen -> ``default``."""
    chosen = {part.strip() for item in only for part in item.split(",") if part.strip()}
    unknown = sorted(chosen - set(ALL_SERVICES))
    if unknown:
        raise click.BadParameter(
            f"expected some of {', '.join(ALL_SERVICES)}, got {', '.join(unknown)}",
            param_hint="--only",
        )
    return tuple(kind for kind in ALL_SERVICES if kind in chosen) if chosen else default


def _print(info: StackInfo) -> None:
    if not info.services:
        click.echo(f"dev stack: nothing recorded in {info.state_dir}")
        return
    click.echo(f"dev stack in {info.state_dir}")
    for s in info.services:
        state = "ready" if s.ready else ("alive, not answering" if s.alive else "DEAD")
        click.echo(f"  {s.name:<11} {state:<21} pid {s.pid!s:<8} {s.url:<28} log {s.log}")
    block = info.env_block()
    if block:
        click.echo('\n# environment (eval "$(ticktape dev status --env)"):')
        click.echo(block, nl=False)


@click.group(name="dev")
def dev() -> None:
    """Run the local dev stack (Apache Kafka, QuestDB, moto S3, Redis, Prometheus; or
    Tansu) on 127.0.0.1."""


@dev.command()
@_STATE_DIR_OPTION
@click.option(
    "--only",
    multiple=True,
    metavar="SERVICES",
    help=f"Comma-separated subset of: {', '.join(ALL_SERVICES)} (default: {','.join(DEFAULT_SERVICES)}; "
    "kafka and tansu exclude each other).",
)
@click.option(
    "--light",
    is_flag=True,
    help=f"No JVM: {','.join(LIGHT_SERVICES)} (Tansu as the Kafka API, no QuestDB).",
)
@click.option("--timeout", type=float, default=120.0, show_default=True, help="Readiness timeout.")
def up(state_dir: Path, only: tuple[str, ...], light: bool, timeout: float) -> None:
    """Start the services (detached; ones already running are kept)."""
    if light and only:
        raise click.UsageError("--light and --only exclude each other")
    services = LIGHT_SERVICES if light else _parse_only(only)
    try:
        info = stack_up(state_dir, services, timeout=timeout)
    except TicktapeError as exc:
        raise click.ClickException(str(exc)) from exc
    _print(info)


@dev.command()
@click.argument("servers", nargs=-1, type=click.Choice(sorted(SERVERS)))
def fetch(servers: tuple[str, ...]) -> None:
    """Fetch the JVM servers' jars (QuestDB, Apache Kafka) from Maven Central into the cache."""
    for server in servers or tuple(SERVERS):
        try:
            path = server_jars(server)
        except TicktapeError as exc:
            raise click.ClickException(str(exc)) from exc
        count = len(list(path.glob("*.jar")))
        click.echo(f"{server} {server_version(server)}: {count} jars in {path}")


@dev.command()
@_STATE_DIR_OPTION
@click.option("--env", "env_only", is_flag=True, help="Print only the export lines.")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(state_dir: Path, env_only: bool, as_json: bool) -> None:
    """Show which services are alive, where they listen and the env block."""
    try:
        info = stack_status(state_dir)
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(info.to_dict(), indent=2))
    elif env_only:
        click.echo(info.env_block(), nl=False)
    else:
        _print(info)
    if info.services and not all(s.ready for s in info.services):
        raise SystemExit(1)


@dev.command()
@_STATE_DIR_OPTION
@click.option("--grace", type=float, default=5.0, show_default=True, help="Seconds before SIGKILL.")
def down(state_dir: Path, grace: float) -> None:
    """Stop every service of the stack and remove its state."""
    try:
        stack_down(state_dir, grace=grace)
    except (StackError, ServiceError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"dev stack in {state_dir} stopped")
