"""``ticktape questdb``: the QuestDB output's tables."""

from __future__ import annotations

from typing import Any

import click

from ticktape.flows.cli.common import common_options, console, load


@click.group()
def questdb() -> None:
    """QuestDB output: create the tables."""


@questdb.command("init")
@common_options
@click.option(
    "--http", "http_addr", default=None, help="QuestDB HTTP address (default: from the conf string)."
)
@click.option("--print", "print_only", is_flag=True, help="Only print the DDL.")
def questdb_init(http_addr: str | None, print_only: bool, **common: Any) -> None:
    """Create the price and candle tables (WAL, PARTITION BY DAY, DEDUP UPSERT KEYS)."""
    from ticktape.sinks.questdb.config import resolve_conf
    from ticktape.sinks.questdb.ddl import ddl, default_http_addr, init_tables

    cfg, _ = load(**common)
    q = cfg.outputs.questdb
    if print_only:
        for statement in ddl(q):
            click.echo(statement + ";")
        return
    addr = http_addr or default_http_addr(resolve_conf(q))
    init_tables(q, addr)
    console().print(f"tables {q.prices_table}, {q.candles_table} and {q.quotes_table} ready at {addr}")
