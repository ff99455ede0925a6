"""The compression manager: zstd for archived-but-retained event-log bodies, in place.

After a unit is archived and verified its local bodies stay until the retention period
ends (reads stay local and fast); meanwhile they need not stay raw msgpack. This module
rewrites them with zstandard (``batches.codec``: ``msgpack`` -> ``zstd`` or
``zstd-dict:<id>``), and :func:`decode_stored_body` undoes it for every reader.

Guarantees:

* Only bodies of *verified* archive units are touched (a copy exists in the store).
* Each body is replaced by one ``UPDATE`` guarded by ``codec = 'msgpack'`` (which also
  records the batch's ``archived_key``/``archived_at``), after a round trip check (decompressing the new bytes gives the old ones): a crash leaves every
  body either old or new, both readable. A unit is marked ``compressed_at`` once all of
  its bodies are done, so no body is scanned twice.
* A trained dictionary is used only when it pays: trained on half of a sample of the
  bodies to compress, measured on the other half against plain zstd at the same level,
  kept if it saves at least ``min_gain`` more (``1 - dict_bytes / plain_bytes``) and more
  than its own size. Dictionaries live in ``zstd_dicts`` and are never deleted (old
  bodies refer to them).
* Statistics (bodies, rows, raw and compressed bytes, last run, codec, measured
  dictionary gain) accumulate in ``compression_stats``, for metrics and
  ``ticktape archive stats``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec
import zstandard

from ticktape.schemas.errors import ArchiveError

DICT_SIZE = 16 * 1024  # measured: 8-64 KiB dictionaries gain alike on event bodies
SAMPLE_BODIES = 256
SAMPLE_BYTES = 4 * 1024 * 1024
_local = threading.local()


class CompressionRun(msgspec.Struct):
    """What one run did (``gain``: measured dictionary gain, None when not measured)."""

    batches: int = 0
    rows: int = 0
    raw_bytes: int = 0
    compressed_bytes: int = 0
    codec: str = ""
    gain: float | None = None


def _decompressor(dict_id: int, load: Callable[[int], bytes]) -> zstandard.ZstdDecompressor:
    """A per-thread decompressor (zstandard objects are not thread-safe) per dictionary."""
    cache: dict[int, zstandard.ZstdDecompressor] | None = getattr(_local, "cache", None)
    if cache is None:
        cache = _local.cache = {}
    dec = cache.get(dict_id)
    if dec is None:
        data = zstandard.ZstdCompressionDict(load(dict_id)) if dict_id else None
        dec = cache[dict_id] = zstandard.ZstdDecompressor(dict_data=data)
    return dec


def decode_stored_body(codec: str, body: bytes, dicts: Callable[[int], bytes]) -> bytes:
    """The msgpack bytes of a stored body; ``dicts(id)`` returns dictionary ``id``'s bytes."""
    if codec == "msgpack":
        return body
    if codec == "zstd":
        return _decompressor(0, dicts).decompress(body)
    if codec.startswith("zstd-dict:"):
        return _decompressor(int(codec[10:]), dicts).decompress(body)
    raise ArchiveError(f"unknown body codec {codec!r} (expected msgpack, zstd or zstd-dict:<id>)")


def dictionary_loader(conn: sqlite3.Connection) -> Callable[[int], bytes]:
    """``dicts`` for :func:`decode_stored_body` reading ``conn``'s ``zstd_dicts``."""

    def load(dict_id: int) -> bytes:
        row = conn.execute("SELECT bytes FROM zstd_dicts WHERE id = ?", (dict_id,)).fetchone()
        if row is None:
            raise ArchiveError(f"zstd dictionary {dict_id} is missing from the event log")
        return bytes(row[0])

    return load


def _measure(samples: list[bytes], level: int, dict_data: zstandard.ZstdCompressionDict | None) -> int:
    comp = zstandard.ZstdCompressor(level=level, dict_data=dict_data)
    return sum(len(comp.compress(s)) for s in samples)


def choose_dictionary(
    conn: sqlite3.Connection, samples: list[bytes], level: int, min_gain: float, now: int, total: int
) -> tuple[int, float | None]:
    """``(dict id, measured gain)``; id 0 means plain zstd. Reuses the newest stored
    dictionary while it still pays, else trains one on half the sample and keeps it if
    the saving projected on the ``total`` raw bytes to compress exceeds its size."""
    if len(samples) < 8:
        return 0, None
    train, holdout = samples[::2], samples[1::2]
    plain = _measure(holdout, level, None) or 1
    row = conn.execute("SELECT id, bytes FROM zstd_dicts ORDER BY id DESC LIMIT 1").fetchone()
    if row is not None:
        gain = 1 - _measure(holdout, level, zstandard.ZstdCompressionDict(bytes(row[1]))) / plain
        if gain >= min_gain:
            return int(row[0]), gain
    try:
        trained = zstandard.train_dictionary(DICT_SIZE, list[Any](train), k=1024, d=8, level=level)
    except zstandard.ZstdError:  # too few or too uniform samples
        return 0, None
    with_dict = _measure(holdout, level, trained)
    gain = 1 - with_dict / plain
    saved = (plain - with_dict) * total / sum(map(len, holdout))
    if gain < min_gain or saved <= len(trained.as_bytes()):
        return 0, gain
    with conn:
        cur = conn.execute("INSERT INTO zstd_dicts(created, bytes) VALUES (?, ?)", (now, trained.as_bytes()))
    return int(cur.lastrowid or 0), gain


def compress_retained(
    conn: sqlite3.Connection,
    *,
    codec: str,
    level: int,
    min_gain: float,
    older_than: int,
    now: int | None = None,
    max_batches: int = 10_000,
) -> CompressionRun:
    """Compress the bodies of verified units archived at or before ``older_than`` (ns)
    and not deleted yet; at most ``max_batches`` bodies per call."""
    now = time.time_ns() if now is None else now
    units = conn.execute(
        "SELECT first_row, min(first_batch), max(last_batch), min(key), max(verified_at) FROM archive_units"
        " WHERE deleted_at IS NULL AND compressed_at IS NULL GROUP BY first_row"
        " HAVING min(state) = 'verified' AND max(verified_at) <= ? ORDER BY first_row",
        (older_than,),
    ).fetchall()
    run = CompressionRun(codec="zstd")
    if not units:
        return run
    first_ids = [u[1] for u in units[:16]]
    samples = [
        bytes(b)
        for (b,) in conn.execute(
            f"SELECT body FROM batches WHERE id >= ? AND id <= ? AND codec = 'msgpack' LIMIT {SAMPLE_BODIES}",
            (min(first_ids), max(u[2] for u in units[:16])),
        )
    ]
    while sum(map(len, samples)) > SAMPLE_BYTES and len(samples) > 8:
        samples = samples[: len(samples) // 2]
    dict_id, run.gain = (0, None)
    if codec == "zstd-dict":
        total = conn.execute(
            "SELECT coalesce(sum(length(body)), 0) FROM batches WHERE id BETWEEN ? AND ? AND codec = 'msgpack'",
            (units[0][1], units[-1][2]),
        ).fetchone()[0]
        dict_id, run.gain = choose_dictionary(conn, samples, level, min_gain, now, total)
    load = dictionary_loader(conn)
    data = zstandard.ZstdCompressionDict(load(dict_id)) if dict_id else None
    comp = zstandard.ZstdCompressor(level=level, dict_data=data)
    run.codec = f"zstd-dict:{dict_id}" if dict_id else "zstd"
    for first_row, first_batch, last_batch, key, verified_at in units:
        todo = conn.execute(
            "SELECT id, rows, body FROM batches WHERE id BETWEEN ? AND ? AND codec = 'msgpack' AND body IS NOT NULL",
            (first_batch, last_batch),
        ).fetchall()
        for batch_id, rows, body in todo[: max_batches - run.batches]:
            packed = comp.compress(body)
            if decode_stored_body(run.codec, packed, load) != body:
                raise ArchiveError(f"batch {batch_id}: zstd round trip differs; body left as is")
            with conn:
                cur = conn.execute(
                    "UPDATE batches SET body = ?, codec = ?, archived_key = ?, archived_at = ?"
                    " WHERE id = ? AND codec = 'msgpack' AND body IS NOT NULL",
                    (packed, run.codec, key, verified_at, batch_id),
                )
            if cur.rowcount:
                run.batches += 1
                run.rows += rows
                run.raw_bytes += len(body)
                run.compressed_bytes += len(packed)
        if run.batches >= max_batches:
            break
        with conn:
            conn.execute("UPDATE archive_units SET compressed_at = ? WHERE first_row = ?", (now, first_row))
    _record(conn, run, now)
    return run


def _record(conn: sqlite3.Connection, run: CompressionRun, now: int) -> None:
    with conn:
        conn.execute(
            "INSERT INTO compression_stats VALUES (1, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET"
            " batches = batches + excluded.batches, rows = rows + excluded.rows,"
            " raw_bytes = raw_bytes + excluded.raw_bytes,"
            " compressed_bytes = compressed_bytes + excluded.compressed_bytes, last_run = excluded.last_run,"
            " last_codec = excluded.last_codec, dictionary_gain = coalesce(excluded.dictionary_gain, dictionary_gain)",
            (run.batches, run.rows, run.raw_bytes, run.compressed_bytes, now, run.codec, run.gain),
        )


def compression_stats(conn: sqlite3.Connection) -> dict[str, Any]:
    """Totals over every run (``ratio`` raw/compressed, ``space_saved`` bytes)."""
    row = conn.execute(
        "SELECT batches, rows, raw_bytes, compressed_bytes, last_run, last_codec, dictionary_gain"
        " FROM compression_stats WHERE id = 1"
    ).fetchone()
    batches, rows, raw, packed, last_run, codec, gain = row or (0, 0, 0, 0, None, "", None)
    return {
        "batches": batches,
        "rows": rows,
        "raw_bytes": raw,
        "compressed_bytes": packed,
        "ratio": raw / packed if packed else None,
        "space_saved": raw - packed,
        "last_run": last_run,
        "last_codec": codec,
        "dictionary_gain": gain,
    }
