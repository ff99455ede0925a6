"""``ticktape run``: the job with the configured source and outputs, alone or as a cluster process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ticktape.flows.cli.common import cluster_addresses, common_options, console, load
from ticktape.infra.observability.logs import set_process_operation


@click.command()
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
    from ticktape.flows import wiring
    from ticktape.flows.reporting import print_report
    from ticktape.flows.runner import run as run_flow
    from ticktape.sinks.cache import embedded as cache_mod

    addr = cluster_addresses(process_id, addresses)
    cfg, run_id = load(flags={"run.workers": ("-w/--workers", workers)}, **common)
    set_process_operation("run")
    try:
        result = run_flow(
            cfg,
            run_id=run_id,
            process_id=process_id,
            addresses=addr,
            recovery_dir=recovery_dir,
        )
    finally:
        cache_mod.release(wiring.cache_path(cfg))
    print_report(result, console())
