"""Realistic event-log streams for the event-store tests: every event type the job
writes, with the payloads it writes, event times that are not monotonic within an
aggregate (out-of-order ticks, candles at their window end, revisions and late ticks at
old times), plus unknown types and malformed payloads."""

from __future__ import annotations

import random
from pathlib import Path

import msgspec

from tests.support import records
from ticktape.schemas.decoding import dead_letter_event
from ticktape.schemas.ids import event_id
from ticktape.schemas.records import DLCode, Event, EventType
from ticktape.sinks.eventlog.log import EventLogPartition, partition_of, partition_path

S = 1_000_000_000
T0 = 1_700_000_000 * S


def price(agg: str, seq: int, ts: int, px: float, size: float, n: int) -> Event:
    symbol, venue = agg.split("@")
    u = records.price_update(
        venue=venue, symbol=symbol, price=px, size=size, side="buy" if n % 2 else "sell", trade_id=str(n),
        ts_event=ts, ts_kafka=0, ts_recv=ts, ts_proc=ts, seq=n, src="src/0", offset=n,
    )  # fmt: skip
    return records.event(
        event_id=event_id(ts, "P", agg, n), type=EventType.PRICE_UPDATED, aggregate=agg, seq=seq,
        ts_event=ts, ts_logged=0, payload=records.payload(u), causation=f"src/0@{n}",
    )  # fmt: skip


def candle(agg: str, seq: int, interval: int, start: int, revision: int, close: float) -> Event:
    symbol, venue = agg.split("@")
    end = start + interval * S
    c = records.candle(
        venue=venue, symbol=symbol, interval=interval, start=start, end=end, open=close, high=close + 1,
        low=close - 1, close=close, volume=2.0, notional=2.0 * close, vwap=close, trades=2, buy_volume=1.0,
        sell_volume=1.0, first_trade_id="1", last_trade_id="2", revision=revision, ts_final=end,
    )  # fmt: skip
    typ = EventType.CANDLE_CLOSED if revision == 0 else EventType.CANDLE_REVISED
    ident = event_id(end, "C", agg, interval, start, revision, seq)
    return records.event(
        event_id=ident, type=typ, aggregate=agg, seq=seq, ts_event=end, ts_logged=0,
        payload=records.payload(c), causation="candle",
    )  # fmt: skip


def simple(agg: str, seq: int, ts: int, typ: str, payload: object) -> Event:
    return records.event(
        event_id=event_id(ts, typ, agg, seq), type=typ, aggregate=agg, seq=seq, ts_event=ts, ts_logged=0,
        payload=records.payload(payload), causation=f"src/0@{seq}",
    )  # fmt: skip


def dead(agg: str, seq: int, ts: int, code: str) -> Event:
    dl = records.dead_letter(
        dl_id=event_id(ts, "DL", agg, seq), code=code, message="field `x`: bad", raw=b"\xff raw",
        src="src/0", offset=seq, ts_recv=ts,
    )  # fmt: skip
    return dead_letter_event(dl, agg, seq, ts)


def aggregate_events(agg: str, n: int, rng: random.Random, t0: int = T0) -> list[Event]:
    """``n`` events of one aggregate in seq order (seq 1..n)."""
    out: list[Event] = []
    ts = t0
    closed: list[tuple[int, int, int]] = []  # (interval, start, revision)
    source = agg.startswith("source:")
    for seq in range(1, n + 1):
        ts += rng.randint(1, 400_000_000)
        r = rng.random()
        if source:
            if r < 0.7:
                out.append(dead(agg, seq, ts, rng.choice(DLCode.ALL)))
            else:
                gap = {
                    "src": agg[7:],
                    "first_missing": seq,
                    "last_missing": seq + 2,
                    "count": 3,
                    "kind": "offset",
                }
                out.append(simple(agg, seq, ts, EventType.SEQUENCE_GAP, gap))
            continue
        if r < 0.62:
            at = ts - rng.randint(0, 3 * S) if rng.random() < 0.2 else ts  # out-of-order tick
            out.append(price(agg, seq, at, 100 + rng.random(), rng.choice((0.1, 0.5, 1.25, 3.0)), seq))
        elif r < 0.72:
            interval = rng.choice((60, 300))
            start = (ts - interval * S) // (interval * S) * (interval * S)
            closed.append((interval, start, 0))
            out.append(candle(agg, seq, interval, start, 0, 100 + rng.random()))
        elif r < 0.77 and closed:
            interval, start, rev = closed.pop(rng.randrange(len(closed)))
            closed.append((interval, start, rev + 1))
            out.append(candle(agg, seq, interval, start, rev + 1, 100 + rng.random()))
        elif r < 0.80:
            payload = {"venue": "v", "symbol": "s", "first_missing": seq, "last_missing": seq + 1, "count": 2}
            out.append(simple(agg, seq, ts, EventType.SEQUENCE_GAP, payload))
        elif r < 0.83:
            out.append(simple(agg, seq, ts + 5 * S, EventType.SYMBOL_STALE, {"last_ts_event": ts}))
        elif r < 0.86:
            out.append(
                simple(agg, seq, ts, EventType.ANOMALY, {"price": 1.0, "zscore": 9.0, "trade_id": "x"})
            )
        elif r < 0.92:
            out.append(dead(agg, seq, ts, rng.choice((DLCode.PRICE_JUMP, DLCode.BAD_PRICE))))
        elif r < 0.96:
            late = dead(agg, seq, ts - 600 * S, DLCode.LATE_TICK)
            out.append(msgspec.structs.replace(late, type=EventType.LATE_TICK))
        elif r < 0.98:
            out.append(simple(agg, seq, ts, "Mystery", {"x": 1}))
        else:
            bad = records.event(
                event_id=event_id(ts, "bad", agg, seq),
                type=EventType.PRICE_UPDATED,
                aggregate=agg,
                seq=seq,
                ts_event=ts,
                ts_logged=0,
                payload=b"{oops",
                causation="x",
            )
            out.append(bad)
    return out


def interleave(streams: list[list[Event]], rng: random.Random) -> list[Event]:
    """One log order of several aggregates' streams (each stream's order kept)."""
    pos = [0] * len(streams)
    live = [i for i, s in enumerate(streams) if s]
    out: list[Event] = []
    while live:
        i = rng.choice(live)
        out.append(streams[i][pos[i]])
        pos[i] += 1
        if pos[i] == len(streams[i]):
            live.remove(i)
    return out


def write_log(directory: Path, events: list[Event], *, parts: int = 2, batch: int = 100) -> None:
    """Append ``events`` in order, ``batch`` at a time, each to its aggregate's partition."""
    writers = [EventLogPartition(partition_path(directory, i)) for i in range(parts)]
    try:
        for start in range(0, len(events), batch):
            by_part: dict[int, list[Event]] = {}
            for e in events[start : start + batch]:
                by_part.setdefault(partition_of(e.aggregate, parts), []).append(e)
            for i, chunk in by_part.items():
                writers[i].append(chunk)
    finally:
        for w in writers:
            w.close()


def make_log(
    directory: Path, seed: int, sizes: dict[str, int], *, parts: int = 2, batch: int = 100
) -> list[Event]:
    """A log of the aggregates in ``sizes`` (events each); the events in log order."""
    rng = random.Random(seed)
    events = interleave([aggregate_events(a, n, rng) for a, n in sizes.items()], rng)
    write_log(directory, events, parts=parts, batch=batch)
    return events
