"""Conditional writes that survive lost responses, for the network backends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp

from objstore._errors import (
    AlreadyExistsError,
    MultipartUploadError,
    PreconditionFailedError,
    TransientError,
    WriteOutcomeUnknownError,
)
from objstore._retry import RetryPolicy
from objstore._types import PutResult

__all__ = ["may_have_landed", "reconciled"]


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
    So every conflict and every transient failure is checked with ``written_by`` (which
    compares the per-write token stored in the object's metadata). ``once`` must send its
    request at most once (aiohttp resends a PUT by itself on a dropped pooled connection
    unless its body says it cannot be replayed), or a lost reply could go unseen here.

    When an attempt may have landed and the object now carries another writer's token, our
    write may have been applied and overwritten since, or never applied: an update then
    raises :class:`WriteOutcomeUnknownError` rather than "precondition failed", which a
    read-modify-write loop would take as "not applied" and apply its change twice. A create
    keeps :class:`AlreadyExistsError`: the object is another writer's either way.
    """
    if token is None:
        return await once()
    started, attempt = time.monotonic(), 0
    uncertain = False  # an attempt may have been applied although its reply was lost
    while True:
        attempt += 1
        try:
            return await once()
        except TransientError as exc:
            written = await written_by(token)  # it may have landed anyway
            if written is not None:
                return written
            uncertain = uncertain or may_have_landed(exc)
            delay = policy.backoff(attempt)
            elapsed = time.monotonic() - started
            if attempt > policy.max_retries or elapsed + delay >= policy.retry_timeout:
                exc.attempts, exc.elapsed = attempt, elapsed
                raise
            await asyncio.sleep(delay)
        except (AlreadyExistsError, PreconditionFailedError, MultipartUploadError) as exc:
            written = await written_by(token)
            if written is not None:
                return written
            if uncertain and not isinstance(exc, AlreadyExistsError):
                raise WriteOutcomeUnknownError(
                    f"the reply to a write of {exc.path!r} was lost and the object has been "
                    "changed by another writer since: the write may or may not have been applied",
                    path=exc.path,
                    status=exc.status,
                    code=exc.code,
                ) from exc
            raise


def may_have_landed(exc: TransientError) -> bool:
    """Whether a failed attempt may have been applied: its reply was lost (a timeout, a
    dropped connection) or was a server error that does not say. A connection never made,
    429 and 503 (the service refused the request) mean it was not."""
    if exc.status is not None:
        return exc.status >= 500 and exc.status != 503
    return not isinstance(exc.__cause__, aiohttp.ClientConnectorError)
