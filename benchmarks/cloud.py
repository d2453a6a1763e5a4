"""What the cloud benchmarks share: the client interface, objstore's client, the workloads.

Small PUT/GET/HEAD at concurrency 64, 64 KiB ranged GETs from a 64 MiB object, listing
10,000 keys (recursive and with a delimiter) and the warm latency of one GET. Client CPU per
request is recorded (``time.process_time``) next to the rates.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import obstore

import objstore
from benchmarks.common import Row

N_SMALL = int(os.environ.get("BENCH_S3_SMALL", "2000"))
N_LIST = int(os.environ.get("BENCH_S3_LIST", "10000"))
REPS = int(os.environ.get("BENCH_REPS", "3"))
CONCURRENCY = 64
SMALL = os.urandom(4096)
BIG = os.urandom(64 * 1024 * 1024)
ROW_NAMES = ["small PUT 4 KiB", "small GET 4 KiB", "HEAD", "64 KiB ranged GET",
             f"list {N_LIST:,} keys (lists/s)", "list with delimiter (lists/s)",
             "warm GET latency (1/s)"]  # fmt: skip


class Client:
    """One client's operations, all async (each benchmark client fills them in)."""

    name = ""
    can_put = True
    """False when the client cannot write to this server; ``seed`` then writes its objects."""

    async def open(self, server: Any, bucket: str) -> None:
        raise NotImplementedError

    async def seed(self, key: str, data: bytes) -> None:
        """Write a fixture object (not measured)."""
        await self.put(key, data)

    async def close(self) -> None:
        return None

    async def put(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    async def get(self, key: str) -> bytes:
        raise NotImplementedError

    async def head(self, key: str) -> None:
        raise NotImplementedError

    async def get_range(self, key: str, start: int, end: int) -> bytes:
        raise NotImplementedError

    async def list(self, prefix: str) -> int:
        raise NotImplementedError

    async def list_delimited(self, prefix: str) -> int:
        raise NotImplementedError


class Ours(Client):
    """objstore, on ``<scheme>://bucket`` with the server's options."""

    name = "objstore"

    def __init__(self, scheme: str) -> None:
        self.scheme = scheme

    async def open(self, server: Any, bucket: str) -> None:
        self.store = objstore.from_url(f"{self.scheme}://{bucket}", server.options())

    async def close(self) -> None:
        await self.store.aclose()

    async def put(self, key: str, data: bytes) -> None:
        await self.store.put(key, data)

    async def get(self, key: str) -> bytes:
        return await self.store.get(key)

    async def head(self, key: str) -> None:
        await self.store.head(key)

    async def get_range(self, key: str, start: int, end: int) -> bytes:
        return await self.store.get_range(key, start, end)

    async def list(self, prefix: str) -> int:
        return len(await self.store.list(prefix))

    async def list_delimited(self, prefix: str) -> int:
        result = await self.store.list_with_delimiter(prefix)
        return len(result.objects) + len(result.common_prefixes)


class ObstoreClient(Client):
    """obstore's async API on ``self.store`` (subclasses build the store in ``open``)."""

    name = "obstore"
    store: Any

    async def put(self, key: str, data: bytes) -> None:
        await obstore.put_async(self.store, key, data)

    async def get(self, key: str) -> bytes:
        return bytes(await (await obstore.get_async(self.store, key)).bytes_async())

    async def head(self, key: str) -> None:
        await obstore.head_async(self.store, key)

    async def get_range(self, key: str, start: int, end: int) -> bytes:
        return bytes(await obstore.get_range_async(self.store, key, start=start, end=end))

    async def list(self, prefix: str) -> int:
        count = 0
        async for page in obstore.list(self.store, prefix):
            count += len(page)
        return count

    async def list_delimited(self, prefix: str) -> int:
        result = await obstore.list_with_delimiter_async(self.store, prefix)
        return len(result["objects"]) + len(result["common_prefixes"])


async def bounded(calls: list[Callable[[], Awaitable[Any]]]) -> None:
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def one(call: Callable[[], Awaitable[Any]]) -> None:
        async with semaphore:
            await call()

    await asyncio.gather(*(one(c) for c in calls))


async def measure(client: Client, rows: dict[str, Row], first: bool) -> None:
    keys = [f"small/{i:05d}" for i in range(N_SMALL)]

    async def timed(name: str, count: int, work: Callable[[], Awaitable[Any]]) -> None:
        cpu, wall = time.process_time(), time.perf_counter()
        await work()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        rows[name].add(client.name, count / wall)
        rows[name].extra.setdefault(f"{client.name} client CPU", "")
        rows[name].extra[f"{client.name} client CPU"] = f"{cpu / count * 1e6:,.0f} µs/op"

    if client.can_put:
        await timed(
            "small PUT 4 KiB",
            N_SMALL,
            lambda: bounded([partial(client.put, k, SMALL) for k in keys]),
        )
    elif first:
        await bounded([partial(client.seed, k, SMALL) for k in keys])
    await timed("small GET 4 KiB", N_SMALL, lambda: bounded([partial(client.get, k) for k in keys]))
    await timed("HEAD", N_SMALL, lambda: bounded([partial(client.head, k) for k in keys]))
    if first:
        await client.seed("big.bin", BIG)
        await bounded([partial(client.seed, f"many/{i:05d}", b"") for i in range(N_LIST)])
    starts = [(i * 7919 * 4096) % (len(BIG) - 65536) for i in range(1000)]
    await timed(
        "64 KiB ranged GET",
        len(starts),
        lambda: bounded([partial(client.get_range, "big.bin", s, s + 65536) for s in starts]),
    )

    async def listing() -> None:
        assert await client.list("many") == N_LIST

    await timed(f"list {N_LIST:,} keys (lists/s)", 1, listing)

    async def delimited() -> None:
        assert await client.list_delimited("many") > 0

    await timed("list with delimiter (lists/s)", 1, delimited)
    latencies = []
    for _ in range(200):
        start = time.perf_counter()
        await client.get(keys[0])
        latencies.append(time.perf_counter() - start)
    rows["warm GET latency (1/s)"].add(client.name, 1 / statistics.median(latencies))


async def run_clients(
    clients: list[Client], server: Any, create_bucket: Callable[[str], None]
) -> list[Row]:
    """Give each client a bucket of its own, then run the workloads ``REPS`` times, rotating
    the order of the clients every repetition."""
    import uuid

    for client in clients:
        bucket = f"bench-{client.name}-{uuid.uuid4().hex[:6]}"
        create_bucket(bucket)
        await client.open(server, bucket)
    rows = {name: Row(name, "ops/s") for name in ROW_NAMES}
    for rep in range(REPS):
        order = clients[rep % len(clients) :] + clients[: rep % len(clients)]
        for client in order:
            await measure(client, rows, first=rep == 0)
    for client in clients:
        await client.close()
    return list(rows.values())
