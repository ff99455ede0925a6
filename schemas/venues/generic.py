"""The generic JSON tick: one trade per message, for feeds that have no venue module.

Format (one JSON object per message)::

    {
      "venue":    str,                          required, stored lowercased
      "symbol":   str,                          required, normalized with the venue's rules
      "price":    number | decimal string,      required
      "size":     number | decimal string,      required
      "side":     "buy" | "sell" | "unknown",   optional (default "unknown"), any case
      "trade_id": int | str,                    optional (default "")
      "ts_event": int,                          required, ns since the Unix epoch (UTC)
      "id_type":  "cusip" | "isin"              optional
    }

With ``id_type``, ``symbol`` is an instrument identifier (CUSIP or ISIN): the tick's
``symbol`` is the identifier uppercased and ``instrument_id`` holds it as given, for
the validator to check and standardize. Unknown keys are ignored. The message is decoded
with ``strict=False``, so numeric strings become numbers. Example::

    {"venue": "nyse", "symbol": "037833100", "id_type": "cusip",
     "price": "189.84", "size": 100, "side": "buy", "trade_id": 7,
     "ts_event": 1775572202789012000}
"""

from __future__ import annotations

from typing import Literal

import msgspec

from ticktape.schemas.records import UNKNOWN, Tick
from ticktape.schemas.symbols import normalize
from ticktape.schemas.venues import side_of, trade_no_int, trade_no_of
from ticktape.schemas.venues._errors import map_decode_error


class GenericTick(msgspec.Struct, frozen=True):
    """One generic JSON tick (see the module docstring)."""

    venue: str
    symbol: str
    price: float
    size: float
    ts_event: int
    side: str = UNKNOWN
    trade_id: int | str = ""
    id_type: Literal["cusip", "isin"] | None = None

    def to_ticks(self, src: str, offset: int, ts_recv: int, ts_kafka: int) -> list[Tick]:
        """The normalized tick."""
        tid = self.trade_id
        if isinstance(tid, int):
            trade_id, trade_no = str(tid), trade_no_int(tid)
        else:
            trade_id, trade_no = tid, trade_no_of(tid)
        if self.id_type is None:
            venue, symbol = _names(self.venue, self.symbol)
            instrument_id = ""
        else:
            venue = self.venue.lower()
            symbol, instrument_id = self.symbol.strip().upper(), self.symbol
        return [
            Tick(
                venue,
                symbol,
                self.price,
                self.size,
                side_of(self.side),
                trade_id,
                self.ts_event,
                ts_recv,
                src,
                offset,
                ts_kafka,
                trade_no,
                0,
                instrument_id,
            )
        ]


_decoder = msgspec.json.Decoder(GenericTick, strict=False)
_name_cache: dict[str, dict[str, tuple[str, str]]] = {}


def _names(venue: str, symbol: str) -> tuple[str, str]:
    """(lowercase venue, normalized symbol), memoized (bounded) per raw pair."""
    by_symbol = _name_cache.get(venue)
    if by_symbol is None:
        if len(_name_cache) > 1000:
            _name_cache.clear()
        by_symbol = _name_cache[venue] = {}
    names = by_symbol.get(symbol)
    if names is None:
        if len(by_symbol) > 100_000:
            by_symbol.clear()
        low = venue.lower()
        names = by_symbol[symbol] = (low, normalize(low, symbol))
    return names


def decode_tick(raw: bytes, src: str, offset: int, ts_recv: int, ts_kafka: int) -> list[Tick]:
    """Decode one generic JSON tick."""
    try:
        msg = _decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise map_decode_error(exc, raw) from exc
    return msg.to_ticks(src, offset, ts_recv, ts_kafka)
