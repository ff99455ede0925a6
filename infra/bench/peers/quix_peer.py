"""The Quix Streams peer of the ``quix`` bench scenario, as a standalone script.

It imports only ``quixstreams`` and the standard library, and runs with the Python of the
peer's own virtualenv (:mod:`ticktape.infra.bench.peers.quix_venv`), never in ticktape's
environment: ``quixstreams`` pins an older ``confluent-kafka`` than ticktape is tested on.
:func:`ticktape.infra.bench.peers.quix.run_quix` starts it as a subprocess
(``<venv>/bin/python -I quix_peer.py ...``) and reads back what it wrote.

The job (one process, one ``Application``, ``quixstreams`` 3.x):

* the topic with Quix's ``json`` value deserializer, the message key (the symbol) as a
  string, and a ``timestamp_extractor`` taking the trade's event time (ms) from the value;
* dedupe: ``sdf.filter(..., stateful=True)`` keeping the symbol's highest trade id in
  Quix's per-key state (RocksDB): a trade id at or below it is dropped, so an
  out-of-order trade is lost;
* ``sdf["notional"] = sdf["price"] * sdf["size"]``, then three branches
  ``sdf.tumbling_window(1m | 5m | 1h, grace_ms=2 s).agg(open=Earliest("price"),
  high=Max, low=Min, close=Latest("price"), volume=Sum("size"), notional=Sum, trades=Count())
  .final(closing_strategy="partition")`` (a window closes when its partition's time passes
  its end plus the grace);
* each branch into a ``BatchingSink`` that keeps the candles in a list (flushed at each
  checkpoint).

Settings beside Quix's defaults: a fresh consumer group reading from the earliest offset,
no changelog topics, state in ``--state-dir``, no logging setup. The run stops
(``app.stop()``) when a counting step at the head of the dataframe has seen ``--total``
messages; the final checkpoint then flushes the sinks. The time is taken from the first
message to the end of ``app.run`` (interpreter start, import, group join and RocksDB
opening excluded).

Output, written after the clock stopped: ``--candles`` gets one JSON object per line with
the fields of :class:`ticktape.infra.bench.peers.compare.PeerCandle` (``interval`` in
seconds, ``start`` in ns); ``--summary`` gets one JSON object ``{"messages", "seconds",
"quixstreams"}``. Exit status 0 only when every message was seen.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

MS = 1_000_000
#: The intervals of the job (s) and the grace (ms), as ticktape's defaults.
INTERVALS_S = (60, 300, 3600)
GRACE_MS = 2_000


def run(servers: str, topic: str, total: int, state_dir: Path) -> tuple[int, float, list[dict[str, Any]]]:
    """Messages seen, seconds from the first to the end of ``app.run``, and the candles."""
    from quixstreams import Application
    from quixstreams.dataframe.windows import Count, Earliest, Latest, Max, Min, Sum
    from quixstreams.sinks import BatchingSink, SinkBatch

    candles: list[dict[str, Any]] = []

    class CandleSink(BatchingSink):  # type: ignore[misc]  # quixstreams is not installed beside ticktape
        """The closed windows of one interval, as candles, into ``candles``."""

        def __init__(self, interval: int) -> None:
            super().__init__()
            self.interval = interval

        def write(self, batch: SinkBatch) -> None:
            for item in batch:
                v = item.value
                vol = v["volume"]
                candles.append(
                    {
                        "symbol": item.key,
                        "interval": self.interval,
                        "start": v["start"] * MS,
                        "open": v["open"],
                        "high": v["high"],
                        "low": v["low"],
                        "close": v["close"],
                        "volume": vol,
                        "vwap": v["notional"] / vol if vol > 0 else v["close"],
                        "trades": v["trades"],
                    }
                )

    app = Application(
        broker_address=servers,
        consumer_group=f"bench-quix-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        state_dir=state_dir,
        use_changelog_topics=False,
        loglevel=None,
    )
    source = app.topic(
        topic,
        key_deserializer="str",
        value_deserializer="json",
        timestamp_extractor=lambda value, _headers, _ts, _type: value["ts_event"] // MS,
    )
    sdf = app.dataframe(source)
    first = 0.0
    seen = 0

    def count(_value: Any) -> None:
        nonlocal seen, first
        seen += 1
        if seen == 1:
            first = time.perf_counter()
        if seen >= total:
            app.stop()

    def fresh(value: dict[str, Any], state: Any) -> bool:
        tid = value["trade_id"]
        if tid <= state.get("last_id", -1):
            return False
        state.set("last_id", tid)
        return True

    sdf = sdf.update(count)
    sdf = sdf.filter(fresh, stateful=True)
    sdf["notional"] = sdf["price"] * sdf["size"]
    for interval in INTERVALS_S:
        window = sdf.tumbling_window(
            timedelta(seconds=interval), grace_ms=GRACE_MS, name=f"ohlcv-{interval}s"
        ).agg(
            open=Earliest("price"), high=Max("price"), low=Min("price"), close=Latest("price"),
            volume=Sum("size"), notional=Sum("notional"), trades=Count(),
        )  # fmt: skip
        window.final(closing_strategy="partition").sink(CandleSink(interval))
    app.run()
    ended = time.perf_counter()
    return seen, (ended - first if seen else 0.0), candles


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--servers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--total", type=int, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--candles", type=Path, required=True)
    parser.add_argument("--summary", type=Path, required=True)
    args = parser.parse_args(argv)
    import quixstreams

    seen, seconds, candles = run(args.servers, args.topic, args.total, args.state_dir)
    with args.candles.open("w", encoding="utf-8") as out:
        for c in candles:
            out.write(json.dumps(c) + "\n")
    summary = {"messages": seen, "seconds": seconds, "quixstreams": quixstreams.__version__}
    args.summary.write_text(json.dumps(summary), encoding="utf-8")
    if seen != args.total:
        print(f"Quix processed {seen} of {args.total} messages", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
