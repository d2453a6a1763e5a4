"""Resource hygiene (RELIABILITY B13): on each network backend, a run under injected faults, then
thousands more operations: open file descriptors (sockets), asyncio tasks and resident memory
end where they were before those operations; nothing reaches the loop's exception handler (no
"Future exception was never retrieved", no "Task was destroyed but it is pending"), and no
``ResourceWarning`` (the suite turns warnings into errors). ``OBJSTORE_SOAK=nightly`` runs
10,000 operations."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import random
from typing import Any
from urllib.parse import urlsplit

from objstore import NotFoundError
from objstore.testing.faultproxy import ProxiedBackend, Rule

KiB = 1024
OPS = 10_000 if os.environ.get("OBJSTORE_SOAK") == "nightly" else 2_000
FAULTY_OPS = 400
RETRIES = {"backoff_initial": "5ms", "backoff_max": "50ms", "max_retries": "10"}
FAULTS = [
    Rule("status:503", every=11),
    Rule("reset_before", every=23),
    Rule("reset_after", every=29),
    Rule("truncate", "GET", every=13),
    Rule("drop_upload", every=31),
]
FD_SLACK = 4
"""Pooled connections may differ by a few between two snapshots. (The fault proxy's own
connections to the emulator are not counted: they stay pooled in the proxy.)"""
RSS_GROWTH = 10 * 1024 * KiB


async def _snapshot(proxy_upstream: str) -> tuple[int, int, int]:
    """Open descriptors (but the proxy's own connections upstream), live asyncio tasks,
    resident bytes; taken once the in-process proxy's handlers of finished requests end."""
    await asyncio.sleep(0.2)
    gc.collect()
    upstream_port = urlsplit(proxy_upstream).port
    theirs = {
        fields[9]
        for table in ("/proc/net/tcp", "/proc/net/tcp6")
        for fields in (line.split() for line in _lines(table))
        if int(fields[2].rsplit(":", 1)[1], 16) == upstream_port
    }
    fds = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor, gone
            target = os.readlink(f"/proc/self/fd/{fd}")
            fds += not (target.startswith("socket:[") and target[8:-1] in theirs)
    with open("/proc/self/statm") as statm:
        rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return fds, len(asyncio.all_tasks()), rss


def _lines(path: str) -> list[str]:
    with contextlib.suppress(OSError), open(path) as table:
        return table.readlines()[1:]
    return []


async def _operate(store: Any, rng: random.Random, count: int) -> None:
    """``count`` mixed operations on 40 keys, 16 at a time."""
    sizes = (KiB, 16 * KiB, 64 * KiB)

    async def one() -> None:
        key = f"h/{rng.randrange(40)}"
        roll = rng.random()
        try:
            if roll < 0.35:
                await store.put(key, rng.randbytes(rng.choice(sizes)))
            elif roll < 0.6:
                await store.get(key)
            elif roll < 0.7:
                await store.get_range(key, 10, 500)
            elif roll < 0.8:
                await store.head(key)
            elif roll < 0.88:
                await store.list("h")
            elif roll < 0.94:
                async with store.stream(key) as stream:
                    async for _ in stream:
                        break  # an early exit must release the connection too
            else:
                await store.delete(key)
        except NotFoundError:
            pass  # a key not written yet, or deleted

    for start in range(0, count, 16):
        await asyncio.gather(*(one() for _ in range(min(16, count - start))))


async def test_resources_return_to_where_they_were(proxied_backend: ProxiedBackend) -> None:
    loop_errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: loop_errors.append(context))
    upstream = proxied_backend.proxy.upstream
    before_store = await _snapshot(upstream)
    store = proxied_backend.open(**RETRIES)
    rng = random.Random(13)
    proxied_backend.proxy.rules = list(FAULTS)
    await _operate(store, rng, FAULTY_OPS)
    proxied_backend.proxy.rules = []
    await _operate(store, rng, 200)  # the pool settles at its working size
    fds, tasks, rss = await _snapshot(upstream)
    await _operate(store, rng, OPS)
    after_fds, after_tasks, after_rss = await _snapshot(upstream)
    summary = (
        f"{proxied_backend.name}: fds {fds} -> {after_fds}, tasks {tasks} -> {after_tasks}, "
        f"rss {rss / 2**20:.1f} -> {after_rss / 2**20:.1f} MiB"
    )
    assert after_fds <= fds + FD_SLACK, summary
    assert after_tasks <= tasks, summary
    assert after_rss - rss < RSS_GROWTH, summary
    await store.aclose()
    closed_fds, closed_tasks, _ = await _snapshot(upstream)
    print(f"\n{summary}; after aclose fds {closed_fds} (before the store {before_store[0]})")
    assert closed_fds <= before_store[0] + FD_SLACK, summary
    assert closed_tasks <= before_store[1], summary
    assert loop_errors == [], loop_errors
