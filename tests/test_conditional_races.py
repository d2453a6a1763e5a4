"""Conditional writes under contention (RELIABILITY B6), on each network backend through a fault
proxy: rounds of 64 concurrent create-if-absent puts on one key, clean and with replies lost
after the server applied the write; a counter incremented by concurrent If-Match updates, with
refusals (exact count) and with lost replies (never counted twice); on S3, 409
``ConditionalRequestConflict`` answers; copies that must not overwrite, refused and with their
replies lost. Each round has exactly one reported winner, and it is the real writer.
``OBJSTORE_SOAK=nightly`` runs B6's full size (100 rounds, 32 workers x 50 increments)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter
from typing import Any

import pytest
from aiohttp import web

import objstore
from objstore import (
    AlreadyExistsError,
    PreconditionFailedError,
    UpdateVersion,
    WriteOutcomeUnknownError,
)
from objstore.testing.emulators import GCSServer, S3Server
from objstore.testing.faultproxy import FaultProxy, ProxiedBackend, Rule

NIGHTLY = os.environ.get("OBJSTORE_SOAK") == "nightly"
RACERS, ROUNDS = 64, (100 if NIGHTLY else 8)
SEAWEED_RACERS, SEAWEED_ROUNDS = (64, 10) if NIGHTLY else (8, 3)
"""SeaweedFS answers conditional PUTs of one key one by one, a second apart (64 racers: the
last answer after ~20 s), so its rounds are fewer and, on PR runs, smaller."""
WORKERS, INCREMENTS = (32, 50) if NIGHTLY else (12, 8)
RETRIES = {"backoff_initial": "5ms", "backoff_max": "50ms", "max_retries": "10"}


async def _race(store: object, key: str, racers: int) -> tuple[list[int], Counter[str]]:
    """``racers`` creates of ``key`` at once; return the racers that were told they won,
    and how the others were told they lost."""
    losses: Counter[str] = Counter()

    async def attempt(racer: int) -> bool:
        try:
            await store.put(key, f"racer {racer}".encode(), mode="create")  # type: ignore[attr-defined]
        except AlreadyExistsError:
            losses["AlreadyExistsError"] += 1
            return False
        return True

    won = await asyncio.gather(*(attempt(r) for r in range(racers)))
    return [r for r, w in enumerate(won) if w], losses


async def _check_rounds(store: object, label: str, backend: str) -> int:
    """Race rounds on fresh keys; return how many rounds ran."""
    racers, rounds = (SEAWEED_RACERS, SEAWEED_ROUNDS) if backend == "s3" else (RACERS, ROUNDS)
    for round_ in range(rounds):
        key = f"{label}/{round_}"
        winners, losses = await _race(store, key, racers)
        assert len(winners) == 1, f"{label} round {round_}: {len(winners)} reported winners"
        assert losses == {"AlreadyExistsError": racers - 1}
        stored = await store.get(key)  # type: ignore[attr-defined]
        assert stored == f"racer {winners[0]}".encode(), "the reported winner is not the writer"
    return rounds * racers


async def test_create_races_have_exactly_one_winner(proxied_backend: ProxiedBackend) -> None:
    store = proxied_backend.open(**RETRIES)
    proxy = proxied_backend.proxy
    await _check_rounds(store, "clean", proxied_backend.name)
    proxy.rules = [Rule("reset_after", every=9)]  # replies lost, the writes applied
    creates = await _check_rounds(store, "lost", proxied_backend.name)
    faults = sum(1 for *_, fault in proxy.log if fault == "reset_after")
    assert faults >= creates // 20, "too few lost replies to prove anything"


async def _count(store: object, workers: int, increments: int) -> tuple[int, int, int]:
    """Increment ``counter`` by read-modify-write with If-Match; return the increments
    reported done, those whose outcome was reported unknown, and the conflicts."""
    done = unknown = conflicts = 0

    async def worker() -> None:
        nonlocal done, unknown, conflicts
        for _ in range(increments):
            while True:
                current = await store.get_result("counter")  # type: ignore[attr-defined]
                value = str(int(current.data) + 1).encode()
                try:
                    await store.put(  # type: ignore[attr-defined]
                        "counter", value, mode=UpdateVersion(e_tag=current.meta.e_tag)
                    )
                    done += 1
                    break
                except PreconditionFailedError:
                    conflicts += 1
                except WriteOutcomeUnknownError:
                    unknown += 1
                    break

    await asyncio.gather(*(worker() for _ in range(workers)))
    return done, unknown, conflicts


async def test_if_match_counter_loses_no_increment(proxied_backend: ProxiedBackend) -> None:
    store = proxied_backend.open(**RETRIES)
    await store.put("counter", b"0")
    proxied_backend.proxy.rules = [Rule("status:503", every=17)]  # refused: certainly not applied
    done, unknown, conflicts = await _count(store, WORKERS, INCREMENTS)
    assert (done, unknown) == (WORKERS * INCREMENTS, 0)
    assert await store.get("counter") == str(done).encode()
    print(f"\n{proxied_backend.name}: {done} increments, {conflicts} conflicts")


async def test_lost_replies_never_count_an_increment_twice(
    proxied_backend: ProxiedBackend,
) -> None:
    # a reply lost, then the object changed by another worker: the write may have been
    # applied or not, and saying "precondition failed" would make the worker apply it again
    store = proxied_backend.open(**RETRIES)
    await store.put("counter", b"0")
    proxied_backend.proxy.rules = [Rule("reset_after", every=7)]
    done, unknown, conflicts = await _count(store, WORKERS, INCREMENTS)
    final = int(await store.get("counter"))
    assert done + unknown == WORKERS * INCREMENTS
    assert done <= final <= done + unknown, f"{final} after {done} done and {unknown} unknown"
    print(f"\n{proxied_backend.name}: {done} done, {unknown} unknown, final {final}, "
          f"{conflicts} conflicts")  # fmt: skip


def _conflict_every(n: int) -> object:
    """An S3 answer: every ``n``-th conditional PUT gets 409 ConditionalRequestConflict."""
    seen = Counter[str]()

    def answer(request: web.Request, body: bytes) -> web.Response | None:
        if request.method != "PUT" or "If-None-Match" not in request.headers:
            return None
        seen["put"] += 1
        if seen["put"] % n:
            return None
        seen["conflict"] += 1
        xml = b"<Error><Code>ConditionalRequestConflict</Code><Message>retry</Message></Error>"
        return web.Response(status=409, body=xml, content_type="application/xml")

    answer.seen = seen  # type: ignore[attr-defined]
    return answer


@pytest.mark.parametrize("proxied_backend", ["s3"], indirect=True)
async def test_conditional_request_conflict_is_retried(proxied_backend: ProxiedBackend) -> None:
    store = proxied_backend.open(**RETRIES)
    answer = _conflict_every(3)
    proxied_backend.proxy.answer = answer  # type: ignore[assignment]
    creates = await _check_rounds(store, "conflict", "s3")
    assert answer.seen["conflict"] >= creates // 4  # type: ignore[attr-defined]


async def test_a_lost_request_then_another_update_of_its_version_is_a_certain_conflict(
    proxied_backend: ProxiedBackend,
) -> None:
    # Our update of version v is dropped before it reaches the server (a reset: to the client
    # it may have been applied), and another writer has updated v. Its token names v: only
    # one conditional write can replace v, so ours was certainly not applied, and a CAS loop
    # may retry. S3's ETags are content hashes, which recur, so its tokens name no version
    # and the outcome stays unknown there.
    store, other = proxied_backend.open(**RETRIES), proxied_backend.open(**RETRIES)
    await store.put("counter", b"0")
    base = (await store.get_result("counter")).meta
    await other.put("counter", b"1", mode=UpdateVersion(e_tag=base.e_tag, version=base.version))
    method = "POST" if proxied_backend.name == "gcs" else "PUT"
    proxied_backend.proxy.rules = [Rule("reset_before", method=method)]
    certain = proxied_backend.name != "s3"
    with pytest.raises(PreconditionFailedError if certain else WriteOutcomeUnknownError) as info:
        await store.put("counter", b"1", mode=UpdateVersion(e_tag=base.e_tag, version=base.version))
    assert certain is not isinstance(info.value, WriteOutcomeUnknownError)
    assert [fault for *_, fault in proxied_backend.proxy.log].count("reset_before") == 1
    assert await store.get("counter") == b"1"


async def test_copies_that_must_not_overwrite_survive_refusals_and_lost_replies(
    proxied_backend: ProxiedBackend,
) -> None:
    # A create-mode copy is sent at most once per attempt. Refused (503), it is tried again.
    # Applied with its reply lost, the retry finds the destination and asks it whose it is:
    # every such copy carries a write token — an S3 multipart copy in its completion, an
    # Azure Copy Blob and a GCS rewrite in the metadata they are given in place of the
    # source's — so the retry sees its own copy (done). fake-gcs-server ignores
    # ifGenerationMatch on copies, so its retry simply copies again.
    store = proxied_backend.open(**RETRIES)
    await _copies_survive(store, proxied_backend.proxy, proxied_backend.name)


async def test_header_mode_copies_survive_refusals_and_lost_replies(
    s3_server: S3Server, bucket: str
) -> None:
    # As above, in S3's other copy-if-not-exists mode: one CopyObject with a header the
    # server honours (SeaweedFS, like AWS, honours If-None-Match), carrying a write token in
    # the metadata it replaces the source's with
    async with FaultProxy(s3_server.endpoint) as proxy:
        mode = "header:If-None-Match:*"
        options = s3_server.options(aws_endpoint=proxy.url, aws_copy_if_not_exists=mode, **RETRIES)
        async with objstore.from_url(f"s3://{bucket}", options) as store:
            await _copies_survive(store, proxy, "s3-header")


async def _copies_survive(store: Any, proxy: FaultProxy, name: str) -> None:
    method = "PUT" if name in ("azure", "s3-header") else "POST"

    def last(target: str) -> str:  # the request that makes the copy
        return f"{target}?uploadId=" if name == "s3" else target

    attributes = {"content_type": "text/x-source", "origin": "source"}
    await store.put("src", b"source", attributes=attributes)
    proxy.rules = [Rule("status:503", method="PUT" if name == "s3" else method, contains="refused")]
    await store.copy_if_not_exists("src", "refused")
    assert await store.get("refused") == b"source"
    assert [fault for *_, fault in proxy.log].count("status:503") == 1
    for move, target in ((store.copy_if_not_exists, "lost"), (store.rename_if_not_exists, "moved")):
        proxy.rules = [Rule("reset_after", method=method, contains=last(target))]
        await move("src", target)
        assert [fault for *_, fault in proxy.log].count("reset_after") == 1 + (target == "moved")
        copied = await store.get_result(target)
        assert (copied.data, copied.attributes) == (b"source", attributes)  # no token shown
        if move == store.rename_if_not_exists:
            assert not await store.exists("src")
        await store.put("src", b"source", attributes=attributes)
    if name == "gcs":
        return  # fake-gcs-server would copy over the taken destination (EMULATOR_PRECONDITIONS)
    # a destination that was there before — written, or copied from our very source by
    # another writer — is certainly not this copy
    await store.put("taken", b"theirs")
    await store.copy_if_not_exists("src", "copied")
    for target in ("taken", "copied"):
        proxy.rules = [Rule("reset_before", method=method, contains=last(target))]
        with pytest.raises(AlreadyExistsError) as info:
            await store.copy_if_not_exists("src", target)
        assert not isinstance(info.value, WriteOutcomeUnknownError)
        assert [fault for *_, fault in proxy.log].count("reset_before") == 1
        proxy.log.clear()
    assert await store.get("taken") == b"theirs"


async def test_history_settles_lost_replies_on_a_versioned_bucket(gcs_server: GCSServer) -> None:
    # As above, on a GCS bucket that keeps its generations: the generation that replaced the
    # one an update was conditioned on tells whether the update was applied, so no outcome
    # stays unknown and the count is exact (the looks are retried like any read)
    bucket = f"h-{uuid.uuid4().hex[:12]}"
    gcs_server.create_bucket(bucket, versioning=True)
    async with FaultProxy(gcs_server.endpoint) as proxy:
        options = {**gcs_server.options(google_base_url=proxy.url), **RETRIES}
        async with objstore.from_url(f"gs://{bucket}", options) as store:
            await store.put("counter", b"0")
            proxy.rules = [Rule("reset_after", every=7)]
            done, unknown, conflicts = await _count(store, WORKERS, INCREMENTS)
            final = int(await store.get("counter"))
    assert (done, unknown, final) == (WORKERS * INCREMENTS, 0, WORKERS * INCREMENTS)
    print(f"\ngcs, versioned: {done} done, {unknown} unknown, final {final}, "
          f"{conflicts} conflicts")  # fmt: skip
    gcs_server.delete_bucket(bucket)
