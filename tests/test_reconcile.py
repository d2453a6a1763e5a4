"""Conditional writes after lost replies (``objstore.backends._reconcile``): what a retried
write reports, given what its attempts saw and whose token the object carries."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import pytest

from objstore import (
    AlreadyExistsError,
    ObjstoreConnectionError,
    PreconditionFailedError,
    PutResult,
    ServiceUnavailableError,
    WriteOutcomeUnknownError,
)
from objstore._errors import ObjstoreError
from objstore._retry import RetryPolicy
from objstore.backends._reconcile import may_have_landed, reconciled

FAST = RetryPolicy(max_retries=4, retry_timeout=10, backoff_initial=0.001, backoff_max=0.002)
OURS = PutResult(e_tag='"ours"')


def _lost_reply() -> ObjstoreError:
    error = ObjstoreConnectionError("reset after the request was sent", path="k")
    error.__cause__ = aiohttp.ServerDisconnectedError()
    return error


def _never_connected() -> ObjstoreError:
    error = ObjstoreConnectionError("refused", path="k")
    error.__cause__ = aiohttp.ClientConnectorError(
        aiohttp.client_reqrep.ConnectionKey("h", 1, False, True, None, None, None),
        OSError(111, "refused"),
    )
    return error


def _attempts(*outcomes: ObjstoreError | PutResult) -> Callable[[], object]:
    """``once``: each call gives the next outcome (raises it, or returns it)."""
    queue = list(outcomes)

    async def once() -> PutResult:
        outcome = queue.pop(0)
        if isinstance(outcome, ObjstoreError):
            raise outcome
        return outcome

    return once


def _carrying(token: str | None) -> Callable[[str], object]:
    """``written_by``: the object carries ``token`` (``None``: another writer's)."""

    async def written_by(asked: str) -> PutResult | None:
        return OURS if asked == token else None

    return written_by


async def test_a_lost_reply_then_our_token_is_a_success() -> None:
    once = _attempts(_lost_reply(), PreconditionFailedError("stale", path="k"))
    assert await reconciled(FAST, once, _carrying("t1"), "t1") == OURS  # type: ignore[arg-type]


async def test_a_lost_reply_then_another_writers_object_is_an_unknown_outcome() -> None:
    once = _attempts(_lost_reply(), PreconditionFailedError("stale", path="k", status=412))
    with pytest.raises(WriteOutcomeUnknownError, match="may or may not") as info:
        await reconciled(FAST, once, _carrying(None), "t1")  # type: ignore[arg-type]
    assert not isinstance(info.value, PreconditionFailedError)  # a CAS loop must not retry it
    assert (info.value.path, info.value.status) == ("k", 412)
    assert isinstance(info.value.__cause__, PreconditionFailedError)


@pytest.mark.parametrize(
    "refused",
    [
        lambda: ServiceUnavailableError("slow down", path="k", status=503),
        _never_connected,
    ],
    ids=["503", "never connected"],
)
async def test_a_refused_attempt_leaves_a_conflict_certain(
    refused: Callable[[], ObjstoreError],
) -> None:
    once = _attempts(refused(), PreconditionFailedError("stale", path="k"))
    with pytest.raises(PreconditionFailedError) as info:
        await reconciled(FAST, once, _carrying(None), "t1")  # type: ignore[arg-type]
    assert type(info.value) is PreconditionFailedError


async def test_a_create_keeps_already_exists_after_a_lost_reply() -> None:
    once = _attempts(_lost_reply(), AlreadyExistsError("exists", path="k"))
    with pytest.raises(AlreadyExistsError):
        await reconciled(FAST, once, _carrying(None), "t1")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "landed"), [(None, True), (500, True), (502, True), (503, False), (429, False)]
)
def test_which_failures_may_have_landed(status: int | None, landed: bool) -> None:
    error = ServiceUnavailableError("x", status=status) if status else _lost_reply()
    assert may_have_landed(error) is landed  # type: ignore[arg-type]
    assert may_have_landed(_never_connected()) is False  # type: ignore[arg-type]
