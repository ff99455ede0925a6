"""Order message files (JSON lines, optionally ``.gz``) as an order source.

Unit of parallelism: one partition per file (``file:<name>``). Each non-empty line is one
order message (the JSON of :mod:`ticktape.schemas.orders.events`); its offset is its line
number (from 0, blank lines count). Delivery: exactly the file's lines, once per run, in
order. Resume state: ``(next line, dead-letter seq)``, so a resumed run continues after
the last snapshot.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from ticktape.schemas.errors import InputError
from ticktape.schemas.orders.decoding import OrderBatch, OrderBatchDecoder

State = tuple[int, int]


def read_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """``(line number, bytes)`` of every non-empty line of ``path`` (gzip by suffix)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        for i, raw in enumerate(fh):
            line = raw.strip()
            if line:
                yield i, line


class _Part(StatefulSourcePartition[OrderBatch, State]):
    def __init__(
        self, lines: Iterator[tuple[int, bytes]], decoder: OrderBatchDecoder, next_row: int, batch: int
    ) -> None:
        self.lines, self.decoder, self.next_row, self.batch = lines, decoder, next_row, batch

    def next_batch(self) -> list[OrderBatch]:
        chunk = list(islice(self.lines, self.batch))
        if not chunk:
            raise StopIteration
        self.next_row = chunk[-1][0] + 1
        now = time.time_ns()
        return [self.decoder.decode((row, raw, now, 0) for row, raw in chunk)]

    def snapshot(self) -> State:
        return (self.next_row, self.decoder.state())


class OrderFileSource(FixedPartitionedSource[OrderBatch, State]):
    """Order messages from JSON-lines files (see the module docstring)."""

    def __init__(self, paths: list[Path], *, batch_size: int = 1000) -> None:
        if not paths:
            raise InputError("the orders file source needs at least one file ([orders] files or --file)")
        self.files: dict[str, Path] = {}
        for path in paths:
            if not path.is_file():
                raise InputError(f"orders file not found: {path}")
            name = f"file:{path.name}"
            while name in self.files:
                name += "+"
            self.files[name] = path
        self.batch_size = batch_size

    def list_parts(self) -> list[str]:
        return list(self.files)

    def build_part(self, step_id: str, for_part: str, resume_state: State | None) -> _Part:
        next_row, dl_seq = resume_state if resume_state is not None else (0, 0)
        lines = (r for r in read_lines(self.files[for_part]) if r[0] >= next_row)
        return _Part(lines, OrderBatchDecoder(for_part, dl_seq=dl_seq), next_row, self.batch_size)
