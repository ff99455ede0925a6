"""Venue feed frames: everything a venue WebSocket sends that ticktape uses, plus the
control frames the feed handler adds (:mod:`.control`).

Each venue module has ``decode_frame(raw, src, offset, ts_recv, ts_kafka)`` returning the
frame's records in order: :class:`~ticktape.schemas.records.Tick` (trades),
:class:`~ticktape.schemas.records.Quote` (top of book),
:class:`~ticktape.schemas.records.BookUpdate` (L2 snapshots and diffs) and
:class:`~ticktape.schemas.venues.feeds.control.Control`. A frame that cannot be used
raises :class:`~ticktape.schemas.errors.DecodeError` (a dead letter). Formats (the
``format`` of a Kafka source filled by ``ticktape record``, and of the ``websocket``
source): ``binance-ws``, ``coinbase-ws``, ``kraken-ws``, ``bybit-ws``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from ticktape.schemas.records import BookUpdate, Quote, Tick
from ticktape.schemas.venues.feeds.control import Control

FeedRecord: TypeAlias = Tick | Quote | BookUpdate | Control
FeedDecoder: TypeAlias = Callable[[bytes, str, int, int, int], list[FeedRecord]]
"""``decode_frame(raw, src, offset, ts_recv, ts_kafka) -> [record, ...]``."""

__all__ = ["FeedDecoder", "FeedRecord"]
