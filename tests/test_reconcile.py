"""Conditional writes after lost replies (``objstore.backends._reconcile``): what a retried
write reports, given what its attempts saw and whose token the object carries."""

from __future__ import annotations

import time
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
from objstore._errors import ObjstoreError, TransientError
from objstore._retry import RetryPolicy
from objstore.backends._reconcile import (
    copied_if_absent,
    may_have_landed,
    reconciled,
    settled_by,
    write_token,
)

FAST = RetryPolicy(max_retries=4, retry_timeout=10, backoff_initial=0.001, backoff_max=0.002)
OURS = PutResult(e_tag='"ours"')
THEIRS = PutResult(e_tag='"theirs"')


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


def _carrying(token: str | None) -> Callable[[], object]:
    """``carried``: the object carries ``token`` (``None``: no token, another writer's)."""

    async def carried() -> tuple[str | None, PutResult]:
        return token, OURS if token is not None else THEIRS

    return carried


async def test_a_lost_reply_then_our_token_is_a_success() -> None:
    once = _attempts(_lost_reply(), PreconditionFailedError("stale", path="k"))
    assert await reconciled(FAST, once, _carrying("t1"), "t1") == OURS  # type: ignore[arg-type]


async def test_a_lost_reply_then_a_replacement_of_our_base_version_is_a_certain_conflict() -> None:
    # only one conditional write can replace version "g7" of "k": the object carries another
    # writer's token that names it, so ours was not applied, reply lost or not
    ours, theirs = write_token("k", "g7"), write_token("k", "g7")
    assert ours != theirs
    once = _attempts(_lost_reply(), PreconditionFailedError("stale", path="k", status=412))
    with pytest.raises(PreconditionFailedError) as info:
        await reconciled(FAST, once, _carrying(theirs), ours)  # type: ignore[arg-type]
    assert type(info.value) is PreconditionFailedError


@pytest.mark.parametrize(
    "theirs",
    [
        lambda: write_token("k", "g8"),  # replaced a later version: ours may be the one between
        lambda: write_token("j", "g7"),  # a copy of another key's object, same version number
        lambda: write_token("k"),  # a create: the object was deleted and made again
        lambda: None,  # written by a client that leaves no token
    ],
    ids=["later version", "other key", "no version", "no token"],
)
async def test_a_lost_reply_then_any_other_change_stays_unknown(
    theirs: Callable[[], str | None],
) -> None:
    once = _attempts(_lost_reply(), PreconditionFailedError("stale", path="k", status=412))
    with pytest.raises(WriteOutcomeUnknownError):
        await reconciled(FAST, once, _carrying(theirs()), write_token("k", "g7"))  # type: ignore[arg-type]


def test_a_write_token_is_fresh_and_names_only_a_digest_of_key_and_version() -> None:
    tokens = {write_token("k", "1712345678901234") for _ in range(100)}
    assert len(tokens) == 100
    assert len({t.partition("-")[2] for t in tokens}) == 1
    assert all("1712345678901234" not in t and t.isascii() for t in tokens)
    assert "-" not in write_token("k")


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


def _history(successor: tuple[str | None, PutResult] | None) -> Callable[[str], object]:
    """``successor``: the write a versioned object's history shows replacing the base."""

    async def look(replaces: str) -> tuple[str | None, PutResult] | None:
        assert replaces == "g7"
        return successor

    return look


@pytest.mark.parametrize(
    ("successor", "outcome"),
    [
        ("ours", OURS),  # our write replaced g7: applied, however far the object moved since
        ("theirs", PreconditionFailedError),  # another write replaced g7: ours was not applied
        ("tokenless", PreconditionFailedError),  # so did one by a client that leaves no token
        ("none", WriteOutcomeUnknownError),  # the history does not show g7: cannot tell
    ],
)
async def test_history_settles_what_would_stay_unknown(successor: str, outcome: object) -> None:
    ours = write_token("k", "g7")
    found = {"ours": (ours, OURS), "theirs": (write_token("k", "g7"), THEIRS),
             "tokenless": (None, THEIRS), "none": None}[successor]  # fmt: skip
    history = settled_by(_history(found), "g7", ours)  # type: ignore[arg-type]
    once = _attempts(_lost_reply(), PreconditionFailedError("stale", path="k", status=412))
    carried = _carrying(write_token("k", "g9"))  # the object has moved well past g7
    if outcome is OURS:
        assert await reconciled(FAST, once, carried, ours, history) == OURS  # type: ignore[arg-type]
        return
    with pytest.raises(outcome) as info:  # type: ignore[call-overload]
        await reconciled(FAST, once, carried, ours, history)  # type: ignore[arg-type]
    if outcome is PreconditionFailedError:
        assert "not applied" in str(info.value)


async def test_history_settles_a_write_whose_retries_all_failed() -> None:
    # every attempt's reply lost: the history shows ours replaced g7, so it was applied
    ours = write_token("k", "g7")
    history = settled_by(_history((ours, OURS)), "g7", ours)  # type: ignore[arg-type]
    once = _attempts(*[_lost_reply() for _ in range(5)])
    carried = _carrying(write_token("k", "g9"))
    assert await reconciled(FAST, once, carried, ours, history) == OURS  # type: ignore[arg-type]
    assert settled_by(_history(None), None, ours) is None  # type: ignore[arg-type]  # not an update


# ---- copies that must not overwrite ----------------------------------------------------------


@pytest.mark.parametrize(
    "refused",
    [lambda: ServiceUnavailableError("busy", path="k", status=503), _never_connected],
    ids=["503", "never connected"],
)
async def test_a_copy_is_tried_again_after_a_refusal_and_its_conflict_stays_certain(
    refused: Callable[[], ObjstoreError],
) -> None:
    assert await copied_if_absent(FAST, _attempts(refused(), OURS)) == OURS  # type: ignore[arg-type]
    once = _attempts(refused(), refused(), AlreadyExistsError("exists", path="k"))
    with pytest.raises(AlreadyExistsError) as info:
        await copied_if_absent(FAST, once)  # type: ignore[arg-type]
    assert type(info.value) is AlreadyExistsError


async def test_a_copy_that_exists_after_a_lost_reply_is_an_unknown_outcome() -> None:
    assert await copied_if_absent(FAST, _attempts(_lost_reply(), OURS)) == OURS  # type: ignore[arg-type]
    once = _attempts(_lost_reply(), AlreadyExistsError("exists", path="k", status=409))
    with pytest.raises(WriteOutcomeUnknownError) as info:
        await copied_if_absent(FAST, once)  # type: ignore[arg-type]
    assert info.value.path == "k"
    assert "may be this copy" in str(info.value)


async def test_a_copy_gives_up_within_the_budget() -> None:
    once = _attempts(*[ServiceUnavailableError("busy", path="k", status=503) for _ in range(5)])
    with pytest.raises(ServiceUnavailableError) as info:
        await copied_if_absent(FAST, once)  # type: ignore[arg-type]
    assert info.value.attempts == 5


async def test_reconciled_writes_wait_as_long_as_the_service_asks() -> None:
    slow = RetryPolicy(max_retries=2, retry_timeout=10, backoff_initial=0.001, backoff_max=0.3)
    throttled = ServiceUnavailableError("slow down", path="k", status=503)
    throttled.retry_after = 0.2
    started = time.monotonic()
    assert await reconciled(slow, _attempts(throttled, OURS), _carrying(None), "t1") == OURS  # type: ignore[arg-type]
    assert time.monotonic() - started >= 0.2


@pytest.mark.parametrize(
    ("found", "outcome"),
    [
        ("ours", OURS),  # the destination carries this copy's token: it was applied
        ("theirs", AlreadyExistsError),  # another copy's token: another writer's object
        ("tokenless", AlreadyExistsError),  # none: written otherwise, certainly not this copy
        ("unreadable", WriteOutcomeUnknownError),  # cannot look: cannot tell
    ],
)
async def test_a_copy_that_finds_its_destination_asks_whose_it_is(
    found: str, outcome: object
) -> None:
    ours = write_token("k")
    seen = {"ours": (ours, OURS), "theirs": (write_token("k"), THEIRS),
            "tokenless": (None, THEIRS), "unreadable": None}[found]  # fmt: skip

    async def carried() -> tuple[str | None, PutResult] | None:
        return seen

    once = _attempts(_lost_reply(), AlreadyExistsError("exists", path="k", status=409))
    if outcome is OURS:
        assert await copied_if_absent(FAST, once, carried, ours) == OURS  # type: ignore[arg-type]
    else:
        with pytest.raises(outcome) as info:  # type: ignore[call-overload]
            await copied_if_absent(FAST, once, carried, ours)  # type: ignore[arg-type]
        assert (type(info.value) is AlreadyExistsError) is (outcome is AlreadyExistsError)
    # a conflict after refusals only is certain without a look; a copy whose every reply
    # was lost is settled by one
    refused = _attempts(ServiceUnavailableError("busy", path="k", status=503),
                        AlreadyExistsError("exists", path="k", status=409))  # fmt: skip
    with pytest.raises(AlreadyExistsError) as info:
        await copied_if_absent(FAST, refused, carried, ours)  # type: ignore[arg-type]
    assert type(info.value) is AlreadyExistsError
    lost = _attempts(*[_lost_reply() for _ in range(5)])
    if outcome is OURS:
        assert await copied_if_absent(FAST, lost, carried, ours) == OURS  # type: ignore[arg-type]
    else:
        with pytest.raises(TransientError):
            await copied_if_absent(FAST, lost, carried, ours)  # type: ignore[arg-type]
