"""The retry policy: what is retried, how often, and what the final error says."""

from __future__ import annotations

import pytest

import objstore
from objstore import NotFoundError, RetryPolicy, ServiceUnavailableError, ThrottledError

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
