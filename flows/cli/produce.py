"""``ticktape produce``: load history, a synthetic feed or venue samples into a Kafka topic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ticktape.flows.cli.common import common_options, console, kafka_bootstrap, load
from ticktape.infra.observability.logs import set_process_operation


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
@click.option(
    "--orders",
    "order_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Order messages (JSON lines, see README 'Orders JSON schema'), keyed by order id.",
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
    order_files: tuple[Path, ...],
    rate: float | None,
    duration: str | None,
    symbols: int | None,
    **common: Any,
) -> None:
    """Load a history file, a synthetic feed or venue samples into a topic, keyed by symbol;
    or order messages (--orders), keyed by order id."""
    from ticktape.connectors.kafka.config import HISTORY_HEADER
    from ticktape.connectors.kafka.produce import (
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
    if sum(map(bool, (history, synthetic, samples, order_files))) != 1:
        raise click.UsageError("give exactly one of --file, --synthetic, --venue-samples, --orders")
    servers = kafka_bootstrap(cfg, bootstrap)
    conf = dict(cfg.source.kafka.consumer)
    created = ensure_topic(servers, topic, partitions, conf)
    headers = None
    if history:
        messages = history_messages(history)
        headers = dict([HISTORY_HEADER])  # the broker time is no receive clock for history
    elif synthetic:
        messages = synthetic_messages(cfg.source.synthetic)
    elif order_files:
        from ticktape.connectors.kafka.produce import order_messages

        messages = order_messages(order_files)
    else:
        messages = venue_sample_messages(samples)
    out = console()
    with out.status(f"producing to {topic}") as status:
        report = produce_messages(
            servers, topic, messages, rate=rate if rate is not None and not synthetic else (cfg.source.synthetic.rate if synthetic else 0.0),
            conf=conf, progress=lambda n: status.update(f"producing to {topic}: {n:,} sent"), headers=headers,
        )  # fmt: skip
    out.print(
        f"{'created' if created else 'existing'} topic {topic}: {report.delivered:,} delivered, {report.failed} failed "
        f"in {report.seconds:.2f}s ({report.rate:,.0f}/s); per partition {dict(sorted(report.partitions.items()))}"
    )
