"""Order streams for the orders tests: synthetic messages through the state machine into
an orders event log, and comparisons of projection stores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ticktape.connectors.synthetic.orders import synthetic_orders
from ticktape.flows.steps.orders import OrderOut, OrderProcessor
from ticktape.schemas.orders.decoding import OrderBatchDecoder
from ticktape.schemas.records import Event
from ticktape.sinks.eventlog.log import EventLogPartition, partition_of, partition_path


def order_messages(n: int, *, seed: int = 3, faults: float = 0.1) -> list[bytes]:
    return [raw for _, raw in synthetic_orders(n, seed=seed, faults=faults)]


def process(
    raws: list[bytes], *, batch: int = 50, src: str = "file:orders.jsonl"
) -> tuple[list[Event], list[OrderOut], int]:
    """Decode and step ``raws`` in batches; (all events in log order, outputs, messages read)."""
    decoder = OrderBatchDecoder(src)
    proc = OrderProcessor()
    events: list[Event] = []
    outs: list[OrderOut] = []
    for start in range(0, len(raws), batch):
        b = decoder.decode((start + i, raw, 0, 0) for i, raw in enumerate(raws[start : start + batch]))
        events.extend(b.events)
        out = proc.process(b.inputs)
        outs.append(out)
        events.extend(out.events)
    return events, outs, len(raws)


def write_log(
    directory: Path, events: list[Event], *, parts: int = 2, batch: int = 40
) -> list[list[tuple[int, list[Event]]]]:
    """Append ``events`` in order, ``batch`` at a time, each to its aggregate's partition;
    returns the writes as ``[(partition, events), ...]`` per batch."""
    writers = [EventLogPartition(partition_path(directory, i)) for i in range(parts)]
    writes = []
    try:
        for start in range(0, len(events), batch):
            by_part: dict[int, list[Event]] = {}
            for e in events[start : start + batch]:
                by_part.setdefault(partition_of(e.aggregate, parts), []).append(e)
            for i, chunk in by_part.items():
                writers[i].append(chunk)
            writes.append(list(by_part.items()))
    finally:
        for w in writers:
            w.close()
    return writes


def projections(dump: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    """A store dump without the checkpoints (they name partition files, not data)."""
    return {k: v for k, v in dump.items() if k != "proj_checkpoints"}


def order_outputs(data_dir: Path, projections_target: str = "sqlite") -> dict[str, Any]:
    """Every output of the orders flow under ``data_dir`` in canonical form: the orders
    event log, dead letters and projections (without checkpoints)."""
    from tests.support import outputs
    from ticktape.sinks.projections.open import open_store

    root = data_dir / "orders"
    with open_store(projections_target, root) as store:
        dump = projections(store.dump())
    return {"events": outputs.events(root), "dead_letters": outputs.dead_letters(root), "projections": dump}


def write_messages(path: Path, raws: list[bytes]) -> Path:
    path.write_bytes(b"".join(r + b"\n" for r in raws))
    return path
