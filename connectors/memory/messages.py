"""In-memory messages as a source (tests, benches, `ticktape produce` previews).

Unit of parallelism: one partition per key of ``messages``. Delivery: every message once,
in order. Resume state: next index plus the batch decoder's state.
"""

from __future__ import annotations

import time

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from ticktape.schemas.decoding import BatchDecoder, DecoderState, decoder_for
from ticktape.schemas.records import TickBatch
from ticktape.schemas.validation import TickValidator, ValidationRules

_State = tuple[int, DecoderState]


class _MemoryPartition(StatefulSourcePartition[TickBatch, _State]):
    def __init__(self, messages: list[bytes], decoder: BatchDecoder, start: int, batch_size: int) -> None:
        self.messages = messages
        self.decoder = decoder
        self.pos = start
        self.batch_size = batch_size

    def next_batch(self) -> list[TickBatch]:
        if self.pos >= len(self.messages):
            raise StopIteration
        first = self.pos
        chunk = self.messages[first : first + self.batch_size]
        self.pos += len(chunk)
        ts_recv = time.time_ns()
        return [self.decoder.decode((first + i, raw, ts_recv, 0) for i, raw in enumerate(chunk))]

    def snapshot(self) -> _State:
        return (self.pos, self.decoder.state())


class MemorySource(FixedPartitionedSource[TickBatch, _State]):
    """``messages[partition_name] = [raw bytes, ...]`` decoded with format ``fmt``."""

    def __init__(
        self,
        messages: dict[str, list[bytes]],
        fmt: str = "generic",
        *,
        batch_size: int = 2000,
        rules: ValidationRules | None = None,
        check_clock: bool = False,
    ) -> None:
        self.messages = messages
        self.decoder = decoder_for(fmt)
        self.batch_size = batch_size
        self.rules = rules or ValidationRules()
        self.check_clock = check_clock

    def list_parts(self) -> list[str]:
        return list(self.messages)

    def build_part(self, step_id: str, for_part: str, resume_state: _State | None) -> _MemoryPartition:
        start, dstate = resume_state if resume_state is not None else (0, None)
        validator = TickValidator(self.rules, check_clock=self.check_clock)
        decoder = BatchDecoder.resume(for_part, self.decoder, validator, dstate)
        return _MemoryPartition(self.messages[for_part], decoder, start, self.batch_size)
