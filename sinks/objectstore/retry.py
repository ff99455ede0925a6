"""Bounded retries with exponential backoff and jitter for object-store calls.

Guarantees of :func:`call_with_retry`:

* only :class:`~ticktape.sinks.objectstore.base.TransientStoreError` is retried; any other exception
  (including a plain ``ArchiveError``) propagates at once, unchanged;
* at most ``policy.attempts`` calls are made; the wait before retry ``n`` (1-based) is
  drawn from ``[0, min(cap, base * 2**(n-1))]`` ("full" jitter, the default), so waits
  never exceed ``cap`` and the total wait is bounded by ``(attempts - 1) * cap``;
* when every attempt failed, :class:`RetriesExhaustedError` (a ``TransientStoreError``)
  is raised, saying what failed and how many attempts were made, chained to the last
  error.

The operations retried must be idempotent (``put`` of the same key and bytes is). Time
and randomness are injected (``sleep``, ``rng``), so tests are deterministic and instant.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Annotated, Literal, TypeVar

import msgspec

from ticktape.schemas.bounds import between
from ticktape.schemas.durations import Duration, PositiveDuration
from ticktape.sinks.objectstore.base import TransientStoreError

T = TypeVar("T")
log = logging.getLogger("ticktape.archive.retry")


class RetryPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[archive.retry]``: how often and how patiently transient failures are retried.

    ``jitter``: ``"full"`` (wait uniform in ``[0, ceiling]``: spreads retrying clients
    best), ``"equal"`` (``[ceiling/2, ceiling]``) or ``"none"`` (exactly ``ceiling``).
    """

    attempts: Annotated[int, between(1, 100)] = 6
    base: PositiveDuration = PositiveDuration.parse("100ms")
    cap: PositiveDuration = PositiveDuration.parse("10s")
    jitter: Literal["full", "equal", "none"] = "full"

    def __post_init__(self) -> None:
        if not 1 <= self.attempts <= 100:
            raise ValueError(f"attempts: expected 1..100, got {self.attempts}")
        for name in ("base", "cap"):
            if not isinstance(getattr(self, name), Duration):
                raise ValueError(f"{name}: expected a Duration like '100ms', got {getattr(self, name)!r}")
        if self.cap < self.base:
            raise ValueError(f"cap: expected >= base ({self.base!r}), got {self.cap!r}")

    def ceiling(self, retry: int) -> float:
        """Upper bound in seconds of the wait before retry ``retry`` (1-based)."""
        exponent = min(retry - 1, 62)  # 2**62 ns is ~146 years: past any cap
        return min(self.cap.seconds, self.base.seconds * (1 << exponent))

    def delay(self, retry: int, rng: Callable[[], float] = random.random) -> float:
        """The wait in seconds before retry ``retry`` (1-based); ``rng`` returns [0, 1)."""
        ceiling = self.ceiling(retry)
        if self.jitter == "full":
            return ceiling * rng()
        if self.jitter == "equal":
            return ceiling / 2 + ceiling / 2 * rng()
        return ceiling


class RetriesExhaustedError(TransientStoreError):
    """Every attempt failed with a transient error; ``attempts`` were made."""

    def __init__(self, what: str, attempts: int, last: TransientStoreError) -> None:
        super().__init__(f"{what}: gave up after {attempts} attempt{'s' * (attempts != 1)}: {last}")
        self.what = what
        self.attempts = attempts
        self.last = last


OnRetry = Callable[[int, float, TransientStoreError], None]


def call_with_retry(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    what: str,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rng: Callable[[], float] = random.random,
) -> T:
    """Call ``fn`` until it returns, retrying ``TransientStoreError`` per ``policy``.

    ``on_retry(retry, delay_seconds, error)`` is called before each wait (metrics, logs);
    ``what`` names the operation in messages (``"put s3://bucket/key"``). Retries are
    logged at DEBUG and counted by ``on_retry``; an operation that succeeds after
    retries logs one INFO line; one that gives up raises for the caller to report (a
    transient outage is not a WARNING per attempt).
    """
    attempt = 1
    while True:
        try:
            result = fn()
        except TransientStoreError as exc:
            if attempt >= policy.attempts:
                raise RetriesExhaustedError(what, attempt, exc) from exc
            delay = policy.delay(attempt, rng)
            log.debug(
                "%s: attempt %d/%d failed (%s); retrying in %.3fs", what, attempt, policy.attempts, exc, delay
            )
            if on_retry is not None:
                on_retry(attempt, delay, exc)
            sleep(delay)
            attempt += 1
            continue
        if attempt > 1:
            log.info("%s: succeeded at attempt %d/%d", what, attempt, policy.attempts)
        return result
