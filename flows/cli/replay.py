"""``ticktape replay``: a range of the Kafka source topic through the job, by offsets or times."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import click
import msgspec

from ticktape.flows.cli.common import common_options, console, load, parse_time
from ticktape.flows.config import Config
from ticktape.flows.terminal import markup_safe
from ticktape.infra.observability.logs import set_process_operation
from ticktape.schemas.errors import InputError


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
    from ticktape.connectors.kafka.source import end_offsets_at
    from ticktape.flows import wiring
    from ticktape.flows.reporting import print_report
    from ticktape.flows.runner import run as run_flow
    from ticktape.sinks.cache import embedded as cache_mod

    if from_offset and from_time:
        raise click.UsageError("--from-offset and --from-time are exclusive")
    if to_offset and to_time:
        raise click.UsageError("--to-offset and --to-time are exclusive")
    cfg, run_id = load(flags={"run.workers": ("-w/--workers", workers)}, **common)
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
    out.print(
        f"[b]replay {markup_safe(rid)}[/b] of {markup_safe(k.topic)}: {markup_safe(bounds)}; "
        f"recovery state in {markup_safe(recovery)}"
    )
    try:
        result = run_flow(cfg, run_id=run_id, recovery_dir=recovery)
    finally:
        cache_mod.release(wiring.cache_path(cfg))
    print_report(result, out)
