"""Arrow tables of trades as a source (backfills from Parquet files and the archive).

Unit of parallelism: one partition per table (named by the caller, usually the original
source partition). Rows are emitted in table order, re-encoded as generic JSON ticks and
decoded by the same ``BatchDecoder`` as every source, so validation, dead letters and
watermarks are exactly those of a live run. Delivery: every row once per run. Resume
state: next row + decoder state.
"""

from __future__ import annotations

import time

import msgspec
import pyarrow as pa
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from ticktape.schemas.decoding import BatchDecoder, DecoderState
from ticktape.schemas.records import TickBatch
from ticktape.schemas.validation import TickValidator, ValidationRules
from ticktape.schemas.venues import generic

TICK_COLUMNS = ("venue", "symbol", "price", "size", "side", "trade_id", "ts_event")
_State = tuple[int, DecoderState]
_enc = msgspec.json.Encoder()


def rows_as_json(table: pa.Table) -> list[bytes]:
    """Each row as a generic JSON tick (the format ``ticktape.schemas.venues.generic`` decodes)."""
    ts = table.column("ts_event").cast(pa.int64()).to_pylist()
    cols = [table.column(c).to_pylist() for c in TICK_COLUMNS[:-1]]
    return [
        _enc.encode({"venue": v, "symbol": s, "price": p, "size": q, "side": d, "trade_id": i, "ts_event": t})
        for v, s, p, q, d, i, t in zip(*cols, ts, strict=True)
    ]


class _TablePartition(StatefulSourcePartition[TickBatch, _State]):
    def __init__(
        self, rows: list[bytes], offsets: list[int], decoder: BatchDecoder, start: int, batch_size: int
    ) -> None:
        self.rows = rows
        self.offsets = offsets
        self.decoder = decoder
        self.pos = start
        self.batch_size = batch_size

    def next_batch(self) -> list[TickBatch]:
        if self.pos >= len(self.rows):
            raise StopIteration
        a, b = self.pos, min(self.pos + self.batch_size, len(self.rows))
        self.pos = b
        now = time.time_ns()
        return [self.decoder.decode((self.offsets[i], self.rows[i], now, 0) for i in range(a, b))]

    def snapshot(self) -> _State:
        return (self.pos, self.decoder.state())


class TableSource(FixedPartitionedSource[TickBatch, _State]):
    """``tables[partition] = Table`` with the tick columns (and optionally ``offset``)."""

    def __init__(
        self, tables: dict[str, pa.Table], *, batch_size: int = 2000, rules: ValidationRules | None = None
    ) -> None:
        self.tables = tables
        self.batch_size = batch_size
        self.rules = rules or ValidationRules()

    def list_parts(self) -> list[str]:
        return list(self.tables)

    def build_part(self, step_id: str, for_part: str, resume_state: _State | None) -> _TablePartition:
        table = self.tables[for_part]
        offsets = (
            table.column("offset").to_pylist()
            if "offset" in table.column_names
            else list(range(table.num_rows))
        )
        start, dstate = resume_state if resume_state is not None else (0, None)
        validator = TickValidator(self.rules, check_clock=False)
        decoder = BatchDecoder.resume(for_part, generic.decode_tick, validator, dstate)
        return _TablePartition(rows_as_json(table), offsets, decoder, start, self.batch_size)
