"""Read every embedded output of a data directory into comparable, canonical form.

Wall-clock fields (``ts_recv``, ``ts_proc``, ``ts_logged``, ``ts_final``) differ between
runs by nature and are removed; everything else must match exactly between a clean run,
a run killed and resumed, a replay and a cluster run.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import msgspec

from ticktape.sinks.candles.store import CandleStore
from ticktape.sinks.eventlog.store import EventStore

_WALL_CLOCK = ("ts_recv", "ts_proc", "ts_logged", "ts_final")


def canonical_payload(event_type: str, payload: bytes) -> Any:
    doc = msgspec.json.decode(payload)
    if event_type == "PriceUpdated":  # PriceUpdate array: ts_recv, ts_proc at 8, 9
        doc[8] = doc[9] = 0
    elif event_type in ("CandleClosed", "CandleRevised"):
        doc[-1] = 0  # ts_final
    elif isinstance(doc, dict):
        for key in _WALL_CLOCK:
            doc.pop(key, None)
    return doc


def events(data_dir: Path) -> list[tuple[Any, ...]]:
    with EventStore(data_dir / "events") as store:
        return sorted(
            (
                e.event_id,
                e.type,
                e.aggregate,
                e.seq,
                e.ts_event,
                json.dumps(canonical_payload(e.type, e.payload)),
                e.causation,
            )
            for e in store.iter_events()
        )


def dead_letters(data_dir: Path) -> list[str]:
    lines = []
    for path in sorted((data_dir / "deadletters").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            doc = json.loads(line)
            for key in _WALL_CLOCK:
                doc.pop(key, None)
            lines.append(json.dumps(doc, sort_keys=True))
    return sorted(lines)


def cache(data_dir: Path) -> dict[str, tuple[int, int, Any]]:
    path = data_dir / "cache.sqlite"
    if not path.exists():
        return {}
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT key, type, value, v1, v2 FROM cache").fetchall()
    out = {}
    for key, typ, value, v1, v2 in rows:
        doc = msgspec.json.decode(value)
        if typ == "price":
            doc[8] = doc[9] = 0
        elif typ == "history":
            doc[-1] = 0
        out[key] = (v1, v2, doc)
    return out


def candles(data_dir: Path) -> list[tuple[Any, ...]]:
    return [
        msgspec.structs.astuple(msgspec.structs.replace(c, ts_final=0))
        for c in CandleStore(data_dir / "candles").read()
    ]


def all_outputs(data_dir: Path) -> dict[str, Any]:
    return {
        "events": events(data_dir),
        "dead_letters": dead_letters(data_dir),
        "cache": cache(data_dir),
        "candles": candles(data_dir),
    }


def diff_summary(a: dict[str, Any], b: dict[str, Any]) -> str:
    """A short description of where two ``all_outputs`` differ (for assertion messages)."""
    parts = []
    for name, x in a.items():
        y = b[name]
        if x == y:
            continue
        if isinstance(x, dict):
            only_a = set(x) - set(y)
            only_b = set(y) - set(x)
            changed = [k for k in set(x) & set(y) if x[k] != y[k]]
            parts.append(
                f"{name}: only in first {len(only_a)}, only in second {len(only_b)}, changed {len(changed)} e.g. {changed[:2]}"
            )
        else:
            sx, sy = set(map(str, x)), set(map(str, y))
            parts.append(
                f"{name}: {len(x)} vs {len(y)} rows; only in first {list(sx - sy)[:2]}; only in second {list(sy - sx)[:2]}"
            )
    return "; ".join(parts) or "identical"
