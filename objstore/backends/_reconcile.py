"""Conditional writes that survive lost responses, for the network backends."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TypeAlias, TypeVar

import aiohttp

from objstore._errors import (
    AlreadyExistsError,
    ConcurrentModificationError,
    MultipartUploadError,
    NotFoundError,
    ObjstoreError,
    PreconditionFailedError,
    TransientError,
    WriteOutcomeUnknownError,
)
from objstore._retry import RetryPolicy
from objstore._types import PutResult

__all__ = [
    "Carried",
    "copied_if_absent",
    "may_have_landed",
    "reconciled",
    "settled_by",
    "source_changed",
    "still_there",
    "write_token",
]

T = TypeVar("T")

Carried: TypeAlias = tuple[str | None, PutResult]
"""What an object says of the write that made it: the write token it carries (``None``: none)
and its identity."""


def write_token(key: str, replaces: str | None = None) -> str:
    """A fresh token for one conditional write of ``key``.

    An update names the version it is conditioned on (``replaces``: a GCS generation, an Azure
    ETag; never a content hash, which can recur): the token then ends with a digest of the key
    and that version. Only one conditional write can replace a version, so an object whose
    token ends the same way as ours but is not ours proves that our write was not applied.
    The key is in the digest so that a copy of another object, which carries that object's
    token, cannot pass for such proof.
    """
    token = secrets.token_hex(12)
    if replaces is None:
        return token
    digest = hashlib.blake2b(f"{key}\0{replaces}".encode(), digest_size=8).hexdigest()
    return f"{token}-{digest}"


def settled_by(
    successor: Callable[[str], Awaitable[Carried | None]], replaces: str | None, token: str | None
) -> Callable[[], Awaitable[Carried | None]] | None:
    """For an update conditioned on version ``replaces``: the look at the object's history
    that ``reconciled`` takes when the update's outcome would otherwise stay unknown.
    ``successor(replaces)`` gives the write that replaced that version (``None``: the
    history does not show it). ``None`` for a write that is not an update."""
    if replaces is None or token is None:
        return None
    base, ours = replaces, token

    async def settled() -> Carried | None:
        try:
            found = await successor(base)
        except ObjstoreError:  # cannot tell: the outcome stays unknown
            return None
        return None if found is None else _successor_carried(found, ours)

    return settled


def _successor_carried(successor: Carried, token: str | None) -> Carried:
    """What the write that replaced the version an update of ``token`` was conditioned on says
    of it, found in the object's history: ours (it carries ``token``: applied), or another
    write, which proves ours was not applied whatever token it carries (none, if another
    client made it) — given as a token that names the same version, as
    :func:`_superseded` reads it."""
    found, identity = successor
    if token is None or found == token:
        return successor
    return f"another-{token.partition('-')[2]}", identity


def _superseded(seen: Carried | None, token: str) -> bool:
    """Whether the object was written by another write that replaced the version ``token``'s
    write was conditioned on (see :func:`write_token`): then ours was not applied."""
    if seen is None or seen[0] is None or seen[0] == token:
        return False
    _, dash, base = token.partition("-")
    return bool(dash) and seen[0].partition("-")[2] == base


async def reconciled(
    policy: RetryPolicy,
    once: Callable[[], Awaitable[PutResult]],
    carried: Callable[[], Awaitable[Carried | None]],
    token: str | None,
    history: Callable[[], Awaitable[Carried | None]] | None = None,
) -> PutResult:
    """Retry a conditional write; on a conflict, ask the object who wrote it.

    ``token`` is the write's token (from :func:`write_token`, stored in the object's metadata);
    ``carried()`` reads the token the object carries now, and its identity (``None`` when it
    cannot be read). A ``token`` of ``None`` marks a write that needs no reconciling, sent once
    through ``once``.

    A create or update whose response is lost comes back "already exists", "precondition
    failed" or "no such upload" when retried, although our write landed (RELIABILITY B6).
    So every conflict and every transient failure is checked against the object's token.
    ``once`` must send its request at most once (aiohttp resends a PUT by itself on a dropped
    pooled connection unless its body says it cannot be replayed), or a lost reply could go
    unseen here.

    When an attempt may have landed and the object now carries another writer's token, our
    write may have been applied and overwritten since, or never applied: an update then
    raises :class:`WriteOutcomeUnknownError` rather than "precondition failed", which a
    read-modify-write loop would take as "not applied" and apply its change twice — unless the
    other writer's token shows that it replaced the very version ours was conditioned on,
    which proves ours was not applied. A create keeps :class:`AlreadyExistsError`: the object
    is another writer's either way.

    ``history()``, where the object keeps its versions, gives the write that replaced the
    version an update was conditioned on (see :func:`settled_by`; ``None``: the
    history does not show it). It is asked only when the outcome would otherwise stay
    unknown, and settles it: ours was applied, or certainly not.
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
            seen = await carried()  # it may have landed anyway
            if seen is not None and seen[0] == token:
                return seen[1]
            if _superseded(seen, token):
                raise _not_applied(exc) from exc
            uncertain = uncertain or may_have_landed(exc)
            delay = policy.pause(exc, attempt, started)
            if delay is None:
                found = await history() if uncertain and history is not None else None
                if found is not None and found[0] == token:
                    return found[1]  # it was applied after all
                raise
            await asyncio.sleep(delay)
        except (AlreadyExistsError, PreconditionFailedError, MultipartUploadError) as exc:
            seen = await carried()
            if seen is not None and seen[0] == token:
                return seen[1]
            if _superseded(seen, token):
                raise  # another write replaced the version ours needed: ours was not applied
            if uncertain and not isinstance(exc, AlreadyExistsError) and history is not None:
                found = await history()
                if found is not None and found[0] == token:
                    return found[1]
                if _superseded(found, token):
                    raise _not_applied(exc) from exc
            if uncertain and not isinstance(exc, AlreadyExistsError):
                raise _unknown(
                    exc,
                    f"the reply to a write of {exc.path!r} was lost and the object has been "
                    "changed by another writer since: the write may or may not have been applied",
                ) from exc
            raise


async def copied_if_absent(
    policy: RetryPolicy,
    once: Callable[[], Awaitable[T]],
    carried: Callable[[], Awaitable[tuple[str | None, T] | None]] | None = None,
    token: str | None = None,
) -> T:
    """Retry a server-side copy that must not overwrite (``once`` sends it at most once and
    raises :class:`AlreadyExistsError` when the destination exists).

    An attempt the service refused (429, 503, no connection) was not applied, so trying
    again is safe; after one that may have landed, "already exists" may be our own copy.
    Where the copy carries a write token (``token``, put in the destination's metadata in
    place of the source's), ``carried()`` reads the token the destination carries, and the
    destination as ``once`` would have given it (``None``: cannot tell): our token means the
    copy was applied, any other (or none) that the destination is another writer's, as for
    a create. Without a token, or when the destination cannot be read, the outcome is
    :class:`WriteOutcomeUnknownError`.
    """
    look = carried if token is not None else None
    started, attempt = time.monotonic(), 0
    uncertain = False
    while True:
        attempt += 1
        try:
            return await once()
        except TransientError as exc:
            uncertain = uncertain or may_have_landed(exc)
            delay = policy.pause(exc, attempt, started)
            if delay is None:
                seen = await look() if uncertain and look is not None else None
                if seen is not None and seen[0] == token:
                    return seen[1]  # it was applied after all
                raise
            await asyncio.sleep(delay)
        except AlreadyExistsError as exc:
            if not uncertain:
                raise
            seen = await look() if look is not None else None
            if seen is not None:
                if seen[0] == token:
                    return seen[1]
                raise  # another writer's object: ours was not applied
            raise _unknown(
                exc,
                f"the reply to a copy onto {exc.path!r} was lost and it exists now: it may be "
                "this copy or an object that was there before",
            ) from exc


def source_changed(src: str, exc: ObjstoreError) -> ConcurrentModificationError:
    """The error of a copy whose source changed after its attributes were read (the copy,
    pinned to them, wrote nothing)."""
    return ConcurrentModificationError(
        f"{src!r} changed while it was being copied; nothing was written",
        path=src, status=exc.status, code=exc.code,
    )  # fmt: skip


async def still_there(head: Callable[[], Awaitable[object]]) -> bool:
    """Whether the object ``head()`` looks at exists (``True`` when that cannot be told)."""
    try:
        await head()
    except NotFoundError:
        return False
    except ObjstoreError:
        return True
    return True


def _unknown(exc: ObjstoreError, message: str) -> WriteOutcomeUnknownError:
    """The error of a write whose outcome ``exc``, seen on a retry, cannot settle."""
    return WriteOutcomeUnknownError(message, path=exc.path, status=exc.status, code=exc.code)


def _not_applied(exc: ObjstoreError) -> PreconditionFailedError:
    """The error of an update that another write certainly overtook."""
    return PreconditionFailedError(
        f"{exc.path!r} was changed by another writer: the version this update was "
        "conditioned on has been replaced (this write was not applied)",
        path=exc.path,
        status=412,
    )


def may_have_landed(exc: TransientError) -> bool:
    """Whether a failed attempt may have been applied: its reply was lost (a timeout, a
    dropped connection) or was a server error that does not say. A connection never made,
    429 and 503 (the service refused the request) mean it was not."""
    if exc.status is not None:
        return exc.status >= 500 and exc.status != 503
    return not isinstance(exc.__cause__, aiohttp.ClientConnectorError)
