"""One symbol's L2 book: price levels per side, bounded depth, best levels first.

Levels live in a dict (price -> size) beside a sorted list of prices per side (bisect:
inserts and deletes are a memmove over at most ``depth`` floats). ``depth`` bounds each
side: after every change the levels farthest from the touch are dropped, as venues that
publish a bounded book expect (Kraken's checksum is computed on the book truncated to the
subscribed depth). A venue that sends exact level text for its checksum keeps it in
``texts`` (price -> (price text, size text)).
"""

from __future__ import annotations

from bisect import bisect_left, insort

from ticktape.schemas.records import Level

#: Default bound on the levels kept per side.
DEFAULT_DEPTH = 1000


class Side:
    """One side of a book; ``descending`` for bids (best = highest price)."""

    __slots__ = ("descending", "prices", "sizes", "texts")

    def __init__(self, descending: bool, keep_text: bool = False) -> None:
        self.descending = descending
        self.sizes: dict[float, float] = {}
        self.prices: list[float] = []  # ascending
        self.texts: dict[float, tuple[str, str]] | None = {} if keep_text else None

    def __len__(self) -> int:
        return len(self.prices)

    def clear(self) -> None:
        self.sizes.clear()
        self.prices.clear()
        if self.texts is not None:
            self.texts.clear()

    def set(self, price: float, size: float, text: tuple[str, str] | None = None) -> None:
        """Set a level (size 0 deletes it; deleting a missing level is a no-op)."""
        sizes = self.sizes
        if size == 0.0:
            if price in sizes:
                del sizes[price]
                prices = self.prices
                del prices[bisect_left(prices, price)]
                if self.texts is not None:
                    self.texts.pop(price, None)
            return
        if price not in sizes:
            insort(self.prices, price)
        sizes[price] = size
        if self.texts is not None and text is not None:
            self.texts[price] = text

    def truncate(self, depth: int) -> None:
        """Keep the ``depth`` levels nearest the touch."""
        extra = len(self.prices) - depth
        if extra <= 0:
            return
        prices = self.prices
        if self.descending:  # bids: drop the lowest
            dropped, self.prices = prices[:extra], prices[extra:]
        else:
            dropped, self.prices = prices[depth:], prices[:depth]
        for p in dropped:
            del self.sizes[p]
            if self.texts is not None:
                self.texts.pop(p, None)

    def best(self) -> Level | None:
        prices = self.prices
        if not prices:
            return None
        p = prices[-1] if self.descending else prices[0]
        return (p, self.sizes[p])

    def top(self, n: int) -> list[Level]:
        """The ``n`` best levels, best first."""
        prices = self.prices
        sizes = self.sizes
        chosen = prices[: -n - 1 : -1] if self.descending else prices[:n]
        return [(p, sizes[p]) for p in chosen]

    def top_texts(self, n: int) -> list[tuple[str, str]]:
        """The exact text of the ``n`` best levels (venues with checksums)."""
        texts = self.texts or {}
        prices = self.prices
        chosen = prices[: -n - 1 : -1] if self.descending else prices[:n]
        return [texts.get(p) or (repr(p), repr(self.sizes[p])) for p in chosen]


class L2Book:
    """The bids and asks of one symbol, after update ``last_id`` (-1: unknown)."""

    __slots__ = ("asks", "bids", "depth", "last_id")

    def __init__(self, depth: int = DEFAULT_DEPTH, *, keep_text: bool = False) -> None:
        self.depth = depth
        self.bids = Side(True, keep_text)
        self.asks = Side(False, keep_text)
        self.last_id = -1

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.last_id = -1

    def load(
        self,
        bids: list[Level],
        asks: list[Level],
        last_id: int,
        texts: tuple[list[tuple[str, str]], list[tuple[str, str]]] | None = None,
    ) -> None:
        """Replace the book with a snapshot."""
        self.clear()
        self.apply(bids, asks, last_id, texts)

    def apply(
        self,
        bids: list[Level],
        asks: list[Level],
        last_id: int,
        texts: tuple[list[tuple[str, str]], list[tuple[str, str]]] | None = None,
    ) -> None:
        """Set the given levels (size 0 deletes), then bound the depth."""
        bid_side, ask_side = self.bids, self.asks
        if texts is None:
            for p, q in bids:
                bid_side.set(p, q)
            for p, q in asks:
                ask_side.set(p, q)
        else:
            for (p, q), text in zip(bids, texts[0], strict=True):
                bid_side.set(p, q, text)
            for (p, q), text in zip(asks, texts[1], strict=True):
                ask_side.set(p, q, text)
        depth = self.depth
        if len(bid_side.prices) > depth:
            bid_side.truncate(depth)
        if len(ask_side.prices) > depth:
            ask_side.truncate(depth)
        self.last_id = last_id

    def best_bid(self) -> Level | None:
        return self.bids.best()

    def best_ask(self) -> Level | None:
        return self.asks.best()

    def crossed(self) -> bool:
        """Best bid at or above best ask (a book that cannot be right)."""
        b, a = self.bids.prices, self.asks.prices
        return bool(b and a and b[-1] >= a[0])

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        """``(bids, asks)``: the ``n`` best levels of each side, best first."""
        return self.bids.top(n), self.asks.top(n)

    def levels(self) -> tuple[list[Level], list[Level]]:
        """Every level, best first."""
        return self.bids.top(len(self.bids)), self.asks.top(len(self.asks))

    def __getstate__(self) -> tuple[int, int, list[Level], list[Level], object, object]:
        return (
            self.depth, self.last_id, *self.levels(),
            dict(self.bids.texts) if self.bids.texts is not None else None,
            dict(self.asks.texts) if self.asks.texts is not None else None,
        )  # fmt: skip

    def __setstate__(self, state: tuple[int, int, list[Level], list[Level], object, object]) -> None:
        depth, last_id, bids, asks, bid_texts, ask_texts = state
        self.depth = depth
        self.bids = Side(True, bid_texts is not None)
        self.asks = Side(False, ask_texts is not None)
        for p, q in bids:
            self.bids.set(p, q)
        for p, q in asks:
            self.asks.set(p, q)
        if isinstance(bid_texts, dict):
            self.bids.texts = bid_texts
        if isinstance(ask_texts, dict):
            self.asks.texts = ask_texts
        self.last_id = last_id
