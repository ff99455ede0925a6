"""Deterministic identifiers: the same input always yields the same id, so replays and
restarts produce the same event ids and sinks can insert-or-ignore."""

from __future__ import annotations

import struct
from hashlib import blake2b
from typing import TYPE_CHECKING
from zlib import adler32, crc32

if TYPE_CHECKING:
    from ticktape.schemas.records import Candle, PriceUpdate


def stable_id(*parts: object) -> str:
    """A 128-bit hex id of ``parts`` (joined with a unit separator, so ("a", "bc") and
    ("ab", "c") differ)."""
    return blake2b("\x1f".join(map(str, parts)).encode(), digest_size=16).hexdigest()


_ID = struct.Struct(">QII").pack


def _id(ts_ns: int, data: bytes) -> str:
    """32 hex digits: the time (big-endian, so ids sort by time) and 64 bits from two
    independent checksums of ``data`` (CRC-32, Adler-32). Not cryptographic: a collision
    also needs the same nanosecond; this runs once per tick, where BLAKE2b cost more."""
    return _ID(ts_ns if ts_ns > 0 else 0, crc32(data), adler32(data)).hex()


class PriceIds:
    """:func:`price_event_id` for the updates of one venue and symbol, with the checksums
    of their common prefix computed once (CRC-32 and Adler-32 continue from a running
    value, so the id is the same as hashing the whole key)."""

    __slots__ = ("adler", "crc")

    def __init__(self, venue: str, symbol: str) -> None:
        prefix = f"P\x1f{venue}\x1f{symbol}\x1f".encode()
        self.crc = crc32(prefix)
        self.adler = adler32(prefix)

    def of(self, ts_event: int, trade_id: str, src: str, offset: int) -> str:
        ident = (trade_id or f"{src}@{offset}").encode()
        return _ID(ts_event if ts_event > 0 else 0, crc32(ident, self.crc), adler32(ident, self.adler)).hex()


def event_id(ts_ns: int, *parts: object) -> str:
    """A time-ordered event id: 16 hex digits of ``ts_ns`` then a 64-bit digest of
    ``parts`` (joined with a unit separator, so ("a", "bc") and ("ab", "c") differ).

    ``ts_ns`` must itself be deterministic (event time, or 0 when there is none). Ids of
    a live stream then sort by time, so indexes on them grow at their right edge.
    """
    return _id(ts_ns, "\x1f".join(map(str, parts)).encode())


def price_event_id(update: PriceUpdate) -> str:
    """The id of the ``PriceUpdated`` event of ``update`` (also the ``event_id`` header of
    the update on Kafka): the venue's trade id, or the source coordinates without one.
    Equal to ``event_id(ts_event, "P", venue, symbol, trade_id or "src@offset")``."""
    ident = update.trade_id or f"{update.src}@{update.offset}"
    return _id(update.ts_event, f"P\x1f{update.venue}\x1f{update.symbol}\x1f{ident}".encode())


def candle_event_id(candle: Candle) -> str:
    """The id of the ``CandleClosed``/``CandleRevised`` event of ``candle`` (one per
    window and revision)."""
    return event_id(
        candle.end, "C", candle.venue, candle.symbol, candle.interval, candle.start, candle.revision
    )


def event_time_of(event_id_text: str) -> int:
    """The time prefix of an id made by :func:`event_id`."""
    return int(event_id_text[:16], 16)


def stable_bucket(text: str, buckets: int) -> int:
    """A process-independent bucket for ``text`` (Python's ``hash`` is salted per process,
    which would send the same symbol to different partitions in a cluster)."""
    return int.from_bytes(blake2b(text.encode(), digest_size=8).digest(), "little") % buckets
