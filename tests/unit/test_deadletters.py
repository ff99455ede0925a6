"""The dead-letter files: one JSON line per dead letter, exactly once per partition file,
and a file a crash cut mid-line never stops a start."""

from __future__ import annotations

import json
from pathlib import Path

from ticktape.schemas.records import DeadLetter
from ticktape.sinks.deadletters import DeadLetterFileSink


def dead(i: int) -> DeadLetter:
    return DeadLetter(
        dl_id=f"dl-{i}", code="DECODE_ERROR", message="m", raw=b"x", src="s", offset=i, ts_recv=1,
        venue="v", symbol="A-USD", ts_kafka=0,
    )  # fmt: skip


def lines(path: Path) -> list[str]:
    return [json.loads(line)["dl_id"] for line in path.read_text().splitlines()]


def test_a_line_cut_by_a_crash_is_dropped_and_written_again(tmp_path):
    sink = DeadLetterFileSink(tmp_path, 1)
    part = sink.build_part("dl", "0", None)
    part.write_batch([[dead(1), dead(2)]])
    part.close()
    path = tmp_path / "part-000.jsonl"
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"dl_id": "dl-3", "code": "DEC')  # a kill in the middle of a write
    part = sink.build_part("dl", "0", None)  # a restart without recovery state
    part.write_batch([[dead(2), dead(3)]])  # the input comes again
    part.close()
    assert lines(path) == ["dl-1", "dl-2", "dl-3"]


def test_resume_cuts_back_to_the_snapshot(tmp_path):
    sink = DeadLetterFileSink(tmp_path, 1)
    part = sink.build_part("dl", "0", None)
    part.write_batch([[dead(1)]])
    at = part.snapshot()
    part.write_batch([[dead(2)]])  # after the snapshot: the resumed run writes it again
    part.close()
    part = sink.build_part("dl", "0", at)
    part.write_batch([[dead(2)]])
    part.close()
    assert lines(tmp_path / "part-000.jsonl") == ["dl-1", "dl-2"]
