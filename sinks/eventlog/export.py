"""Export events to JSON lines or CSV, optionally zstd-compressed (docs/architecture.md, "Event log").

* JSON lines: one object per event with the envelope fields and ``payload`` embedded as
  JSON (verbatim); a payload that is not valid JSON is exported as a JSON string of its
  text, marked ``"payload_encoding": "text"``.
* CSV: header ``event_id,type,aggregate,seq,ts_event,ts_logged,payload,causation``;
  ``payload`` is the JSON text.
* ``compress=True`` streams through a zstd compressor (level 3) into ``<path>.zst``
  (the suffix is added when missing).

Guarantees: streaming (memory is bounded by one page of events, whatever the size of
the export); the file appears complete or not at all (written to ``<name>.part`` and
renamed); :func:`read_export` gives back the exported events (``payload`` byte-exact,
except bytes that are not UTF-8, which become U+FFFD).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Literal

import msgspec
import zstandard

from ticktape.schemas.errors import InputError
from ticktape.schemas.records import Event

Format = Literal["json", "csv"]
FORMATS: tuple[Format, ...] = ("json", "csv")
COLUMNS = ("event_id", "type", "aggregate", "seq", "ts_event", "ts_logged", "payload", "causation")
ZSTD_LEVEL = 3


class _JsonRow(msgspec.Struct, omit_defaults=True):
    event_id: str
    type: str
    aggregate: str
    seq: int
    ts_event: int
    ts_logged: int
    payload: msgspec.Raw
    causation: str
    payload_encoding: str = ""  # "text": ``payload`` is a JSON string of the payload's text


_enc = msgspec.json.Encoder()
_row_dec = msgspec.json.Decoder(_JsonRow)


def export_path(path: Path, compress: bool) -> Path:
    """Where an export to ``path`` lands (``.zst`` appended when compressing)."""
    return path.with_name(path.name + ".zst") if compress and path.suffix != ".zst" else path


def _row(e: Event) -> _JsonRow:
    try:
        payload, encoding = msgspec.json.decode(e.payload, type=msgspec.Raw), ""
    except msgspec.DecodeError:  # not JSON: its text, as a JSON string
        payload, encoding = msgspec.Raw(_enc.encode(e.payload.decode("utf-8", "replace"))), "text"
    return _JsonRow(
        e.event_id, e.type, e.aggregate, e.seq, e.ts_event, e.ts_logged, payload, e.causation, encoding
    )


def export_events(
    events: Iterable[Event], path: Path, *, format: str = "json", compress: bool = False
) -> int:
    """Write ``events`` to ``path`` (see the module docs); the number of rows written."""
    if format not in FORMATS:
        raise InputError(f"export format must be one of {', '.join(FORMATS)}, got {format!r}")
    final = export_path(path, compress)
    final.parent.mkdir(parents=True, exist_ok=True)
    part = final.with_name(final.name + ".part")
    rows = 0
    try:
        with part.open("wb") as fh:
            sink: IO[bytes] = fh
            with contextlib.ExitStack() as stack:
                if compress:
                    writer = zstandard.ZstdCompressor(level=ZSTD_LEVEL).stream_writer(fh, closefd=False)
                    sink = stack.enter_context(writer)
                rows = _write_json(events, sink) if format == "json" else _write_csv(events, sink)
        os.replace(part, final)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return rows


def _write_json(events: Iterable[Event], out: IO[bytes]) -> int:
    rows = 0
    buf = bytearray()
    for e in events:
        _enc.encode_into(_row(e), buf, -1)
        buf += b"\n"
        rows += 1
        if len(buf) >= 1 << 20:
            out.write(buf)
            buf.clear()
    out.write(buf)
    return rows


def _write_csv(events: Iterable[Event], out: IO[bytes]) -> int:
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=False)
    try:
        writer = csv.writer(text)
        writer.writerow(COLUMNS)
        rows = 0
        for e in events:
            writer.writerow((
                e.event_id, e.type, e.aggregate, e.seq, e.ts_event, e.ts_logged,
                e.payload.decode("utf-8", "replace"), e.causation,
            ))  # fmt: skip
            rows += 1
        text.flush()
    finally:
        text.detach()  # the caller closes the binary stream
    return rows


def read_export(path: Path) -> Iterator[Event]:
    """The events of an export file (format from the name: ``.csv[.zst]`` is CSV,
    anything else JSON lines), streaming."""
    compressed = path.suffix == ".zst"
    is_csv = (path.with_suffix("") if compressed else path).suffix == ".csv"
    with path.open("rb") as fh:
        raw: IO[bytes] = fh
        if compressed:
            raw = io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(fh))
        if not is_csv:
            for line in raw:
                if line.strip():
                    r = _row_dec.decode(line)
                    payload = bytes(r.payload)
                    if r.payload_encoding == "text":
                        payload = msgspec.json.decode(payload, type=str).encode()
                    yield Event(
                        r.event_id, r.type, r.aggregate, r.seq, r.ts_event, r.ts_logged, payload, r.causation
                    )
            return
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        reader = csv.reader(text)
        header = next(reader, None)
        if header is not None and tuple(header) != COLUMNS:
            raise InputError(f"{path}: expected CSV columns {','.join(COLUMNS)}, got {','.join(header)}")
        for event_id, typ, agg, seq, ts_event, ts_logged, text_payload, causation in reader:
            yield Event(
                event_id, typ, agg, int(seq), int(ts_event), int(ts_logged), text_payload.encode(), causation
            )
