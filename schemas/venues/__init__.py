"""Venue wire formats: frozen ``msgspec.Struct``s with a ``to_ticks()`` converter and a
module-level decoder function per message kind.

Every decoder has the :data:`Decoder` signature
``(raw, src, offset, ts_recv, ts_kafka) -> list[Tick]`` and raises
:class:`ticktape.schemas.errors.DecodeError` (code from :class:`ticktape.schemas.records.DLCode`) when the
bytes are not a usable message. Venue time is converted to int ns here, at the parser.

Modules: :mod:`.binance` (trade, aggTrade), :mod:`.coinbase` (market_trades),
:mod:`.kraken` (WS v2 trade), :mod:`.bybit` (publicTrade), :mod:`.generic` (JSON tick).
History files (freqtrade, CSV, Kraken REST) live in :mod:`ticktape.schemas.history`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from ticktape.schemas.limits import MAX_NUMERIC_ID, NUMERIC_ID_DIGITS
from ticktape.schemas.records import BUY, SELL, UNKNOWN, Tick

Decoder: TypeAlias = Callable[[bytes, str, int, int, int], list[Tick]]
"""``decode(raw, src, offset, ts_recv, ts_kafka) -> [Tick, ...]``."""

_SIDES = {
    "buy": BUY,
    "sell": SELL,
    "BUY": BUY,
    "SELL": SELL,
    "Buy": BUY,
    "Sell": SELL,
    "unknown": UNKNOWN,
}


def side_of(text: str) -> str:
    """Normalized side: ``buy``/``sell``/``unknown`` for the usual spellings, otherwise the
    text lowercased (the validator rejects it, with the value in the message)."""
    side = _SIDES.get(text)
    return side if side is not None else text.lower()


def trade_no_of(trade_id: str) -> int:
    """``int(trade_id)`` when it is ASCII digits with a value in the numeric id range of
    :mod:`ticktape.schemas.limits` (int64), else -1 (a text id)."""
    if len(trade_id) <= NUMERIC_ID_DIGITS and trade_id.isdigit() and trade_id.isascii():
        n = int(trade_id)
        return n if n <= MAX_NUMERIC_ID else -1
    return -1


def trade_no_int(trade_id: int) -> int:
    """The ``trade_no`` of an integer id: itself from 0 to 2**63 - 1, else -1."""
    return trade_id if 0 <= trade_id <= MAX_NUMERIC_ID else -1


__all__ = ["Decoder", "side_of", "trade_no_int", "trade_no_of"]
