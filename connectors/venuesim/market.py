"""A deterministic synthetic market: trades and L2 book changes for a few symbols.

Each symbol has a book of ``depth`` price levels per side on a fixed tick grid around a
reference price (bids below it, asks above: the book is never crossed). A step is either
a trade (contiguous trade ids per symbol, at the best bid or ask) or a book change (one
to three levels set to a new size, or deleted: size 0). Sizes and prices are rounded to
the venue-like precision given, so the text of every level is exact. Same seed, same
market.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import NamedTuple

#: 2024-01-01T00:00:00Z in ms: the synthetic market's clock starts here unless told otherwise.
START_MS = 1_704_067_200_000


class Trade(NamedTuple):
    symbol: str  # normalized BASE-QUOTE
    trade_id: int
    price: float
    size: float
    buy: bool  # the taker bought
    ts_ms: int


class Change(NamedTuple):
    symbol: str
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
    ts_ms: int


@dataclass
class _Book:
    ref: float
    tick: float
    bids: dict[float, float] = field(default_factory=dict)
    asks: dict[float, float] = field(default_factory=dict)


class SyntheticMarket:
    """``events(n)``: ``n`` trades and book changes, interleaved across symbols.

    ``start_ms``: the first event time (one event per ``step_ms``); ``price_decimals``/
    ``size_decimals``: the precision of every price and size."""

    def __init__(
        self,
        symbols: list[str],
        *,
        seed: int = 7,
        depth: int = 20,
        trade_share: float = 0.3,
        start_ms: int = START_MS,
        step_ms: int = 10,
        price_decimals: int = 2,
        size_decimals: int = 4,
    ) -> None:
        self.symbols = symbols
        self.rng = random.Random(seed)
        self.depth = depth
        self.trade_share = trade_share
        self.ts_ms = start_ms
        self.step_ms = step_ms
        self.pd = price_decimals
        self.sd = size_decimals
        self.trade_ids = dict.fromkeys(symbols, 1000)
        self.books: dict[str, _Book] = {}
        for k, symbol in enumerate(symbols):
            ref = round(100.0 * (k + 1) + 0.5, price_decimals)
            tick = 10.0**-price_decimals * 5
            book = _Book(ref, tick)
            for i in range(1, depth + 1):
                book.bids[self._price(ref - i * tick)] = self._size()
                book.asks[self._price(ref + i * tick)] = self._size()
            self.books[symbol] = book

    def _price(self, p: float) -> float:
        return round(p, self.pd)

    def _size(self) -> float:
        return round(self.rng.uniform(0.01, 5.0), self.sd)

    def initial(self, symbol: str) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """The book of ``symbol`` before any event (bids best first, asks best first)."""
        b = self.books[symbol]
        return sorted(b.bids.items(), reverse=True), sorted(b.asks.items())

    def events(self, n: int) -> list[Trade | Change]:
        out: list[Trade | Change] = []
        rng = self.rng
        for _ in range(n):
            self.ts_ms += self.step_ms
            symbol = rng.choice(self.symbols)
            book = self.books[symbol]
            if rng.random() < self.trade_share and book.bids and book.asks:
                buy = rng.random() < 0.5
                price = min(book.asks) if buy else max(book.bids)
                self.trade_ids[symbol] += 1
                out.append(Trade(symbol, self.trade_ids[symbol], price, self._size(), buy, self.ts_ms))
                continue
            bids: list[tuple[float, float]] = []
            asks: list[tuple[float, float]] = []
            for _ in range(rng.randint(1, 3)):
                side_bids = rng.random() < 0.5
                i = rng.randint(1, self.depth)
                price = self._price(book.ref - i * book.tick if side_bids else book.ref + i * book.tick)
                levels = book.bids if side_bids else book.asks
                size = 0.0 if (price in levels and rng.random() < 0.25) else self._size()
                if size == 0.0:
                    del levels[price]
                else:
                    levels[price] = size
                (bids if side_bids else asks).append((price, size))
            out.append(Change(symbol, _last_wins(bids), _last_wins(asks), self.ts_ms))
        return out


def _last_wins(levels: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """One entry per price (the last change of a price in a message wins, as venues send)."""
    seen: dict[float, float] = {}
    for p, q in levels:
        seen[p] = q
    return list(seen.items())
