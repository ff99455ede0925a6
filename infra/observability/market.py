"""Quote and book metrics: counts per venue, and spread/mid/depth per labeled symbol.

Only the symbols of ``[metrics] symbol_labels`` (at most 100) get per-symbol gauges
(bounded cardinality); every quote counts in ``ticktape_quotes_total{venue}`` and in the
``ticktape_quote_age_seconds`` histogram (receive -> keyed step). Updated once per batch
under a lock; read by the Prometheus collector.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric

#: ``ticktape_quote_age_seconds`` upper bounds (Prometheus adds +Inf).
AGE_BUCKETS_S: tuple[float, ...] = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)


class _Quote(Protocol):
    @property
    def venue(self) -> str: ...
    @property
    def symbol(self) -> str: ...
    @property
    def bid(self) -> float: ...
    @property
    def bid_size(self) -> float: ...
    @property
    def ask(self) -> float: ...
    @property
    def ask_size(self) -> float: ...
    @property
    def ts_recv(self) -> int: ...


class _Book(Protocol):
    @property
    def venue(self) -> str: ...
    @property
    def symbol(self) -> str: ...
    @property
    def bids(self) -> list[tuple[float, float]]: ...
    @property
    def asks(self) -> list[tuple[float, float]]: ...


class MarketStats:
    """See the module docstring; ``labels`` is a callable giving the labeled symbols."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.labels: frozenset[str] = frozenset()
        self.quotes: Counter[str] = Counter()
        self.snapshots: Counter[str] = Counter()
        self.top: dict[
            tuple[str, str], tuple[float, float, float, float]
        ] = {}  # bid, ask, bid_size, ask_size
        self.depth: dict[tuple[str, str], tuple[float, float, int, int]] = {}  # bid/ask volume, levels
        #: The last L2 snapshot's best levels per labeled symbol (for live views such as the demo).
        self.ladders: dict[tuple[str, str], tuple[list[tuple[float, float]], list[tuple[float, float]]]] = {}
        self.age = [0] * (len(AGE_BUCKETS_S) + 1)
        self.age_sum = 0.0

    def observe_quotes(self, quotes: Sequence[_Quote], now_ns: int) -> None:
        per_venue = Counter(q.venue for q in quotes)
        labeled = self.labels
        with self._lock:
            self.quotes.update(per_venue)
            for q in quotes:
                age = max(now_ns - q.ts_recv, 0) / 1e9
                self.age[bisect.bisect_left(AGE_BUCKETS_S, age)] += 1
                self.age_sum += age
                if q.symbol in labeled:
                    self.top[(q.symbol, q.venue)] = (q.bid, q.ask, q.bid_size, q.ask_size)

    def observe_books(self, books: Sequence[_Book]) -> None:
        labeled = self.labels
        with self._lock:
            self.snapshots.update(b.venue for b in books)
            for b in books:
                if b.symbol in labeled:
                    self.depth[(b.symbol, b.venue)] = (
                        sum(q for _, q in b.bids), sum(q for _, q in b.asks), len(b.bids), len(b.asks),
                    )  # fmt: skip
                    self.ladders[(b.symbol, b.venue)] = (b.bids[:5], b.asks[:5])

    def view(
        self,
    ) -> tuple[
        dict[tuple[str, str], tuple[float, float, float, float]],
        dict[tuple[str, str], tuple[list[tuple[float, float]], list[tuple[float, float]]]],
    ]:
        """Copies of the last top of book and book ladder per labeled symbol."""
        with self._lock:
            return dict(self.top), dict(self.ladders)

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            quotes, snapshots = dict(self.quotes), dict(self.snapshots)
            top, depth = dict(self.top), dict(self.depth)
            age, age_sum = list(self.age), self.age_sum
        q = CounterMetricFamily("ticktape_quotes", "Quotes accepted per venue.", labels=["venue"])
        for venue, n in sorted(quotes.items()):
            q.add_metric([venue], n)
        yield q
        s = CounterMetricFamily(
            "ticktape_book_snapshots", "L2 book snapshots emitted per venue.", labels=["venue"]
        )
        for venue, n in sorted(snapshots.items()):
            s.add_metric([venue], n)
        yield s
        hist = HistogramMetricFamily(
            "ticktape_quote_age_seconds", "Receive time to the keyed quote step, per quote."
        )
        cumulative, buckets = 0, []
        for bound, count in zip((*AGE_BUCKETS_S, float("inf")), age, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        hist.add_metric([], buckets, age_sum)
        yield hist
        labels = ["symbol", "venue"]
        mid = GaugeMetricFamily(
            "ticktape_quote_mid", "Mid price of the last quote (labeled symbols).", labels=labels
        )
        spread = GaugeMetricFamily(
            "ticktape_quote_spread_bps", "Spread of the last quote in basis points of the mid (labeled symbols).",
            labels=labels,
        )  # fmt: skip
        for (symbol, venue), (bid, ask, _, _) in sorted(top.items()):
            m = (bid + ask) / 2.0
            mid.add_metric([symbol, venue], m)
            spread.add_metric([symbol, venue], (ask - bid) / m * 1e4 if m > 0 else 0.0)
        yield mid
        yield spread
        volume = GaugeMetricFamily(
            "ticktape_book_depth", "Size on the levels of the last L2 snapshot (labeled symbols).",
            labels=[*labels, "side"],
        )  # fmt: skip
        levels = GaugeMetricFamily(
            "ticktape_book_levels",
            "Levels in the last L2 snapshot (labeled symbols).",
            labels=[*labels, "side"],
        )
        for (symbol, venue), (bid_vol, ask_vol, nb, na) in sorted(depth.items()):
            volume.add_metric([symbol, venue, "bid"], bid_vol)
            volume.add_metric([symbol, venue, "ask"], ask_vol)
            levels.add_metric([symbol, venue, "bid"], nb)
            levels.add_metric([symbol, venue, "ask"], na)
        yield volume
        yield levels
