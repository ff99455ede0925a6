"""Backfills: rebuild candles (and, on the streaming path, every output) for past periods
through the live code path.

Two paths, equal by construction and by test:

* **fast** (vectorized, ``ticktape.flows.steps.candles_vector``): when every trade passes the
  stateless rules, no price jump would be rejected, ids are numeric or unique, each symbol
  comes from one source partition and ``fill_empty`` is off. It emulates dedupe,
  per-partition watermarks, late trades and revisions exactly, and writes candles only
  (candle store, cache, candle outputs).
* **streaming** (the live flow with ``mode = "backfill"``): everything else, or
  ``exact_streaming``; writes every output (event log, dead letters, cache, candles).

Bounded and event-time only: no wall clock decides anything. Its own state: fresh keyed
state, no recovery directory of the live job is touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from bytewax.inputs import Source
from bytewax.run import cli_main

from ticktape.connectors.files.history import FileSource, FileSourceConfig
from ticktape.connectors.files.table import TableSource
from ticktape.connectors.memory.items import ItemsSource
from ticktape.flows import wiring
from ticktape.flows.backfill.inputs import read_archive, read_files, restrict
from ticktape.flows.config import Config
from ticktape.flows.runner import run as run_flow
from ticktape.flows.steps.candles_vector import candles_with_admission
from ticktape.infra.observability.metrics import RunStats
from ticktape.schemas.errors import DataError
from ticktape.schemas.limits import MAX_TRADE_ID_CHARS, out_of_range
from ticktape.schemas.records import SIDES, Candle, TickBatch
from ticktape.schemas.validation import TickValidator
from ticktape.sinks.cache.sink import CacheItem

Progress = Callable[[int, int], None]


class BackfillReport(msgspec.Struct):
    path: str  # "fast" | "streaming"
    reason: str  # why streaming was used ("" for fast)
    rows: int
    candles: int
    duplicates: int
    late_rejected: int
    elapsed_s: float
    accounting: dict[str, object] = {}

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.elapsed_s if self.elapsed_s else 0.0


def fast_path_blocker(tables: dict[str, pa.Table], cfg: Config) -> str:
    """Why the vectorized path cannot be exact for this input ("" if it can)."""
    if cfg.candles.fill_empty:
        return "fill_empty is on"
    rules = TickValidator(cfg.validation, check_clock=False)
    max_jump = int(cfg.validation.max_ts_jump)
    for name, t in tables.items():
        price, size = t.column("price").to_numpy(), t.column("size").to_numpy()
        ts = t.column("ts_event").to_numpy()
        if out_of_range(price, size, ts).any():
            return f"{name}: rows outside the price/size/notional/time limits"
        if not pc.all(pc.is_in(t.column("side"), pa.array(sorted(SIDES)))).as_py():
            return f"{name}: rows with an unknown side"
        if t.num_rows and pc.max(pc.utf8_length(t.column("trade_id"))).as_py() > MAX_TRADE_ID_CHARS:
            return f"{name}: trade ids longer than {MAX_TRADE_ID_CHARS} characters"
        if max_jump and len(ts) > 1:  # the watermark guard (TS_JUMP) of the streaming decoder
            before = np.maximum.accumulate(ts)[:-1]
            if np.any((before > 0) & (ts[1:] - before > max_jump)):
                return f"{name}: event times that jump more than max_ts_jump ahead"
        for column, check in (("venue", rules.check_venue), ("symbol", rules.check_symbol)):
            try:
                for value in pc.unique(t.column(column)).to_pylist():
                    check(value)
            except DataError:
                return f"{name}: {column}s rejected by the {column} rules"
    return ""


def _jump_blocker(table: pa.Table, accepted: np.ndarray, max_jump_pct: float) -> str:
    if not max_jump_pct:
        return ""
    kept = table.filter(pa.array(accepted))
    key = np.char.add(
        kept.column("venue").to_numpy(zero_copy_only=False).astype(str),
        kept.column("symbol").to_numpy(zero_copy_only=False).astype(str),
    )
    order = np.argsort(key, kind="stable")
    price = kept.column("price").to_numpy()[order]
    same = key[order][1:] == key[order][:-1]
    move = np.abs(price[1:] - price[:-1]) / price[:-1] * 100.0
    return "a price jump the streaming rules would reject" if np.any(same & (move > max_jump_pct)) else ""


def write_candles(cfg: Config, candles: list[Candle], stats: RunStats) -> None:
    """Through the live job's candle and cache sinks (a small Bytewax flow)."""
    import bytewax.operators as op
    from bytewax.dataflow import Dataflow, Stream

    outputs = wiring.make_outputs(cfg, stats)
    keyed = [(str(i % cfg.run.shards), candles[i : i + 5000]) for i in range(0, len(candles), 5000)]
    flow = Dataflow("backfill_candles")
    items = op.input("candles", flow, ItemsSource(keyed))
    for i, candle_sink in enumerate(outputs.candles):
        op.output(f"candles_{i}", items, candle_sink)
    cache_items: Stream[tuple[str, CacheItem]] = op.map(
        "cache_items", items, lambda kv: (kv[0], ([], kv[1], []))
    )
    for i, cache_sink in enumerate(outputs.cache):
        op.output(f"cache_{i}", cache_items, cache_sink)
    cli_main(flow, workers_per_process=1)  # type: ignore[no-untyped-call]


def backfill(
    cfg: Config,
    *,
    files: list[Path] | None = None,
    archive: str | None = None,
    file_cfg: FileSourceConfig | None = None,
    since: int | None = None,
    until: int | None = None,
    symbols: list[str] | None = None,
    exact_streaming: bool = False,
    progress: Progress | None = None,
    stats: RunStats | None = None,
) -> BackfillReport:
    """Run a backfill (see the module docstring); ``cfg.run.mode`` is forced to backfill."""
    cfg = msgspec.structs.replace(cfg, run=msgspec.structs.replace(cfg.run, mode="backfill"))
    stats = stats or RunStats(cfg.metrics.latency_window)
    fcfg = file_cfg or FileSourceConfig()
    symbols = symbols or []
    t0 = time.perf_counter()
    undecodable = 0
    if archive:
        tables = read_archive(
            archive, cfg.archive.prefix, since=since, until=until, symbols=symbols, s3=cfg.archive.s3
        )
    else:
        tables, undecodable = read_files(files or [], fcfg)
    filtered = since is not None or until is not None or bool(symbols)
    tables = restrict(tables, since=since, until=until, symbols=symbols)
    rows = sum(t.num_rows for t in tables.values())
    reason = "--exact-streaming" if exact_streaming else ""
    if not reason and undecodable and not filtered:
        reason = f"{undecodable} rows that cannot be decoded (they become dead letters)"
    reason = reason or fast_path_blocker(tables, cfg)
    if not reason:
        combined = pa.concat_tables(list(tables.values())) if tables else None
        c = cfg.candles
        result = candles_with_admission(
            combined, tuple(int(i) for i in c.intervals), grace_ns=int(c.grace),
            horizon_ns=int(c.revision_horizon), window=cfg.dedupe.window, offset_ns=int(c.offset),
            max_id_jump=cfg.dedupe.max_id_jump, max_keys=cfg.dedupe.max_keys_per_shard,
        ) if combined is not None else None  # fmt: skip
        if combined is None or result is None:
            reason = (
                "no input"
                if combined is None
                else "repeated non-numeric trade ids, a symbol on several partitions, or trade ids"
                " the keyed step rejects (stale, jumping, beyond int64) or more keys than a shard holds"
            )
        elif jump := _jump_blocker(combined, result[1].accepted, cfg.validation.max_jump_pct):
            reason = jump
        else:
            candles, adm = result
            write_candles(cfg, candles, stats)
            if progress:
                progress(rows, rows)
            return BackfillReport(
                "fast", "", rows, len(candles), adm.duplicates, adm.late_rejected, time.perf_counter() - t0
            )
    # streaming: the live flow over the same input (the files themselves when unfiltered)
    if archive or filtered or any(p.suffix == ".parquet" for p in files or []):
        source: Source[TickBatch] = TableSource(tables, batch_size=cfg.run.batch_size, rules=cfg.validation)
    else:
        paths = tuple(str(p) for p in files or [])
        source = FileSource(
            msgspec.structs.replace(fcfg, paths=paths), batch_size=cfg.run.batch_size, rules=cfg.validation
        )
    watcher = _ProgressWatcher(stats, rows, progress) if progress else None
    try:
        run_flow(cfg, source=source, outputs=wiring.make_outputs(cfg, stats), stats=stats, serve=False)
    finally:
        if watcher is not None:
            watcher.stop()
    totals = stats.totals()
    candles_out = sum(stats.events.get(t, 0) for t in ("CandleClosed", "CandleRevised"))
    late = stats.dead_letters.get("LATE_TICK", 0)
    return BackfillReport(
        "streaming",
        reason,
        totals.read,
        candles_out,
        totals.duplicate,
        late,
        time.perf_counter() - t0,
        stats.accounting(),
    )


class _ProgressWatcher:
    """Reports rows read to ``progress`` twice a second while the flow runs."""

    def __init__(self, stats: RunStats, total: int, progress: Progress) -> None:
        import threading

        self._stop = threading.Event()

        def loop() -> None:
            while not self._stop.wait(0.5):
                progress(stats.totals().read, total)
            progress(stats.totals().read, total)

        self._thread = threading.Thread(target=loop, name="backfill-progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
