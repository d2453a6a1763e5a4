"""A chaos soak (RELIABILITY B1, PR size): on each network backend, 16 clients doing 50 mixed
operations each through a proxy that injects ~10% faults (5xx, 429, resets before and after
forwarding, truncated bodies). Nothing acknowledged is lost, nothing read is wrong, every operation
succeeds within its retries (an untyped exception fails the test)."""

from __future__ import annotations

import asyncio
import random
import time

from objstore import AlreadyExistsError, NotFoundError, ObjstoreError
from objstore.testing.faultproxy import ProxiedBackend, Rule

CLIENTS = 16
OPS = 50
RETRIES = {"backoff_initial": "5ms", "backoff_max": "50ms", "max_retries": "10",
           "timeout": "10s"}  # fmt: skip
FAULTS = [  # about one request in ten; `every` counts the requests each rule sees
    Rule("status:503", every=19),
    Rule("status:500", every=97),
    Rule("status:429", every=89),
    Rule("reset_before", every=83),
    Rule("reset_after", every=211),
    Rule("truncate", "GET", every=23),
]


async def test_chaos_soak(proxied_backend: ProxiedBackend) -> None:
    store = proxied_backend.open(**RETRIES)
    proxied_backend.proxy.rules = FAULTS
    acked: dict[str, bytes] = {}  # what each key holds, as far as acknowledged calls say
    wrong: list[str] = []
    failures: list[BaseException] = []
    started = time.monotonic()

    async def client(number: int) -> None:
        rng = random.Random(number)
        for op in range(OPS):
            key = f"c{number:02d}/k{rng.randrange(6)}"
            roll = rng.random()
            try:
                if roll < 0.40:
                    data = rng.randbytes(rng.choice((1024, 16 * 1024, 200 * 1024)))
                    await store.put(key, data)
                    acked[key] = data
                elif roll < 0.75:
                    expected = acked.get(key)
                    if expected is None:
                        continue
                    if rng.random() < 0.5:
                        if await store.get(key) != expected:
                            wrong.append(key)
                    else:
                        start = rng.randrange(len(expected))
                        got = await store.get_range(key, start, length=4096)
                        if got != expected[start : start + 4096]:
                            wrong.append(f"{key}[{start}:]")
                elif roll < 0.85:
                    if key in acked:
                        assert (await store.head(key)).size == len(acked[key])
                    mine = {k for k in acked if k.startswith(f"c{number:02d}/")}
                    if {m.location for m in await store.list(f"c{number:02d}")} != mine:
                        wrong.append(f"listing of client {number}")
                elif roll < 0.95:
                    await store.delete(key)
                    acked.pop(key, None)
                else:
                    fresh, data = f"c{number:02d}/new{op}", rng.randbytes(512)
                    await store.put(fresh, data, mode="create")  # reconciled if its reply is lost
                    acked[fresh] = data
                    try:
                        await store.put(fresh, b"again", mode="create")
                        wrong.append(f"second create of {fresh} succeeded")
                    except AlreadyExistsError:
                        pass
            except ObjstoreError as exc:
                failures.append(exc)

    await asyncio.gather(*(client(n) for n in range(CLIENTS)))
    elapsed = time.monotonic() - started
    faults = [fault for _, _, fault in proxied_backend.proxy.log if fault]
    proxied_backend.proxy.rules = []
    assert len(faults) >= CLIENTS * OPS // 20, faults  # the faults did happen
    assert failures == []
    assert wrong == []
    for key, data in acked.items():  # nothing acknowledged was lost
        assert await store.get(key) == data
    for number in range(CLIENTS):
        prefix = f"c{number:02d}/"
        listed = {m.location for m in await store.list(prefix.rstrip("/"))}
        assert listed == {k for k in acked if k.startswith(prefix)}
    missing = [k for k in (f"c00/k{i}" for i in range(6)) if k not in acked]
    for key in missing:
        try:
            await store.head(key)
            raise AssertionError(f"{key} was deleted but exists")
        except NotFoundError:
            pass
    assert elapsed < 120
