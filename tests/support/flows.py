"""Run the live flow on TestingSource/TestingSink and collect every output."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from bytewax.run import cli_main
from bytewax.testing import TestingSink, run_main

from ticktape.flows.config import Config, from_dict
from ticktape.flows.live.dataflow import build_flow
from ticktape.flows.wiring import Outputs
from ticktape.infra.observability.metrics import RunStats
from ticktape.schemas.records import Candle, DeadLetter, Event, PriceUpdate


def config(tmp_path: Path, **sections: dict[str, Any]) -> Config:
    data: dict[str, Any] = {
        "run": {"mode": "replay", "data_dir": str(tmp_path)},
        "metrics": {"enabled": False},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return from_dict(data)


@dataclass
class Collected:
    events: list[Event] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    updates: list[PriceUpdate] = field(default_factory=list)
    candles: list[Candle] = field(default_factory=list)
    stats: RunStats | None = None

    def canonical(self) -> dict[str, list[Any]]:
        """Outputs without wall-clock fields, in a stable order, for comparisons."""

        def strip(obj: msgspec.Struct, *drop: str) -> tuple[Any, ...]:
            d = msgspec.structs.asdict(obj)
            return tuple(v for k, v in d.items() if k not in drop)

        events = []
        for e in self.events:
            payload = e.payload
            if e.type == "PriceUpdated":
                fields = msgspec.json.decode(payload)
                fields[8] = fields[9] = 0  # ts_recv, ts_proc
                payload = msgspec.json.encode(fields)
            elif e.type in ("CandleClosed", "CandleRevised"):
                fields = msgspec.json.decode(payload)
                fields[-1] = 0  # ts_final
                payload = msgspec.json.encode(fields)
            elif e.type in ("DeadLettered", "LateTick"):
                doc = msgspec.json.decode(payload)
                doc.pop("ts_recv", None)
                payload = msgspec.json.encode(doc)
            events.append((e.event_id, e.type, e.aggregate, e.seq, e.ts_event, payload, e.causation))
        return {
            "events": sorted(events),
            "dead": sorted(strip(d, "ts_recv") for d in self.dead),
            "updates": sorted(strip(u, "ts_recv", "ts_proc") for u in self.updates),
            "candles": sorted(strip(c, "ts_final") for c in self.candles),
        }


def run_collect(cfg: Config, source: Any, *, workers: int = 1) -> Collected:
    """Run the live flow with TestingSinks on every output."""
    raw_events: list[tuple[str, list[Event]]] = []
    raw_dead: list[tuple[str, list[DeadLetter]]] = []
    prices: list[tuple[str, list[PriceUpdate]]] = []
    candles: list[tuple[str, list[Candle]]] = []
    outputs = Outputs(
        events=[TestingSink(raw_events)],
        dead_letters=[TestingSink(raw_dead)],
        prices=[TestingSink(prices)],
        candles=[TestingSink(candles)],
    )
    stats = RunStats()
    flow = build_flow(cfg, source=source, outputs=outputs, stats=stats)
    if workers == 1:
        run_main(flow)
    else:
        cli_main(flow, workers_per_process=workers)
    return Collected(
        events=[e for _, batch in raw_events for e in batch],
        dead=[d for _, batch in raw_dead for d in batch],
        updates=[u for _, batch in prices for u in batch],
        candles=[c for _, batch in candles for c in batch],
        stats=stats,
    )
