"""Open-loop pacing for sources that emit at a fixed offered rate (the synthetic feed).

Message ``k`` of a paced partition is due at ``start + k * step`` (``step = 1/rate``).
:meth:`Pacer.take` says how many messages are due at a poll (at most ``max_batch``)
and the wall-clock due time of the first one; :meth:`Pacer.wake_at` asks Bytewax to poll
again when the next message is due, so low rates go out in small, prompt batches and a
busy flow gets one batch of everything due per poll.

Backpressure: a flow that cannot keep up is never handed more than it reads. The
messages due but not read yet are the **backlog**; it grows while the flow is
overloaded and is exported as ``ticktape_source_backlog_messages{partition}`` next to
``ticktape_source_offered_rate{partition}``. Because ``ts_recv`` is stamped when the
source reads, that queueing shows up as backlog (and in ``venue_to_*``, which start
at the due time), not in ``recv_to_sink``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

#: Longest wait between polls when nothing is due (keeps epochs and EOF checks moving).
MAX_WAIT_S = 0.05


class Pacer:
    """The schedule of one partition (not part of any snapshot: a resumed partition
    starts a new schedule at the time it is rebuilt). ``clock``: monotonic seconds."""

    __slots__ = ("batches", "clock", "max_batch", "next_at", "step_ns")

    def __init__(self, step_ns: int, max_batch: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.step_ns = max(step_ns, 1)
        self.max_batch = max_batch
        self.clock = clock
        self.next_at = clock()  # due time of the next message (monotonic seconds)
        self.batches = 0  # polls that emitted something

    @property
    def offered_rate(self) -> float:
        """Messages per second."""
        return 1e9 / self.step_ns

    def take(self) -> tuple[int, int]:
        """``(n, first_due_ns)``: how many messages to emit now and the wall-clock time
        (ns) the first was due (the next ones are ``step_ns`` apart). Counts them as read."""
        now = self.clock()
        first_due = self.next_at
        # every message due so far, plus the next one when it is less than a step away
        n = min(self.max_batch, max(int((now - first_due) * 1e9 / self.step_ns) + 1, 0))
        self.next_at += n * self.step_ns / 1e9
        if n:
            self.batches += 1
        return n, time.time_ns() - int((now - first_due) * 1e9)

    def wake_at(self) -> datetime:
        """When to poll next: at once while messages are due, else when the next is."""
        wait = self.next_at - self.clock()
        return datetime.now(UTC) + timedelta(seconds=min(max(wait, 0.0), MAX_WAIT_S))

    def backlog(self, left: int) -> int:
        """Messages due but not read yet (at most ``left``, what the feed still has)."""
        behind = int((self.clock() - self.next_at) * 1e9 / self.step_ns)
        return max(0, min(behind, left))


def backlog_metrics(parts: Callable[[], Iterable[tuple[str, Pacer, int]]]) -> Callable[[], Iterable[Metric]]:
    """A :attr:`ticktape.infra.observability.metrics.RunStats.collectors` entry for paced partitions;
    ``parts()`` yields ``(partition, pacer, messages left)`` at scrape time."""

    def collect() -> Iterable[Metric]:
        backlog = GaugeMetricFamily(
            "ticktape_source_backlog_messages",
            "Paced source: messages due by the offered rate but not read yet.",
            labels=["partition"],
        )
        offered = GaugeMetricFamily(
            "ticktape_source_offered_rate",
            "Paced source: messages per second offered.",
            labels=["partition"],
        )
        for src, pacer, left in parts():
            backlog.add_metric([src], pacer.backlog(left))
            offered.add_metric([src], pacer.offered_rate)
        yield from (backlog, offered)

    return collect
