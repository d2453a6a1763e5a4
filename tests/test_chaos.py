"""A chaos soak (RELIABILITY B1): on each network backend, 16 clients doing 200 mixed operations
each (64 x 1,000 with ``OBJSTORE_SOAK=nightly``) through a proxy that injects the B1 faults,
about one request in ten: 5xx, 429, resets before and after forwarding, truncated bodies,
dropped uploads, 3 s delays. Puts run from 1 KiB to 6 MiB, the largest as multipart uploads.
Nothing acknowledged is lost, nothing read is wrong, every operation succeeds within its retries
and within ``retry_timeout + timeout``, and retries do not storm (an untyped exception fails the
test). On GCS the chunks of resumable uploads are spared: fake-gcs-server cannot resume one
(``tests/test_gcs_resumable.py`` has those faults, on a stand-in)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import shutil
import statistics
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from objstore import (
    AlreadyExistsError,
    NotFoundError,
    ObjstoreError,
    PreconditionFailedError,
    UpdateVersion,
    WriteOutcomeUnknownError,
)
from objstore.testing.emulators import AzureServer, azurite
from objstore.testing.faultproxy import ProxiedBackend, Rule

MiB = 1024 * 1024
NIGHTLY = os.environ.get("OBJSTORE_SOAK") == "nightly"
CLIENTS, OPS = (64, 1000) if NIGHTLY else (16, 200)
TIMEOUT, RETRY_TIMEOUT = 10.0, 20.0
RETRIES = {"backoff_initial": "5ms", "backoff_max": "50ms", "max_retries": "10",
           "timeout": f"{TIMEOUT}s", "retry_timeout": f"{RETRY_TIMEOUT}s"}  # fmt: skip
FAULTS = [  # B1's mix, about one request in ten; `every` counts the requests each rule sees
    Rule("status:503", every=19),
    Rule("status:500", every=97),
    Rule("status:429", every=89),
    Rule("reset_before", every=83),
    Rule("reset_after", every=211),
    Rule("truncate", "GET", every=53),
    Rule("drop_upload", every=101),
    Rule("delay:3", every=199),
]
SMALL_SIZES = (1024, 16 * 1024, 200 * 1024, MiB)
MULTIPART = (6 * MiB, 5 * MiB)  # the size of a large put, and its part size


@pytest.fixture(scope="module")
def azure_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureServer]:
    """An Azurite of the soak's own (it stands in for the session's): the soak's ~3,000
    writes leave ~1 GB that Azurite holds until its garbage collector runs (kept asleep in
    tests, see ``objstore.testing.emulators``), and goes with this process. The nightly soak's
    ~14 GB go to disk (more than Azurite's memory store takes), removed afterwards."""
    directory = tmp_path_factory.mktemp("azurite-chaos")
    try:
        with azurite(str(directory), on_disk=NIGHTLY) as server:
            yield server
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def test_chaos_soak(proxied_backend: ProxiedBackend) -> None:
    store = proxied_backend.open(**RETRIES)
    # fake-gcs-server cannot resume an upload (a status query finishes it, short), so the
    # chunks of its resumable uploads are spared: tests/test_gcs_resumable.py has those faults
    avoid = "upload_id" if proxied_backend.name == "gcs" else ""
    proxied_backend.proxy.rules = [dataclasses.replace(rule, avoid=avoid) for rule in FAULTS]
    acked: dict[str, bytes] = {}  # what each key holds, as far as acknowledged calls say
    wrong: list[str] = []
    failures: list[tuple[str, BaseException]] = []
    latencies: Counter[str] = Counter()
    slowest: dict[str, float] = {}
    durations: list[float] = []

    async def put(key: str, rng: random.Random) -> None:
        if rng.random() < 0.05:
            size, part = MULTIPART
            data = rng.randbytes(size)
            chunks = (data[i : i + MiB] for i in range(0, size, MiB))  # streamed: multipart
            await store.put(key, chunks, part_size=part)
        else:
            data = rng.randbytes(rng.choice(SMALL_SIZES))
            await store.put(key, data)
        acked[key] = data

    async def get(key: str, rng: random.Random) -> None:
        expected = acked.get(key)
        if expected is None:
            return
        if rng.random() < 0.5:
            if await store.get(key) != expected:
                wrong.append(key)
            return
        start = rng.randrange(len(expected))
        if await store.get_range(key, start, length=4096) != expected[start : start + 4096]:
            wrong.append(f"{key}[{start}:]")

    async def look(number: int, key: str) -> None:
        if key in acked:
            assert (await store.head(key)).size == len(acked[key])
        mine = {k for k in acked if k.startswith(f"c{number:02d}/")}
        if {m.location for m in await store.list(f"c{number:02d}")} != mine:
            wrong.append(f"listing of client {number}")

    async def conditional(number: int, op: int, rng: random.Random) -> None:
        fresh, data = f"c{number:02d}/new{op}", rng.randbytes(512)
        await store.put(fresh, data, mode="create")  # reconciled if its reply is lost
        acked[fresh] = data
        try:
            await store.put(fresh, b"again", mode="create")
            wrong.append(f"second create of {fresh} succeeded")
        except AlreadyExistsError:
            pass
        tag = (await store.head(fresh)).e_tag
        update = rng.randbytes(300)
        written = await store.put(fresh, update, mode=UpdateVersion(e_tag=tag))
        acked[fresh] = update
        if written.e_tag == tag:
            wrong.append(f"the update of {fresh} kept its e_tag")
        try:
            await store.put(fresh, b"stale", mode=UpdateVersion(e_tag=tag))
            wrong.append(f"an update of {fresh} with a stale e_tag succeeded")
        except PreconditionFailedError:
            pass
        except WriteOutcomeUnknownError:
            pass  # a lost reply, and the object is not its own; the final reads check `update`

    async def client(number: int) -> None:
        rng = random.Random(number)
        for op in range(OPS):
            key = f"c{number:02d}/k{rng.randrange(6)}"
            roll = rng.random()
            kind = ("put" if roll < 0.40 else "get" if roll < 0.75 else "look" if roll < 0.85
                    else "delete" if roll < 0.95 else "conditional")  # fmt: skip
            started = time.monotonic()
            try:
                if kind == "put":
                    await put(key, rng)
                elif kind == "get":
                    await get(key, rng)
                elif kind == "look":
                    await look(number, key)
                elif kind == "delete":
                    await store.delete(key)
                    acked.pop(key, None)
                else:
                    await conditional(number, op, rng)
            except ObjstoreError as exc:
                failures.append((kind, exc))
            took = time.monotonic() - started
            durations.append(took)
            latencies[kind] += 1
            slowest[kind] = max(slowest.get(kind, 0.0), took)

    await asyncio.gather(*(client(n) for n in range(CLIENTS)))
    log = proxied_backend.proxy.log
    faults = Counter(fault for _, _, fault in log if fault)
    proxied_backend.proxy.rules = []
    quantiles = statistics.quantiles(durations, n=100)
    summary = (
        f"{CLIENTS * OPS} ops {dict(latencies)}, {len(log)} requests, faults {dict(faults)}, "
        f"p50 {quantiles[49]:.3f} s, p99 {quantiles[98]:.3f} s, slowest {slowest}"
    )
    print(summary)
    assert failures == [], f"{summary}\n{failures}"
    assert wrong == [], summary
    assert sum(faults.values()) >= len(log) // 15, summary  # the faults did happen
    assert set(faults) == {rule.fault for rule in FAULTS}, summary
    assert max(durations) <= RETRY_TIMEOUT + TIMEOUT, summary  # B1: every op resolves within T
    assert len(log) <= 3 * CLIENTS * OPS, summary  # no retry storm (a multipart put is ~4)
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
