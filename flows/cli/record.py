"""``ticktape record``: venue WebSockets -> raw frames with receive times in a Kafka topic."""

from __future__ import annotations

import signal
import threading
from typing import Any

import click

from ticktape.flows.cli.common import common_options, console, kafka_bootstrap, load
from ticktape.infra.observability.logs import set_process_operation
from ticktape.schemas.durations import Duration


@click.command()
@common_options
@click.option("--topic", required=True, help="Topic to write (created when missing); one venue per topic.")
@click.option(
    "--bootstrap",
    default=None,
    help="Bootstrap servers (default: env TICKTAPE_KAFKA_BOOTSTRAP, else [source.kafka]).",
)
@click.option(
    "--partitions", type=int, default=3, show_default=True, help="Partitions when the topic is created."
)
@click.option(
    "--venue", default=None, help="Record this venue instead of the [source.websocket] feeds of the config."
)
@click.option(
    "--symbol", "symbols", multiple=True, help="With --venue: a symbol in the venue's spelling (repeatable)."
)
@click.option(
    "--channels", default="trades,quotes,book", show_default=True, help="With --venue: channels to record."
)
@click.option(
    "--url", default="", help="With --venue: the WebSocket base URL (default: the venue's public one)."
)
@click.option("--rest-url", default="", help="With --venue: the REST base URL (Binance book snapshots).")
@click.option("--duration", default=None, help="Stop after this long (e.g. 10m); default: until interrupted.")
def record(
    topic: str, bootstrap: str | None, partitions: int, venue: str | None, symbols: tuple[str, ...], channels: str,
    url: str, rest_url: str, duration: str | None, **common: Any,
) -> None:  # fmt: skip
    """Record venue feeds into a Kafka topic: every frame as received, keyed by connection,
    with its receive time (timestamp and `ts_recv` header), REST book snapshots included.
    Then run the job on it: [source] kind = "kafka", [source.kafka] format = "<venue>-ws"."""
    from ticktape.connectors.kafka.produce import ensure_topic
    from ticktape.connectors.venues.record import Recorder, RecordReport

    extra: dict[str, Any] = {}
    if venue is not None:
        if not symbols:
            raise click.UsageError("--venue needs at least one --symbol")
        feed: dict[str, Any] = {"venue": venue, "symbols": list(symbols), "channels": channels.split(",")}
        if url:
            feed["url"] = url
        if rest_url:
            feed["rest_url"] = rest_url
        extra = {"source": {"websocket": {"feeds": [feed]}}}
    elif symbols or url or rest_url:
        raise click.UsageError("--symbol, --url and --rest-url go with --venue")
    cfg, _ = load(extra=extra, **common)
    set_process_operation("record")
    feeds = cfg.source.websocket
    if not feeds.feeds:
        raise click.UsageError(
            "nothing to record: give --venue/--symbol or [[source.websocket.feeds]] in the config"
        )
    servers = kafka_bootstrap(cfg, bootstrap)
    conf = dict(cfg.source.kafka.consumer)
    seconds = Duration.parse(duration).seconds if duration else None
    recorder = Recorder(feeds, servers, topic, conf=conf, keeper_settings=cfg.books.keeper())
    created = ensure_topic(servers, topic, partitions, conf)
    out = console()
    out.print(f"recording {recorder.format} frames of {len(recorder.plan)} connection(s) to "
              f"{'new' if created else 'existing'} topic {topic} on {servers}")  # fmt: skip
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def show(report: RecordReport) -> None:
        out.print(
            f"{report.seconds:6.1f}s  {sum(report.frames.values()):,} frames, {report.delivered:,} delivered"
        )

    try:
        report = recorder.run(stop=stop, duration=seconds, progress=show)
    except KeyboardInterrupt:
        stop.set()
        report = recorder.report(0.0)
    finally:
        signal.signal(signal.SIGTERM, previous)
    out.print(
        f"recorded {sum(report.frames.values()):,} frames ({report.delivered:,} delivered) to {topic} as format "
        f"{report.format}; per connection {report.frames}"
    )
    out.print(
        f'replay: [source] kind = "kafka"; [source.kafka] topic = "{topic}", format = "{report.format}"'
    )
