"""EventStore.export / ticktape.sinks.eventlog.export: JSON lines and CSV, zstd, filters, streaming."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import zstandard

from tests.support import records
from tests.support.events import T0, S, make_log, price
from ticktape.schemas.errors import InputError
from ticktape.schemas.records import Event, EventType
from ticktape.sinks.eventlog.export import COLUMNS, export_events, export_path, read_export
from ticktape.sinks.eventlog.log import EventLogPartition, partition_path
from ticktape.sinks.eventlog.store import EventStore

SIZES = {"A-USD@v": 300, "B-USD@v": 200, "source:trades/0": 80}


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Event]]:
    directory = tmp_path_factory.mktemp("log")
    return directory, make_log(directory, 5, SIZES, parts=3, batch=50)


@pytest.mark.parametrize("fmt", ["json", "csv"])
@pytest.mark.parametrize("compress", [False, True])
def test_round_trip(log: tuple[Path, list[Event]], tmp_path: Path, fmt: str, compress: bool) -> None:
    directory, events = log
    with EventStore(directory) as store:
        rows = store.export(tmp_path / f"all.{fmt}", format=fmt, compress=compress)
        stored = list(store.iter_events())
    final = export_path(tmp_path / f"all.{fmt}", compress)
    assert final.name == f"all.{fmt}" + (".zst" if compress else "")
    assert not list(tmp_path.glob("*.part"))
    assert rows == len(events) == len(stored)
    assert list(read_export(final)) == stored  # envelope, ts_logged and payload bytes
    if compress:
        raw = zstandard.ZstdDecompressor().stream_reader(final.open("rb")).read()
        assert raw.startswith(b"{" if fmt == "json" else b"event_id,")


def test_json_lines_embed_the_payload_as_json(log: tuple[Path, list[Event]], tmp_path: Path) -> None:
    directory, _ = log
    with EventStore(directory) as store:
        store.export(tmp_path / "p.jsonl", type=EventType.PRICE_UPDATED, aggregate="A-USD@v")
    docs = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert docs
    assert list(docs[0]) == list(COLUMNS)  # payload_encoding only for non-JSON payloads
    for d in docs:
        assert d["type"] == "PriceUpdated"
        if "payload_encoding" in d:  # the generator's malformed payloads
            assert d["payload"] == "{oops"
            continue
        assert isinstance(d["payload"], list)  # a JSON array of PriceUpdate fields, not text
        assert d["payload"][1] == "A-USD"
    assert [d["seq"] for d in docs] == sorted(d["seq"] for d in docs)


def test_csv_columns_and_payload_text(log: tuple[Path, list[Event]], tmp_path: Path) -> None:
    directory, _ = log
    with EventStore(directory) as store:
        n = store.export(tmp_path / "dl.csv", format="csv", type=EventType.DEAD_LETTER)
    rows = list(csv.reader(io.StringIO((tmp_path / "dl.csv").read_text(), newline="")))
    assert tuple(rows[0]) == COLUMNS
    assert len(rows) == n + 1
    assert all(json.loads(r[6])["code"] for r in rows[1:])


@pytest.mark.parametrize(
    "filters",
    [
        {"aggregate": "B-USD@v"},
        {"type": EventType.SEQUENCE_GAP},
        {"since": T0 + 20 * S, "until": T0 + 40 * S},
        {"aggregate": "A-USD@v", "type": EventType.PRICE_UPDATED, "since": T0 + 10 * S},
        {"aggregate": "nobody@nowhere"},
    ],
)
def test_filters_match_the_query(
    log: tuple[Path, list[Event]], tmp_path: Path, filters: dict[str, object]
) -> None:
    directory, _ = log
    with EventStore(directory) as store:
        n = store.export(tmp_path / "f.jsonl", compress=True, **filters)
        want = list(store.iter_events(**filters))  # type: ignore[arg-type]
    assert n == len(want)
    assert list(read_export(tmp_path / "f.jsonl.zst")) == want


def test_non_json_payload_is_exported_as_a_string(tmp_path: Path) -> None:
    odd = records.event(
        event_id="id1", type="Mystery", aggregate="X@v", seq=1, ts_event=T0, ts_logged=5,
        payload=b"not json \xff", causation="c",
    )  # fmt: skip
    assert export_events([odd], tmp_path / "odd.jsonl") == 1
    doc = json.loads((tmp_path / "odd.jsonl").read_text())
    assert (doc["payload"], doc["payload_encoding"]) == ("not json \ufffd", "text")
    assert next(read_export(tmp_path / "odd.jsonl")).payload == "not json \ufffd".encode()
    assert export_events([odd], tmp_path / "odd.csv", format="csv") == 1
    assert next(read_export(tmp_path / "odd.csv")).payload == "not json \ufffd".encode()


def test_a_failed_export_leaves_no_file(tmp_path: Path) -> None:
    def broken() -> Iterator[Event]:
        yield price("A@v", 1, T0, 1.0, 1.0, 1)
        raise RuntimeError("source went away")

    with pytest.raises(RuntimeError):
        export_events(broken(), tmp_path / "x.jsonl", compress=True)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="parquet"):
        export_events([], tmp_path / "x.parquet", format="parquet")


def test_export_streams_in_bounded_memory(tmp_path: Path) -> None:
    """60k events (~65 MB of JSON) exported while holding a few MB: events are read
    batch by batch and written as they come."""
    directory = tmp_path / "big"
    part = EventLogPartition(partition_path(directory, 0))
    payload = msgspec.json.encode({"pad": "x" * 1000})
    n, batch = 60_000, 3_000
    for start in range(0, n, batch):
        ids = range(start, start + batch)
        part.append(
            [
                records.event(
                    event_id=f"{T0 + i:032x}",
                    type="PriceUpdated",
                    aggregate=f"S{i % 50}@v",
                    seq=i // 50 + 1,
                    ts_event=T0 + i,
                    ts_logged=0,
                    payload=payload,
                    causation="c",
                )
                for i in ids
            ]
        )
    part.close()
    with EventStore(directory) as store:
        tracemalloc.start()
        try:
            rows = store.export(tmp_path / "big.jsonl")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    size = (tmp_path / "big.jsonl").stat().st_size
    assert rows == n
    assert size > 60_000_000
    assert peak < 15_000_000, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.0f} MB export"
