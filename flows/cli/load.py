"""``ticktape load``: batch-load vendor quote/run files into the analytics store.

Prints the data-quality report as tables (and writes it as JSON with ``--json``). Exit
status 0 even when rows were rejected (they are data, and reported); 2 for user mistakes
(a missing file, an unknown column: the message names it and lists the file's columns).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import click

from ticktape.flows.cli.common import common_options, console
from ticktape.flows.cli.common import load as load_config
from ticktape.flows.config import Config
from ticktape.flows.loader.config import IdType, LoaderConfig, TimeUnit
from ticktape.flows.terminal import markup_safe

MAP_KEYS = ("instrument", "dealer", "time", "time_unit", "id_type")


def parse_mapping(items: tuple[str, ...]) -> dict[str, str]:
    """``("instrument=CUSIP,dealer=DEALER", "time=TS")`` -> ``{"instrument": "CUSIP", ...}``."""
    out: dict[str, str] = {}
    for item in items:
        for part in filter(None, (p.strip() for p in item.split(","))):
            key, eq, value = part.partition("=")
            key = key.strip().lower()
            if not eq or not value.strip():
                raise click.BadParameter(f"expected KEY=COLUMN, got {part!r}", param_hint="--map")
            if key not in MAP_KEYS:
                raise click.BadParameter(
                    f"unknown key {key!r}; known: {', '.join(MAP_KEYS)}", param_hint="--map"
                )
            out[key] = value.strip()
    return out


def _output(cfg: Config, loader: LoaderConfig, output: Path | None) -> Path:
    """``--output``, else ``[loader] output`` if set, else ``<data dir>/analytics``."""
    if output is not None:
        return output
    return Path(loader.output) if loader.output else cfg.data_path / "analytics"


@click.command("load")
@common_options
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--reference",
    type=click.Path(path_type=Path),
    help="Known instrument ids (text: one per line; or CSV/Parquet).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="The analytics store (default: <data dir>/analytics).",
)
@click.option(
    "--map",
    "mapping",
    multiple=True,
    metavar="KEY=COLUMN,...",
    help="Column mapping, e.g. instrument=CUSIP,dealer=DEALER,time=TS (also time_unit=ms, id_type=cusip).",
)
@click.option("--values", help="Comma-separated value columns to keep (default: every other column).")
@click.option(
    "--time-unit", type=click.Choice(get_args(TimeUnit)), help="rfc3339 (default), date, or epoch s/ms/us/ns."
)
@click.option(
    "--id-type",
    type=click.Choice([t for t in get_args(IdType) if t]),
    help="Accept only CUSIPs or only ISINs.",
)
@click.option(
    "--json", "json_path", type=click.Path(path_type=Path), help="Also write the report as JSON here."
)
@click.option("--no-views", is_flag=True, help="Do not refresh the DuckDB views.")
def load_command(
    files: tuple[Path, ...],
    reference: Path | None,
    output: Path | None,
    mapping: tuple[str, ...],
    values: str | None,
    time_unit: str | None,
    id_type: str | None,
    json_path: Path | None,
    no_views: bool,
    **common: Any,
) -> None:
    """Load vendor quote/run FILES (CSV, Parquet, JSON lines) keyed by instrument id
    (CUSIP/ISIN), dealer and time: standardize ids, reject bad rows with a reason, keep
    the most recent record per (date, instrument, dealer), write Parquet, report."""
    from ticktape.flows.loader.load import load_files

    cfg, _ = load_config(**common)
    loader = cfg.loader
    changes: dict[str, object] = dict(parse_mapping(mapping))
    if values is not None:
        changes["values"] = [v.strip() for v in values.split(",") if v.strip()]
    for key, value in (("time_unit", time_unit), ("id_type", id_type)):
        if value is not None:
            changes[key] = value
    if reference is not None:
        changes["reference"] = str(reference)
    if no_views:
        changes["views"] = False
    try:
        loader = loader.replace(**changes)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--map/--values") from None
    report = load_files(files, loader, output=_output(cfg, loader, output))
    report.render(console())
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(report.to_json())
        console().print(f"report written to {markup_safe(json_path)}")
