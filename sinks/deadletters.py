"""Dead letters as local JSON-lines files.

:class:`DeadLetterFileSink` writes ``<dir>/part-NNN.jsonl``, one JSON object per dead letter
  (``ticktape.schemas.records.dead_letter_json``). Delivery: exactly once: under recovery the
  resume state is the file length at the snapshot, and the file is cut back to it on
  resume before the replayed input is written again; across runs (replays into the same
  directory) a dead letter whose ``dl_id`` is already in the file is not written again.
Unit of parallelism: the sink partitions (``PartitionedSink``).
"""

from __future__ import annotations

from pathlib import Path

import msgspec
from bytewax.outputs import StatefulSinkPartition

from ticktape.infra.observability.crashpoints import declare, reach
from ticktape.schemas.records import DeadLetter, dead_letter_json
from ticktape.sinks.base.partitioned import PartitionedSink

_enc = msgspec.json.Encoder()
CRASH_PARTIAL = declare("deadletters.partial", "half of a write's lines in the file, the last one cut")
CRASH_WRITTEN = declare("deadletters.written", "lines written, before the snapshot that covers them")


class _Id(msgspec.Struct):
    dl_id: str


_ID = msgspec.json.Decoder(_Id)


class _DeadLetterPart(StatefulSinkPartition[list[DeadLetter], int]):
    def __init__(self, path: Path, resume_at: int | None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("a+b")
        if resume_at is not None:
            self.file.truncate(resume_at)
        self.file.seek(0)
        self.seen: set[str] = set()
        end = 0
        for line in self.file:
            if not line.endswith(b"\n"):  # a write cut by a crash: its lines come again
                break
            end += len(line)
            try:
                self.seen.add(_ID.decode(line).dl_id)
            except msgspec.DecodeError:
                continue  # not ours to judge: kept, never a reason not to start
        self.file.truncate(end)
        self.file.seek(0, 2)

    def write_batch(self, values: list[list[DeadLetter]]) -> None:
        lines = []
        for batch in values:
            for dl in batch:
                if dl.dl_id not in self.seen:
                    self.seen.add(dl.dl_id)
                    lines.append(_enc.encode(dead_letter_json(dl)) + b"\n")
        if lines:
            data = b"".join(lines)
            half = len(data) // 2
            self.file.write(data[:half])  # as a kill or a full disk can cut a write: see __init__
            self.file.flush()
            reach(CRASH_PARTIAL)
            self.file.write(data[half:])
            self.file.flush()
            reach(CRASH_WRITTEN)

    def snapshot(self) -> int:
        return self.file.tell()

    def close(self) -> None:
        self.file.close()


class DeadLetterFileSink(PartitionedSink[list[DeadLetter], int]):
    """Dead letters as JSON lines, one file per partition."""

    def __init__(self, directory: Path, partitions: int) -> None:
        super().__init__(partitions)
        self.directory = directory

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _DeadLetterPart:
        return _DeadLetterPart(self.directory / f"part-{int(for_part):03d}.jsonl", resume_state)
