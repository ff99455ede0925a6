"""Gap repair: refill the candle windows affected by ``SequenceGap`` events from a history
source and emit candle revisions.

For every gap in the event log (optionally within a time range / symbols), the missing
trade ids are looked up in the history source (files or the archive). Each window that
holds a recovered trade is recomputed from the source's trades of that window (the
source is taken as complete for it); when the result differs from the stored candle it
is emitted with ``revision + 1`` through the candle and cache sinks, and a
``CandleRevised`` event is appended to the symbol's aggregate. Run it while the live job
is stopped, or against another data directory: it appends to the event log.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from ticktape.connectors.files.history import FileSourceConfig
from ticktape.flows import wiring
from ticktape.flows.backfill.inputs import read_archive, read_files, restrict
from ticktape.flows.config import Config
from ticktape.flows.steps.candles_vector import candles_from_table
from ticktape.infra.observability.metrics import RunStats
from ticktape.schemas.ids import candle_event_id
from ticktape.schemas.records import Candle, Event, EventType, aggregate_of
from ticktape.sinks.base.sqlite import connect
from ticktape.sinks.candles.store import CandleStore
from ticktape.sinks.eventlog.log import EventLogPartition, partition_of, partition_path

_enc = msgspec.json.Encoder()


class RepairReport(msgspec.Struct):
    gaps: int
    missing_ids: int
    recovered_trades: int
    windows_revised: int
    unrecoverable_gaps: int


def _gaps(cfg: Config, since: int | None, until: int | None, symbols: list[str]) -> list[dict[str, object]]:
    with wiring.open_event_store(cfg) as store:
        docs = [
            msgspec.json.decode(e.payload)
            for e in store.iter_events(type=EventType.SEQUENCE_GAP, since=since, until=until)
        ]
    return [d for d in docs if not symbols or d.get("symbol") in symbols]


def _next_seqs(cfg: Config, aggregates: set[str]) -> dict[str, int]:
    """The next free event seq of each aggregate in the event log."""
    out = {}
    parts = cfg.eventlog.partitions
    for agg in aggregates:
        conn = connect(partition_path(wiring.events_dir(cfg), partition_of(agg, parts)), readonly=True)
        try:
            row = conn.execute(
                "SELECT max(last_seq) FROM batch_aggregates WHERE aggregate = ?", (agg,)
            ).fetchone()
        finally:
            conn.close()
        out[agg] = int(row[0] or 0) + 1
    return out


def repair_gaps(
    cfg: Config,
    *,
    files: list[Path] | None = None,
    archive: str | None = None,
    file_cfg: FileSourceConfig | None = None,
    since: int | None = None,
    until: int | None = None,
    symbols: list[str] | None = None,
    stats: RunStats | None = None,
) -> RepairReport:
    """See the module docstring."""
    from ticktape.flows.backfill.run import write_candles

    symbols = symbols or []
    gaps = _gaps(cfg, since, until, symbols)
    missing = sum(int(str(g["count"])) for g in gaps)
    if not gaps:
        return RepairReport(0, 0, 0, 0, 0)
    if archive:
        tables = read_archive(
            archive,
            cfg.archive.prefix,
            since=None,
            until=None,
            symbols=sorted({str(g["symbol"]) for g in gaps}),
            s3=cfg.archive.s3,
        )
    else:
        tables, _ = read_files(files or [], file_cfg or FileSourceConfig())
    tables = restrict(tables, since=None, until=None, symbols=sorted({str(g["symbol"]) for g in gaps}))
    source = pa.concat_tables(list(tables.values())) if tables else None
    intervals = tuple(int(i) for i in cfg.candles.intervals)
    offset = int(cfg.candles.offset)
    store = CandleStore(wiring.candles_dir(cfg))
    revised: list[Candle] = []
    recovered = unrecoverable = 0
    for gap in gaps:
        venue, symbol = str(gap["venue"]), str(gap["symbol"])
        if source is None:
            unrecoverable += 1
            continue
        mine = source.filter(
            pc.and_(pc.equal(source.column("venue"), venue), pc.equal(source.column("symbol"), symbol))
        )
        no = mine.column("trade_no")
        found = mine.filter(
            pc.and_(
                pc.greater_equal(no, int(str(gap["first_missing"]))),
                pc.less_equal(no, int(str(gap["last_missing"]))),
            )
        )
        if found.num_rows == 0:
            unrecoverable += 1
            continue
        recovered += found.num_rows
        ts = mine.column("ts_event").to_numpy()
        for interval in intervals:
            starts = set(
                ((found.column("ts_event").to_numpy() - offset) // interval * interval + offset).tolist()
            )
            for start in sorted(starts):
                window = mine.filter(pa.array((ts >= start) & (ts < start + interval)))
                fresh = candles_from_table(window, (interval,), offset_ns=offset)
                if not fresh:
                    continue
                stored = store.read(
                    symbol=symbol,
                    venue=venue,
                    interval=interval // 1_000_000_000,
                    since=start,
                    until=start + 1,
                )
                old = stored[0] if stored else None
                new = fresh[0]
                if old is not None and _same(old, new):
                    continue
                revised.append(msgspec.structs.replace(new, revision=old.revision + 1 if old else 0))
    if revised:
        write_candles(cfg, revised, stats or RunStats())
        _log_revisions(cfg, revised, gaps)
    return RepairReport(len(gaps), missing, recovered, len(revised), unrecoverable)


def _same(a: Candle, b: Candle) -> bool:
    return msgspec.structs.replace(a, revision=0, ts_final=0) == msgspec.structs.replace(
        b, revision=0, ts_final=0
    )


def _log_revisions(cfg: Config, candles: list[Candle], gaps: list[dict[str, object]]) -> None:
    aggregates = {aggregate_of(c.venue, c.symbol) for c in candles}
    seqs = _next_seqs(cfg, aggregates)
    by_part: dict[int, list[Event]] = {}
    for c in sorted(candles, key=lambda c: (c.venue, c.symbol, c.interval, c.start)):
        agg = aggregate_of(c.venue, c.symbol)
        event = Event(
            candle_event_id(c),
            EventType.CANDLE_REVISED,
            agg,
            seqs[agg],
            c.end,
            0,
            _enc.encode(c),
            "repair:gaps",
        )
        seqs[agg] += 1
        by_part.setdefault(partition_of(agg, cfg.eventlog.partitions), []).append(event)
    for part, events in by_part.items():
        log = EventLogPartition(partition_path(wiring.events_dir(cfg), part))
        try:
            log.append(events)
        finally:
            log.close()
