"""``ticktape orders run|get|list|rebuild|generate``, ``ticktape positions``, ``ticktape pnl``:
the orders flow and its projections (read side of the order event store)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import click
import msgspec
from rich.table import Table

from ticktape.flows.cli.common import common_options, console, load, parse_time
from ticktape.flows.config import Config
from ticktape.schemas.errors import InputError

_TIME_HELP = "ns, YYYY-MM-DD, RFC 3339 or now-5m"


def _store(cfg: Config) -> Any:
    from ticktape.flows.orders.dataflow import open_projections, orders_dir

    if cfg.orders.projections in ("", "sqlite") and not (orders_dir(cfg) / "projections.sqlite").is_file():
        raise InputError(
            f"no order projections at {orders_dir(cfg)} (run `ticktape orders run` or `ticktape backtest` first, or pass --data-dir)"
        )
    return open_projections(cfg)


@click.group()
def orders() -> None:
    """Orders: run the orders flow, read orders from the projections, rebuild them."""


@orders.command("run")
@common_options
@click.option(
    "--file",
    "files",
    multiple=True,
    type=click.Path(path_type=Path),
    help="JSON-lines order files (else [orders] source).",
)
@click.option("-w", "--workers", type=int, default=None, help="Worker threads (default: [run] workers).")
@click.option(
    "-r",
    "--recovery-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Snapshot state here and resume after a crash.",
)
def run_cmd(files: tuple[Path, ...], workers: int | None, recovery_dir: Path | None, **common: Any) -> None:
    """Run the orders flow: order messages -> state machine -> event log -> projections."""
    from ticktape.flows.orders.run import run_orders
    from ticktape.flows.reporting import accounting_table, counts_table
    from ticktape.infra.observability.logs import set_process_operation

    cfg, _ = load(**common)
    set_process_operation("orders")
    result = run_orders(cfg, files=list(files) or None, workers=workers, recovery_dir=recovery_dir)
    out = console()
    out.print(accounting_table(result.stats))
    if result.stats.dead_letters:
        out.print(counts_table("Dead letters by code", dict(result.stats.dead_letters)))
    if result.stats.events:
        out.print(counts_table("Events by type", dict(result.stats.events)))
    for name, where in result.outputs.items():
        out.print(f"{name}: {where}")
    acc = result.stats.accounting()
    out.print(
        f"{acc['total']['read']:,} messages in {result.elapsed:.2f}s; accounting balanced: {acc['balanced']}"
    )


@orders.command("get")
@common_options
@click.argument("order_id")
@click.option(
    "--at", "at", default=None, help=f"The order as it was at this time ({_TIME_HELP}), from the event log."
)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def get_cmd(order_id: str, at: str | None, as_json: bool, **common: Any) -> None:
    """One order: status, filled quantity, average price, fees and fills."""
    cfg, _ = load(**common)
    if at is not None:
        from ticktape.flows.orders.dataflow import events_dir
        from ticktape.schemas.orders.events import order_aggregate
        from ticktape.sinks.eventlog.store import EventStore
        from ticktape.sinks.projections.projector import order_at

        at_ns = parse_time(at)
        assert at_ns is not None
        with EventStore(events_dir(cfg)) as store:
            evs = list(store.replay(order_aggregate(order_id)))
        view = order_at(evs, order_id, at_ns)
        if not view.seq:
            raise InputError(f"no order {order_id!r} at {at} (unknown, or submitted later)")
    else:
        with _store(cfg) as store:
            found = store.get_order(order_id)
        if found is None:
            raise InputError(f"no order {order_id!r} in the projections")
        view = found
    doc = view.as_dict()
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    table = Table(title=f"order {order_id}", title_justify="left")
    table.add_column("field")
    table.add_column("value", overflow="fold")
    for name, value in doc.items():
        if name != "fills":
            table.add_row(name, "-" if value is None else str(value))
    out = console()
    out.print(table)
    if doc["fills"]:
        fills = Table(title="fills", title_justify="left")
        for col in ("trade_id", "ts", "quantity", "price", "fee", "liquidity"):
            fills.add_column(col)
        for f in doc["fills"]:
            fills.add_row(*(str(f[c]) for c in ("trade_id", "ts", "quantity", "price", "fee", "liquidity")))
        out.print(fills)


@orders.command("list")
@common_options
@click.option("--account", default=None)
@click.option("--symbol", default=None)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    help="pending, accepted, partially_filled, filled, cancelled, expired, rejected, or open (= the first three).",
)
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
def list_cmd(
    account: str | None,
    symbol: str | None,
    statuses: tuple[str, ...],
    limit: int,
    as_json: bool,
    **common: Any,
) -> None:
    """Orders from the projections (open orders per symbol: --status open --symbol S)."""
    from ticktape.schemas.orders import machine

    cfg, _ = load(**common)
    wanted: list[str] = []
    for s in statuses:
        if s == "open":
            wanted += sorted(machine.LIVE)
        elif s in machine.LIVE | machine.TERMINAL:
            wanted.append(s)
        else:
            raise InputError(f"--status: expected open or an order status, got {s!r}")
    with _store(cfg) as store:
        views = store.list_orders(account=account, symbol=symbol, status=wanted or None, limit=limit)
    if as_json:
        for v in views:
            click.echo(json.dumps(v.as_dict()))
        return
    table = Table()
    cols = (
        "order_id",
        "account",
        "symbol",
        "side",
        "order_type",
        "status",
        "quantity",
        "filled",
        "avg_price",
        "price",
    )
    for col in cols:
        table.add_column(col)
    for v in views:
        d = v.as_dict()
        table.add_row(*("-" if d[c] is None else str(d[c]) for c in cols))
    console().print(table)
    console().print(f"{len(views)} orders")


@orders.command("rebuild")
@common_options
def rebuild_cmd(**common: Any) -> None:
    """Drop the projections and fold the whole orders event log into them again."""
    from ticktape.flows.orders.dataflow import events_dir, open_projections
    from ticktape.sinks.projections.projector import Projector

    cfg, _ = load(**common)
    if not events_dir(cfg).is_dir():
        raise InputError(f"no orders event log at {events_dir(cfg)}")
    with open_projections(cfg) as store:
        n = Projector(store, snapshot_every=cfg.orders.snapshot_every).rebuild(events_dir(cfg))
    click.echo(f"rebuilt the projections from {n:,} order events")


@orders.command("generate")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("-n", "--orders", "n", type=int, default=1000, show_default=True, help="Orders to generate.")
@click.option(
    "--faults",
    type=float,
    default=0.0,
    show_default=True,
    help="Fraction of orders followed by an injected fault.",
)
@click.option("--seed", type=int, default=1, show_default=True)
def generate_cmd(path: Path, n: int, faults: float, seed: int) -> None:
    """Write synthetic order messages (JSON lines) with realistic lifecycles to PATH."""
    from ticktape.connectors.synthetic.orders import synthetic_orders

    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("wb") as fh:
        for _, raw in synthetic_orders(n, seed=seed, faults=faults):
            fh.write(raw + b"\n")
            count += 1
    click.echo(f"{count:,} order messages of {n:,} orders -> {path}")


def _positions_at(
    cfg: Config, store: Any, at_ns: int | None, account: str | None, symbol: str | None
) -> list[Any]:
    from ticktape.sinks.projections.projector import position_at

    if at_ns is None:
        return list(store.positions(account=account, symbol=symbol))
    keys = [
        k
        for k in store.position_keys()
        if (account is None or k[0] == account) and (symbol is None or k[1] == symbol)
    ]
    return [p for p in (position_at(store, a, s, at_ns) for a, s in keys) if p.fills]


@click.command()
@common_options
@click.option("--account", default=None)
@click.option("--symbol", default=None)
@click.option(
    "--at",
    "at",
    default=None,
    help=f"Positions as they were at this time ({_TIME_HELP}), from position snapshots.",
)
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
def positions(account: str | None, symbol: str | None, at: str | None, as_json: bool, **common: Any) -> None:
    """Positions per account and symbol: quantity, average cost, realized PnL."""
    cfg, _ = load(**common)
    with _store(cfg) as store:
        rows = _positions_at(cfg, store, parse_time(at), account, symbol)
    if as_json:
        for p in rows:
            click.echo(json.dumps(p.as_dict()))
        return
    table = Table()
    cols = ("account", "symbol", "quantity", "avg_cost", "realized_pnl", "fees", "fills")
    for col in cols:
        table.add_column(col, justify="left" if col in ("account", "symbol") else "right")
    for p in rows:
        d = p.as_dict()
        table.add_row(*("-" if d[c] is None else str(d[c]) for c in cols))
    console().print(table)


Mark = Callable[[str, str], float | None]


@contextmanager
def _marks(cfg: Config, at_ns: int | None) -> Iterator[Mark]:
    """A lookup ``(venue, symbol) -> price`` to mark positions at: the latest cached price
    (now), or what the market-data event log knew at ``at_ns`` (point-in-time state from
    its snapshots); ``None`` where nothing is known. The store is opened once."""
    from ticktape.flows import wiring
    from ticktape.schemas.records import PriceUpdate, aggregate_of
    from ticktape.sinks.cache.api import PRICE, cache_key

    if at_ns is not None:
        if not wiring.events_dir(cfg).is_dir():
            yield _no_mark
            return
        with wiring.open_event_store(cfg) as events:
            yield (
                lambda venue, symbol: (
                    events.state_at(aggregate_of(venue, symbol), at_ns).price if venue else None
                )
            )
        return
    if cfg.cache.backend == "embedded" and not wiring.cache_path(cfg).is_file():
        yield _no_mark
        return
    cache = wiring.open_cache(cfg)

    def cached(venue: str, symbol: str) -> float | None:
        entry = cache.peek(cache_key(PRICE, venue, symbol)) if venue else None
        return msgspec.json.decode(entry.value, type=PriceUpdate).price if entry is not None else None

    try:
        yield cached
    finally:
        cache.close()


def _no_mark(venue: str, symbol: str) -> float | None:
    return None


@click.command()
@common_options
@click.option("--account", default=None)
@click.option("--symbol", default=None)
@click.option(
    "--venue", default=None, help="Venue whose prices mark the positions (default: each position's venue)."
)
@click.option(
    "--at",
    "at",
    default=None,
    help=f"PnL at this time ({_TIME_HELP}): positions from snapshots, marks from the event log's state then.",
)
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
def pnl(
    account: str | None, symbol: str | None, venue: str | None, at: str | None, as_json: bool, **common: Any
) -> None:
    """Realized and unrealized PnL per position (unrealized marked to the latest cached price)."""
    from ticktape.schemas.orders.fixed import SCALE2, format_fixed, from_float

    cfg, _ = load(**common)
    at_ns = parse_time(at)
    with _store(cfg) as store:
        rows = _positions_at(cfg, store, at_ns, account, symbol)
    docs = []
    with _marks(cfg, at_ns) if any(p.quantity for p in rows) else nullcontext(_no_mark) as mark_of:
        marks = [mark_of(venue or p.venue, p.symbol) if p.quantity else None for p in rows]
    for p, mark in zip(rows, marks, strict=True):
        unreal = p.unrealized(from_float(mark)) if mark is not None else (0 if not p.quantity else None)
        d = p.as_dict()
        d |= {
            "mark": mark, "unrealized_pnl": format_fixed(unreal, SCALE2) if unreal is not None else None,
            "total_pnl": format_fixed(p.realized + unreal, SCALE2) if unreal is not None else None,
        }  # fmt: skip
        docs.append(d)
    if as_json:
        for d in docs:
            click.echo(json.dumps(d))
        return
    table = Table()
    cols = (
        "account",
        "symbol",
        "quantity",
        "avg_cost",
        "mark",
        "realized_pnl",
        "unrealized_pnl",
        "total_pnl",
    )
    for col in cols:
        table.add_column(col, justify="left" if col in ("account", "symbol") else "right")
    for d in docs:
        table.add_row(*("-" if d[c] is None else str(d[c]) for c in cols))
    console().print(table)
