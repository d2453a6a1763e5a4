"""The retry policy: what is retried, how often, and what the final error says."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import pytest

import objstore
from objstore import NotFoundError, RetryPolicy, ServiceUnavailableError, ThrottledError
from objstore.backends._http import http_date, parse_retry_after, with_retry_after

FAST = RetryPolicy(max_retries=4, retry_timeout=10, backoff_initial=0.001, backoff_max=0.005)


class Flaky:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


async def test_transient_errors_are_retried() -> None:
    op = Flaky([ThrottledError("slow down"), ServiceUnavailableError("503"), TimeoutError()])
    assert await FAST.call(op) == "ok"
    assert op.calls == 4


async def test_each_attempt_gets_the_same_arguments() -> None:
    seen: list[tuple[str, int]] = []
    failures = [ServiceUnavailableError("503")]

    async def op(name: str, size: int) -> str:
        seen.append((name, size))
        if failures:
            raise failures.pop()
        return f"{name}:{size}"

    assert await FAST.call(op, "k", 3) == "k:3"
    assert seen == [("k", 3), ("k", 3)]


async def test_permanent_errors_are_not_retried() -> None:
    op = Flaky([NotFoundError("gone")])
    with pytest.raises(NotFoundError) as info:
        await FAST.call(op)
    assert op.calls == 1
    assert info.value.attempts == 1


async def test_non_idempotent_operations_are_not_retried() -> None:
    op = Flaky([ServiceUnavailableError("503")])
    with pytest.raises(ServiceUnavailableError):
        await FAST.call(op, idempotent=False)
    assert op.calls == 1


async def test_budget_exhausted_reports_attempts_and_elapsed() -> None:
    op = Flaky([ServiceUnavailableError(str(i)) for i in range(10)])
    with pytest.raises(ServiceUnavailableError) as info:
        await FAST.call(op)
    assert op.calls == 5
    assert info.value.attempts == 5
    assert info.value.elapsed is not None
    op = Flaky([TimeoutError() for _ in range(10)])
    with pytest.raises(objstore.ObjstoreTimeoutError):
        await FAST.call(op)


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(backoff_initial=0.1, backoff_max=1.0, backoff_base=2.0)
    caps = [max(policy.backoff(n) for _ in range(200)) for n in (1, 2, 3, 10)]
    assert caps[0] <= 0.1
    assert caps[1] <= 0.2
    assert caps[3] <= 1.0
    assert caps[3] > 0.5


def test_from_config() -> None:
    store = objstore.from_url("memory://")
    config = {"max_retries": 2, "retry_timeout": 5.0, "other": 1}
    assert RetryPolicy.from_config(config).max_retries == 2
    assert RetryPolicy.from_config(store.config).max_retries == 10


async def test_retry_after_lengthens_the_wait_up_to_backoff_max() -> None:
    policy = RetryPolicy(max_retries=5, retry_timeout=100, backoff_initial=0.001, backoff_max=2.0)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    asked = [1.5, 60.0, None]
    failures: list[Exception] = []
    for seconds in asked:
        error = ThrottledError("slow down")
        error.retry_after = seconds
        failures.append(error)
    assert await policy.call(Flaky(failures), sleep=sleep) == "ok"
    assert waits[:2] == [1.5, 2.0]  # as asked; capped
    assert waits[2] <= 0.004  # backoff alone


async def test_retry_after_past_the_deadline_gives_up() -> None:
    policy = RetryPolicy(max_retries=5, retry_timeout=1.0, backoff_initial=0.001, backoff_max=5.0)
    error = ServiceUnavailableError("busy")
    error.retry_after = 3.0
    with pytest.raises(ServiceUnavailableError) as info:
        await policy.call(Flaky([error]))
    assert info.value.attempts == 1


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("3", 3.0), ("0", 0.0), ("1.5", 1.5), ("-1", None), ("nan", None), ("inf", None),
     ("soon", None), ("", None)],
)  # fmt: skip
def test_retry_after_values(value: str, seconds: float | None) -> None:
    assert parse_retry_after(value) == seconds


def test_retry_after_as_a_date() -> None:
    ahead = parse_retry_after(http_date(datetime.now(UTC) + timedelta(seconds=30)))
    assert ahead is not None
    assert 28 <= ahead <= 30
    assert parse_retry_after(http_date(datetime.now(UTC) - timedelta(hours=1))) == 0.0


def test_retry_after_is_kept_by_transient_errors_only_and_pickles() -> None:
    throttled = with_retry_after(ThrottledError("slow"), {"Retry-After": "7"})
    assert isinstance(throttled, ThrottledError)
    assert throttled.retry_after == 7.0
    assert pickle.loads(pickle.dumps(throttled)).retry_after == 7.0
    missing = with_retry_after(NotFoundError("gone"), {"Retry-After": "7"})
    assert not hasattr(missing, "retry_after")
    assert with_retry_after(ThrottledError("slow"), {}).retry_after is None  # type: ignore[attr-defined]
