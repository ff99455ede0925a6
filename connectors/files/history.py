"""History files replayed as a tick stream (freqtrade JSON rows, CSV, Kraken REST JSON,
Parquet with the CSV column mapping).

Unit of parallelism: one partition per file (``file:<name>``); files spread over
workers. Rows are emitted in file order; the offset of a tick is its row number. Every
file is checked when the source is built (format, symbol, columns), so a file that
cannot be read is one error before the dataflow starts.
Delivery: exactly the file's rows, each once per run. Resume state: the next row number
plus the batch decoder's state, so a resumed run continues after the last snapshot.
Files carry no receive clock, so the future/past timestamp rule is off for them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Literal

import msgspec
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from ticktape.connectors.files.parquet import check_parquet, is_parquet, read_parquet_trades
from ticktape.connectors.files.table import rows_as_json
from ticktape.schemas.bounds import Rate
from ticktape.schemas.decoding import BatchDecoder, DecoderState
from ticktape.schemas.errors import InputError
from ticktape.schemas.history import CsvMapping, HistorySpec, check_history, detect_format, open_history
from ticktape.schemas.records import TickBatch
from ticktape.schemas.validation import TickValidator, ValidationRules
from ticktape.schemas.venues import Decoder, generic

_State = tuple[int, DecoderState]


class FileSourceConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[source.file]``: ``paths`` to replay; ``format`` auto-detected unless given;
    ``venue``/``symbol`` override what the format implies; ``rate`` limits rows/s
    (0 = as fast as the flow takes them)."""

    paths: tuple[str, ...] = ()
    format: Literal["auto", "freqtrade", "csv", "kraken-rest", "parquet"] = "auto"
    venue: str = ""
    symbol: str = ""
    csv: CsvMapping = CsvMapping()
    rate: Rate = 0.0


def history_spec(cfg: FileSourceConfig, path: Path) -> HistorySpec:
    """How to read the (non-Parquet) history file ``path`` under ``cfg``."""
    fmt = detect_format(path) if cfg.format == "auto" else cfg.format
    kwargs: dict[str, object] = {"format": fmt, "csv": cfg.csv}
    if cfg.venue:
        kwargs["venue"] = cfg.venue
    if cfg.symbol:
        kwargs["symbol"] = cfg.symbol
    return msgspec.convert(kwargs, HistorySpec, from_attributes=True)


class _FilePartition(StatefulSourcePartition[TickBatch, _State]):
    def __init__(
        self,
        rows: Iterator[tuple[int, bytes]],
        decoder: BatchDecoder,
        next_row: int,
        batch_size: int,
        rate: float,
    ) -> None:
        self.rows = rows
        self.decoder = decoder
        self.next_row = next_row
        self.batch_size = batch_size
        self.rate = rate
        self._started = time.monotonic()
        self._emitted = 0

    def next_batch(self) -> list[TickBatch]:
        n = self.batch_size
        if self.rate:
            due = int((time.monotonic() - self._started) * self.rate) - self._emitted
            n = min(n, max(due, 0))
            if n == 0:
                return []
        chunk = list(islice(self.rows, n))
        if not chunk:
            raise StopIteration
        self._emitted += len(chunk)
        self.next_row = chunk[-1][0] + 1
        ts_recv = time.time_ns()
        return [self.decoder.decode((row, raw, ts_recv, 0) for row, raw in chunk)]

    def next_awake(self) -> datetime | None:
        if not self.rate:
            return None
        return datetime.now(UTC) + timedelta(seconds=min(1.0 / self.rate, 0.05))

    def snapshot(self) -> _State:
        return (self.next_row, self.decoder.state())


class FileSource(FixedPartitionedSource[TickBatch, _State]):
    """Replay history files (see the module docstring)."""

    def __init__(
        self, cfg: FileSourceConfig, *, batch_size: int = 2000, rules: ValidationRules | None = None
    ) -> None:
        if not cfg.paths:
            raise InputError("the file source needs at least one path ([source.file] paths or --file)")
        self.cfg = cfg
        self.batch_size = batch_size
        self.rules = rules or ValidationRules()
        self.files: dict[str, Path] = {}
        for raw in cfg.paths:
            path = Path(raw)
            if not path.is_file():
                raise InputError(f"history file not found: {path}")
            if self._parquet(path):
                check_parquet(path, cfg.csv, cfg.symbol)
            else:
                check_history(path, history_spec(cfg, path))
            name = f"file:{path.name}"
            while name in self.files:
                name += "+"
            self.files[name] = path

    def _parquet(self, path: Path) -> bool:
        return self.cfg.format == "parquet" or (self.cfg.format == "auto" and is_parquet(path))

    def list_parts(self) -> list[str]:
        return list(self.files)

    def build_part(self, step_id: str, for_part: str, resume_state: _State | None) -> _FilePartition:
        path = self.files[for_part]
        if self._parquet(path):
            table = read_parquet_trades(path, self.cfg.csv, self.cfg.venue, self.cfg.symbol)
            rows: Iterator[tuple[int, bytes]] = enumerate(rows_as_json(table))
            row_decoder: Decoder = generic.decode_tick
        else:
            rows, row_decoder = open_history(path, history_spec(self.cfg, path))
        next_row, dstate = resume_state if resume_state is not None else (0, None)
        rows = (r for r in rows if r[0] >= next_row)
        validator = TickValidator(self.rules, check_clock=False)
        decoder = BatchDecoder.resume(for_part, row_decoder, validator, dstate)
        return _FilePartition(rows, decoder, next_row, self.batch_size, self.cfg.rate)
