"""``ticktape produce``, ``ticktape replay`` and ``ticktape questdb``."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import click
import msgspec

from flows.cli_common import common_options, console, load, parse_time
from flows.config import Config
from flows.logs import set_process_operation
from schemas.errors import InputError


def _bootstrap(cfg: Config, given: str | None) -> str:
    return given or os.environ.get("TICKTAPE_KAFKA_BOOTSTRAP") or cfg.source.kafka.bootstrap_servers


def parse_offsets(text: str | None) -> dict[int, int]:
    """``"0:100,1:250"`` -> {0: 100, 1: 250}."""
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        p, sep, o = part.strip().partition(":")
        if not sep or not p.isdigit() or not o.lstrip("-").isdigit():
            raise InputError(f"expected PARTITION:OFFSET[,PARTITION:OFFSET...], got {text!r}")
        out[int(p)] = int(o)
    return out


@click.command()
@common_options
@click.option("--topic", required=True, help="Topic to write (created when missing).")
@click.option(
    "--bootstrap",
    default=None,
    help="Bootstrap servers (default: env TICKTAPE_KAFKA_BOOTSTRAP, else [source.kafka]).",
)
@click.option(
    "--partitions", type=int, default=4, show_default=True, help="Partitions when the topic is created."
)
@click.option(
    "--file",
    "history",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A history file (freqtrade JSON, CSV, Kraken REST JSON) -> generic JSON ticks.",
)
@click.option(
    "--synthetic",
    is_flag=True,
    help="A synthetic feed ([source.synthetic]; --rate/--duration/--symbols override).",
)
@click.option(
    "--venue-samples",
    "samples",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Raw venue messages (one JSON file each), sent as they are.",
)
@click.option("--rate", type=float, default=None, help="Messages per second (0 = as fast as possible).")
@click.option("--duration", default=None, help="Synthetic feed length, e.g. 30s.")
@click.option("--symbols", type=int, default=None, help="Synthetic symbols.")
def produce(
    topic: str,
    bootstrap: str | None,
    partitions: int,
    history: Path | None,
    synthetic: bool,
    samples: tuple[Path, ...],
    rate: float | None,
    duration: str | None,
    symbols: int | None,
    **common: Any,
) -> None:
    """Load a history file, a synthetic feed or venue samples into a topic, keyed by symbol."""
    from connectors.produce import (
        ensure_topic,
        history_messages,
        produce_messages,
        synthetic_messages,
        venue_sample_messages,
    )

    extra: dict[str, Any] = {
        "source": {
            "synthetic": {
                k: v
                for k, v in (("rate", rate), ("duration", duration), ("symbols", symbols))
                if v is not None
            }
        }
    }
    cfg, _ = load(extra=extra, **common)
    set_process_operation("produce")
    if sum(map(bool, (history, synthetic, samples))) != 1:
        raise click.UsageError("give exactly one of --file, --synthetic, --venue-samples")
    servers = _bootstrap(cfg, bootstrap)
    conf = dict(cfg.source.kafka.consumer)
    created = ensure_topic(servers, topic, partitions, conf)
    if history:
        messages = history_messages(history)
    elif synthetic:
        messages = synthetic_messages(cfg.source.synthetic)
    else:
        messages = venue_sample_messages(samples)
    out = console()
    with out.status(f"producing to {topic}") as status:
        report = produce_messages(
            servers, topic, messages, rate=rate if rate is not None and not synthetic else (cfg.source.synthetic.rate if synthetic else 0.0),
            conf=conf, progress=lambda n: status.update(f"producing to {topic}: {n:,} sent"),
        )  # fmt: skip
    out.print(
        f"{'created' if created else 'existing'} topic {topic}: {report.delivered:,} delivered, {report.failed} failed "
        f"in {report.seconds:.2f}s ({report.rate:,.0f}/s); per partition {dict(sorted(report.partitions.items()))}"
    )


def replay_id(cfg: Config, bounds: dict[str, Any]) -> str:
    """Stable id of a replay (same topic and bounds -> same id -> same recovery dir)."""
    doc = msgspec.json.encode(
        {"topic": cfg.source.kafka.topic, "bootstrap": cfg.source.kafka.bootstrap_servers, **bounds}
    )
    return hashlib.blake2b(doc, digest_size=6).hexdigest()


@click.command()
@common_options
@click.option(
    "--from-offset",
    "from_offset",
    help="Start per partition: P:O[,P:O...] (other partitions start at the beginning).",
)
@click.option(
    "--from-time",
    "from_time",
    help="Start at this broker time (offsets_for_times): ns, RFC 3339, YYYY-MM-DD, now-1h.",
)
@click.option("--to-offset", "to_offset", help="Stop before these offsets: P:O[,P:O...].")
@click.option("--to-time", "to_time", help="Stop before the first message at or after this broker time.")
@click.option(
    "-r",
    "--recovery-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="This replay's own recovery state (default: <data_dir>/replays/<id>/recovery; rerun the same command to resume it).",
)
@click.option("-w", "--workers", type=int, default=None, help="Worker threads.")
def replay(
    from_offset: str | None,
    from_time: str | None,
    to_offset: str | None,
    to_time: str | None,
    recovery_dir: Path | None,
    workers: int | None,
    **common: Any,
) -> None:
    """Replay a range of the Kafka source topic through the job and its idempotent outputs,
    then stop. Without --to-*, it stops at the end offsets found at launch. Never touches
    the live job's recovery state or consumer group."""
    from connectors.kafka import end_offsets_at
    from flows import wiring
    from flows.reporting import print_report
    from flows.runner import run as run_flow
    from sinks import cache as cache_mod

    if from_offset and from_time:
        raise click.UsageError("--from-offset and --from-time are exclusive")
    if to_offset and to_time:
        raise click.UsageError("--to-offset and --to-time are exclusive")
    cfg, run_id = load(**common)
    set_process_operation("replay")
    k = cfg.source.kafka
    bounds: dict[str, Any] = {"group": ""}
    if from_offset:
        bounds |= {"start": "offsets", "start_offsets": parse_offsets(from_offset)}
    elif from_time:
        bounds |= {"start": "time", "start_time_ns": parse_time(from_time)}
    else:
        bounds |= {"start": "beginning"}
    if to_time:
        bounds |= {"end": "time", "end_time_ns": parse_time(to_time)}
    else:  # resolved ONCE here, so every worker and process stops at the same place
        ends = end_offsets_at(k.bootstrap_servers, k.topic, dict(k.consumer))
        wanted = parse_offsets(to_offset)
        for p, offset in wanted.items():
            if p not in ends:
                raise InputError(
                    f"--to-offset names partition {p}, but {k.topic} has partitions {sorted(ends)}"
                )
            if offset > ends[p]:
                console().print(
                    f"[yellow]partition {p} ends at offset {ends[p]} now: replaying up to there, not {offset}[/yellow]"
                )
        bounds |= {
            "end": "offsets",
            "end_offsets": {p: min(wanted.get(p, end), end) for p, end in ends.items()},
        }
    rid = replay_id(cfg, bounds)
    source_cfg = msgspec.structs.replace(k, **({"start_offsets": {}, "end_offsets": {}} | bounds))
    cfg = msgspec.structs.replace(
        cfg,
        run=msgspec.structs.replace(cfg.run, mode="replay"),
        source=msgspec.structs.replace(cfg.source, kind="kafka", kafka=source_cfg),
    )
    recovery = recovery_dir or cfg.data_path / "replays" / rid / "recovery"
    out = console()
    out.print(f"[b]replay {rid}[/b] of {k.topic}: {bounds}; recovery state in {recovery}")
    try:
        result = run_flow(cfg, run_id=run_id, workers=workers, recovery_dir=recovery)
    finally:
        cache_mod.release(wiring.cache_path(cfg))
    print_report(result, out)


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
    from sinks.questdb_conf import resolve_conf
    from sinks.questdb_ddl import ddl, default_http_addr, init_tables

    cfg, _ = load(**common)
    q = cfg.outputs.questdb
    if print_only:
        for statement in ddl(q):
            click.echo(statement + ";")
        return
    addr = http_addr or default_http_addr(resolve_conf(q))
    init_tables(q, addr)
    console().print(f"tables {q.prices_table} and {q.candles_table} ready at {addr}")
