"""Conditional writes that survive lost responses, for the network backends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from objstore._errors import (
    AlreadyExistsError,
    MultipartUploadError,
    PreconditionFailedError,
    TransientError,
)
from objstore._retry import RetryPolicy
from objstore._types import PutResult

__all__ = ["reconciled"]


async def reconciled(
    policy: RetryPolicy,
    once: Callable[[], Awaitable[PutResult]],
    written_by: Callable[[str], Awaitable[PutResult | None]],
    token: str | None,
) -> PutResult:
    """Retry a conditional write; on a conflict, ask the object who wrote it.

    ``token`` is the write's token (``written_by(token)`` says whether the object carries it);
    ``None`` marks a write that needs no reconciling, sent once through ``once``.

    A create or update whose response is lost comes back "already exists", "precondition
    failed" or "no such upload" when retried, although our write landed (RELIABILITY B6).
    The retry may be ours or the HTTP client's: aiohttp resends a PUT by itself when a
    pooled connection drops. So every conflict and every transient failure is checked with
    ``written_by`` (which compares the per-write token stored in the object's metadata).
    """
    if token is None:
        return await once()
    started, attempt = time.monotonic(), 0
    while True:
        attempt += 1
        try:
            return await once()
        except TransientError as exc:
            written = await written_by(token)  # it may have landed anyway
            if written is not None:
                return written
            delay = policy.backoff(attempt)
            elapsed = time.monotonic() - started
            if attempt > policy.max_retries or elapsed + delay >= policy.retry_timeout:
                exc.attempts, exc.elapsed = attempt, elapsed
                raise
            await asyncio.sleep(delay)
        except (AlreadyExistsError, PreconditionFailedError, MultipartUploadError):
            written = await written_by(token)
            if written is not None:
                return written
            raise
