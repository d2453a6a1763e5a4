"""The one retry policy every network backend uses.

Transient failures (:class:`TransientError`: 5xx, 429, resets, timeouts) are retried with
exponential backoff and full jitter, or after the service's ``Retry-After`` when it is longer
(up to ``backoff_max``), until ``max_retries`` or the ``retry_timeout`` deadline;
only idempotent operations are retried unless the caller reconciles. The error finally raised
carries ``attempts`` and ``elapsed``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from objstore._errors import ObjstoreError, ObjstoreTimeoutError, TransientError
from objstore._record import record

__all__ = ["RetryPolicy"]

T = TypeVar("T")


@record
class RetryPolicy:
    """Backoff and budget of retries (the client keys ``max_retries``, ``retry_timeout``,
    ``backoff_initial``, ``backoff_max``, ``backoff_base``)."""

    max_retries: int = 10
    retry_timeout: float = 180.0
    backoff_initial: float = 0.1
    backoff_max: float = 15.0
    backoff_base: float = 2.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RetryPolicy:
        """Build the policy from a resolved store configuration."""
        fields = ("max_retries", "retry_timeout", "backoff_initial", "backoff_max", "backoff_base")
        return cls(**{f: config[f] for f in fields if f in config})

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Return the delay before retry number ``attempt`` (1-based), with full jitter."""
        cap = min(self.backoff_max, self.backoff_initial * self.backoff_base ** (attempt - 1))
        return (rng or random).uniform(0.0, cap)

    def pause(
        self, exc: ObjstoreError, attempt: int, started: float, *, retry: bool = True
    ) -> float | None:
        """How long to wait before trying again after ``exc`` ended attempt ``attempt`` of a
        run begun at ``started`` (``time.monotonic()``): the backoff, or the service's
        ``Retry-After`` when longer (up to ``backoff_max``). ``None`` when ``exc`` is not to be
        retried (not transient, ``retry`` false, or the budget spent); ``exc`` then carries
        ``attempts`` and ``elapsed``."""
        now = time.monotonic()
        if retry and isinstance(exc, TransientError):
            delay = self.backoff(attempt)
            if exc.retry_after is not None:
                delay = max(delay, min(exc.retry_after, self.backoff_max))
            if attempt <= self.max_retries and now + delay < started + self.retry_timeout:
                return delay
        exc.attempts, exc.elapsed = attempt, now - started
        return None

    async def call(
        self,
        operation: Callable[..., Awaitable[T]],
        *args: Any,
        idempotent: bool = True,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> T:
        """Run ``operation(*args)`` until it succeeds, fails for good, or the budget is spent.

        Passing the arguments, rather than a closure over them, spares each request a function
        and a cell per variable: garbage-collector-tracked objects whose churn paces the
        collections of a busy process (see ``docs/design.md``).

        Raises:
            ObjstoreError: the last failure, with ``attempts`` and ``elapsed`` set.
        """
        if sleep is None:
            import asyncio

            sleep = asyncio.sleep
        start = time.monotonic()
        deadline = start + self.retry_timeout
        attempt = 0
        while True:
            attempt += 1
            try:
                return await operation(*args)
            except ObjstoreError as exc:
                delay = self.pause(exc, attempt, start, retry=idempotent)
                if delay is None:
                    raise
                await sleep(delay)
            except TimeoutError as exc:
                now = time.monotonic()
                if not idempotent or attempt > self.max_retries or now >= deadline:
                    raise ObjstoreTimeoutError(
                        "operation timed out", attempts=attempt, elapsed=now - start
                    ) from exc
                await sleep(self.backoff(attempt))
