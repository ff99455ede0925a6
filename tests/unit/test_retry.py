"""ticktape.sinks.objectstore.retry: exponential backoff with jitter, bounded, only for transient errors."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence

import msgspec
import pytest

from ticktape.schemas.durations import Duration, dec_hook
from ticktape.schemas.errors import ArchiveError
from ticktape.sinks.objectstore.base import TransientStoreError
from ticktape.sinks.objectstore.retry import RetriesExhaustedError, RetryPolicy, call_with_retry


def flaky(failures: Sequence[Exception], result: str = "ok") -> tuple[Callable[[], str], list[int]]:
    """A function raising ``failures`` in order, then returning ``result``; and its call log."""
    calls: list[int] = []

    def fn() -> str:
        calls.append(len(calls) + 1)
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        return result

    return fn, calls


def test_defaults() -> None:
    policy = RetryPolicy()
    assert (policy.attempts, policy.base, policy.cap, policy.jitter) == (
        6,
        Duration.parse("100ms"),
        Duration.parse("10s"),
        "full",
    )
    assert [policy.ceiling(n) for n in range(1, 10)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0]
    )
    assert policy.ceiling(10_000) == 10.0  # no overflow


def test_full_jitter_delays_follow_the_capped_exponential() -> None:
    policy = RetryPolicy(attempts=8, base=Duration.parse("100ms"), cap=Duration.parse("1s"))
    fn, calls = flaky([TransientStoreError(f"boom {i}") for i in range(7)])
    slept: list[float] = []
    assert call_with_retry(fn, policy, what="op", sleep=slept.append, rng=lambda: 0.5) == "ok"
    assert calls == list(range(1, 9))
    assert slept == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.5, 0.5, 0.5])


def test_full_jitter_stays_within_zero_and_the_ceiling() -> None:
    policy = RetryPolicy(attempts=12, base=Duration.parse("50ms"), cap=Duration.parse("2s"))
    rng = random.Random(7)
    for _ in range(200):
        fn, _calls = flaky([TransientStoreError("x")] * 11)
        slept: list[float] = []
        call_with_retry(fn, policy, what="op", sleep=slept.append, rng=rng.random)
        for n, delay in enumerate(slept, start=1):
            assert 0.0 <= delay <= policy.ceiling(n) <= 2.0
    assert policy.delay(3, rng=lambda: 0.0) == 0.0
    assert policy.delay(3, rng=lambda: 0.999999) == pytest.approx(0.2, rel=1e-5)


def test_equal_and_no_jitter() -> None:
    equal = RetryPolicy(base=Duration.parse("1s"), cap=Duration.parse("4s"), jitter="equal")
    assert [equal.delay(n, rng=lambda: 0.0) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 2.0]
    assert [equal.delay(n, rng=lambda: 1.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 4.0]
    none = RetryPolicy(base=Duration.parse("1s"), cap=Duration.parse("4s"), jitter="none")
    assert [none.delay(n, rng=lambda: 0.3) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 4.0]


def test_success_after_transient_failures_calls_on_retry() -> None:
    errors = [TransientStoreError("reset"), TransientStoreError("503")]
    fn, calls = flaky(errors, "done")
    seen: list[tuple[int, float, Exception]] = []
    result = call_with_retry(
        fn,
        RetryPolicy(),
        what="put s3://b/k",
        on_retry=lambda n, d, e: seen.append((n, d, e)),
        sleep=lambda _s: None,
        rng=lambda: 1.0,
    )
    assert result == "done"
    assert calls == [1, 2, 3]
    assert [(n, e) for n, _d, e in seen] == [(1, errors[0]), (2, errors[1])]
    assert [d for _n, d, _e in seen] == pytest.approx([0.1, 0.2])


def test_exhaustion_says_how_many_attempts_were_made() -> None:
    errors = [TransientStoreError(f"outage {i}") for i in range(6)]
    fn, calls = flaky(errors)
    slept: list[float] = []
    with pytest.raises(RetriesExhaustedError, match=r"put k: gave up after 6 attempts: outage 5") as info:
        call_with_retry(fn, RetryPolicy(), what="put k", sleep=slept.append, rng=lambda: 1.0)
    assert calls == [1, 2, 3, 4, 5, 6]
    assert len(slept) == 5  # no wait after the last attempt
    assert sum(slept) == pytest.approx(0.1 + 0.2 + 0.4 + 0.8 + 1.6)
    assert info.value.attempts == 6
    assert info.value.__cause__ is errors[-1]
    assert isinstance(info.value, TransientStoreError)  # still transient: a later run may succeed


def test_single_attempt_policy() -> None:
    fn, calls = flaky([TransientStoreError("x")])
    with pytest.raises(RetriesExhaustedError, match="after 1 attempt: x"):
        call_with_retry(fn, RetryPolicy(attempts=1), what="op", sleep=lambda _s: pytest.fail("slept"))
    assert calls == [1]


@pytest.mark.parametrize("error", [ArchiveError("AccessDenied"), ValueError("bug"), KeyboardInterrupt()])
def test_non_transient_errors_are_not_retried(error: BaseException) -> None:
    calls: list[int] = []

    def fn() -> None:
        calls.append(1)
        raise error

    with pytest.raises(type(error)) as info:
        call_with_retry(fn, RetryPolicy(), what="op", sleep=lambda _s: pytest.fail("slept"))
    assert info.value is error
    assert calls == [1]


def test_policy_from_config() -> None:
    raw = {"attempts": 3, "base": "50ms", "cap": 2.5, "jitter": "equal"}
    policy = msgspec.convert(raw, RetryPolicy, dec_hook=dec_hook)
    assert policy == RetryPolicy(3, Duration.parse("50ms"), Duration.parse("2500ms"), "equal")
    for bad in ({"attempts": 0}, {"base": "2s", "cap": "1s"}, {"retries": 3}, {"jitter": "some"}):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(bad, RetryPolicy, dec_hook=dec_hook)
    with pytest.raises(ValueError, match="Duration"):
        RetryPolicy(base=100)  # type: ignore[arg-type]  # a plain int is not a Duration


def test_retries_are_not_a_warning_each(caplog: pytest.LogCaptureFixture) -> None:
    """Issue 13 item 14: the archive logged a WARNING per retry of a transient outage."""
    fn, calls = flaky([TransientStoreError("503 slow down")] * 3)
    policy = RetryPolicy(attempts=6)
    with caplog.at_level(logging.DEBUG, logger="ticktape"):
        assert call_with_retry(fn, policy, what="put s3://b/k", sleep=lambda s: None) == "ok"
    assert calls == [1, 2, 3, 4]
    assert [r.levelno for r in caplog.records] == [logging.DEBUG] * 3 + [logging.INFO]
    assert caplog.records[-1].getMessage() == "put s3://b/k: succeeded at attempt 4/6"
