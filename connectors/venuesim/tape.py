"""What a simulated venue sends: a tape of frames, each with the stream it belongs to and,
for book changes, the change itself (so the simulator keeps reference books and can answer
snapshot requests at any point).

A frame is bytes, or ``(head, tail)`` when the venue numbers every message of a
connection (Coinbase ``sequence_num``): the simulator sends ``head + str(n) + tail``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

Levels = list[tuple[float, float]]
Frame = bytes | tuple[bytes, bytes]


class BookOp(NamedTuple):
    """A change of ``symbol``'s reference book (venue spelling) up to update ``last_id``."""

    symbol: str
    bids: Levels
    asks: Levels
    last_id: int = -1


class Item(NamedTuple):
    key: tuple[str, str]  # (channel, venue symbol): trades, agg_trades, quotes, book
    frame: Frame
    book: BookOp | None = None


@dataclass
class Tape:
    """Items in sending order and the books as they stand before the first item:
    ``books[symbol] = (bids, asks, last_id)``."""

    venue: str
    items: list[Item]
    books: dict[str, tuple[Levels, Levels, int]] = field(default_factory=dict)
    price_decimals: int = 8
    size_decimals: int = 8

    def symbols(self) -> list[str]:
        return sorted({item.key[1] for item in self.items} | set(self.books))


def fmt(value: float, decimals: int) -> str:
    """A price or size as fixed-point text."""
    return f"{value:.{decimals}f}"
