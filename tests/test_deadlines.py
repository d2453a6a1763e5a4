"""Deadlines (RELIABILITY B3): a server that never answers, or trickles its body a byte at a
time, holds no operation past its budget. Each attempt ends at ``timeout``, the operation
after its retries (or at ``retry_timeout`` plus one attempt) with ``ObjstoreTimeoutError``,
and nothing is left running."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import pytest

from objstore import ObjstoreTimeoutError
from objstore._store import MAX_STREAM_RESUMES
from objstore.testing.faultproxy import STALL, ProxiedBackend, Rule

ATTEMPT = 1.0
MiB = 1024 * 1024
BUDGET = {"timeout": f"{ATTEMPT}s", "max_retries": "2", "backoff_initial": "1ms",
          "backoff_max": "5ms"}  # fmt: skip


async def settled(baseline: set[asyncio.Task[object]], within: float = 3.0) -> set[str]:
    """The tasks started since ``baseline`` that are still running after ``within`` s (the
    proxy's handlers end once the client has hung up)."""
    deadline = time.monotonic() + within
    while True:
        left = {t for t in asyncio.all_tasks() - baseline if not t.done()}
        left.discard(asyncio.current_task())
        if not left or time.monotonic() > deadline:
            return {t.get_name() for t in left}
        await asyncio.sleep(0.05)


async def collect(store: Any, key: str, into: list[bytes]) -> None:
    """Stream ``key`` into ``into``, chunk by chunk."""
    async with store.stream(key) as stream:
        async for chunk in stream:
            into.append(chunk)


@pytest.mark.parametrize("fault", ["hang", "trickle"])
async def test_a_stalled_get_times_out_after_its_retries(
    proxied_backend: ProxiedBackend, fault: str
) -> None:
    store = proxied_backend.open(**BUDGET)
    await store.put("k", b"x" * 4096)
    baseline = asyncio.all_tasks()
    proxied_backend.proxy.rules = [Rule(fault, "GET", every=1)]
    start = time.monotonic()
    with pytest.raises(ObjstoreTimeoutError) as info:
        await store.get("k")
    elapsed = time.monotonic() - start
    assert info.value.attempts == 3
    assert 3 * ATTEMPT * 0.95 <= elapsed <= 3 * ATTEMPT * 1.1 + 0.3
    await store.aclose()
    assert await settled(baseline) == set()


async def test_retry_timeout_bounds_the_whole_operation(proxied_backend: ProxiedBackend) -> None:
    store = proxied_backend.open(**{**BUDGET, "max_retries": "50", "retry_timeout": "2.5s"})
    await store.put("k", b"x")
    proxied_backend.proxy.rules = [Rule("hang", every=1)]  # HEAD, or GCS's metadata GET
    start = time.monotonic()
    with pytest.raises(ObjstoreTimeoutError) as info:
        await store.head("k")
    elapsed = time.monotonic() - start
    assert info.value.attempts == 3  # a fourth would start past the deadline
    assert elapsed <= (2.5 + ATTEMPT) * 1.1


async def test_a_trickled_stream_times_out(proxied_backend: ProxiedBackend) -> None:
    store = proxied_backend.open(**BUDGET)
    await store.put("k", b"x" * 4096)
    proxied_backend.proxy.rules = [Rule("trickle", "GET", every=1)]
    start = time.monotonic()
    received: list[bytes] = []
    with pytest.raises(ObjstoreTimeoutError):
        await collect(store, "k", received)
    assert len(b"".join(received)) < 4096
    attempts = 1 + MAX_STREAM_RESUMES  # a stream resumes where it stopped, this many times
    assert time.monotonic() - start <= attempts * ATTEMPT * 1.1 + 0.5


async def test_a_body_slower_than_timeout_is_not_cut_while_it_flows(
    proxied_backend: ProxiedBackend,
) -> None:
    """``timeout`` bounds waiting, not a whole body: 1 MiB at 640 KB/s takes ~1.6 s, three
    times the timeout, and arrives whole (a total deadline restarted it from zero on every
    retry)."""
    store = proxied_backend.open(**{**BUDGET, "timeout": "0.5s"})
    data = bytes(range(256)) * (4 * 1024)
    await store.put("slow", data)
    proxied_backend.proxy.rules = [Rule("throttle", "GET", every=1)]
    assert await store.get("slow") == data
    received: list[bytes] = []
    await collect(store, "slow", received)
    assert b"".join(received) == data
    assert await store.get_range("slow", 100, length=MiB // 2) == data[100 : 100 + MiB // 2]
    throttled = [fault for _, _, fault in proxied_backend.proxy.log if fault == "throttle"]
    assert len(throttled) == 3  # one request each: none was cut and retried


async def test_an_upload_slower_than_timeout_is_not_cut_while_it_flows(
    proxied_backend: ProxiedBackend,
) -> None:
    """``timeout`` bounds a stall of an upload, not its length: parts of 8 MiB at 2.5 MiB/s
    take ~3.2 s each, twice the timeout, and go through without a retry (a whole-request
    deadline failed them all)."""
    store = proxied_backend.open(**{**BUDGET, "timeout": "1.5s", "max_retries": "0"})
    data = os.urandom(16 * MiB)
    proxied_backend.proxy.rules = [Rule("slow_upload", every=1)]
    started = time.monotonic()
    await store.put("slow-up", data, part_size=8 * MiB)
    assert time.monotonic() - started > 3.0  # it was slow
    proxied_backend.proxy.rules = []
    assert await store.get("slow-up") == data


async def test_a_stalled_upload_times_out(proxied_backend: ProxiedBackend) -> None:
    """A server that stops reading an upload ends the attempt ``timeout`` after the
    connection last took a slice (the kernel's buffers fill first), and nothing is left.
    (One attempt: a GCS retry would ask the session first, which fake-gcs-server cannot
    answer; tests/test_gcs_resumable.py has that.)"""
    store = proxied_backend.open(**{**BUDGET, "max_retries": "0"})
    baseline = asyncio.all_tasks()
    proxied_backend.proxy.rules = [Rule("stall_upload", every=1)]
    start = time.monotonic()
    with pytest.raises(ObjstoreTimeoutError) as info:
        await store.put("stalled", os.urandom(16 * MiB), part_size=16 * MiB)
    elapsed = time.monotonic() - start
    assert info.value.attempts == 1
    assert ATTEMPT * 0.95 <= elapsed <= ATTEMPT + 1.5
    proxied_backend.proxy.rules = []
    await store.aclose()
    assert await settled(baseline, within=STALL + 2) == set()
