"""S3 on one SeaweedFS server: objstore vs obstore vs aiobotocore, side by side in one run.

Small PUT/GET/HEAD at concurrency 64, 64 KiB ranged GETs, listing 10,000 keys (recursive and
with a delimiter) and the warm latency of one GET. Every client works on its own bucket on
the same server; repetitions rotate the client order. Client CPU per request is recorded
(``time.process_time``) next to the rates.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import botocore.session
import obstore
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from obstore.store import S3Store as ObS3

import objstore
from benchmarks.common import Row, print_table, save
from objstore.testing.emulators import S3Server, seaweedfs

REPS = int(os.environ.get("BENCH_REPS", "3"))
N_SMALL = int(os.environ.get("BENCH_S3_SMALL", "2000"))
N_LIST = int(os.environ.get("BENCH_S3_LIST", "10000"))
CONCURRENCY = 64
SMALL = os.urandom(4096)
BIG = os.urandom(64 * 1024 * 1024)


class Client:
    """One client's operations, all async (each benchmark client fills them in)."""

    name = ""

    async def open(self, server: S3Server, bucket: str) -> None:
        raise NotImplementedError

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
    name = "objstore"

    async def open(self, server: S3Server, bucket: str) -> None:
        self.store = objstore.from_url(f"s3://{bucket}", server.options())

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


class Obstore(Client):
    name = "obstore"

    async def open(self, server: S3Server, bucket: str) -> None:
        self.store = ObS3(
            bucket, endpoint=server.endpoint, access_key_id=server.access_key,
            secret_access_key=server.secret_key, region=server.region,
            client_options={"allow_http": True},
        )  # fmt: skip

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


class Aiobotocore(Client):
    name = "aiobotocore"

    async def open(self, server: S3Server, bucket: str) -> None:
        self.bucket = bucket
        self._context = get_session().create_client(
            "s3", endpoint_url=server.endpoint, region_name=server.region,
            aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
            config=AioConfig(max_pool_connections=CONCURRENCY),
        )  # fmt: skip
        self.client = await self._context.__aenter__()

    async def close(self) -> None:
        await self._context.__aexit__(None, None, None)

    async def put(self, key: str, data: bytes) -> None:
        await self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    async def get(self, key: str) -> bytes:
        response = await self.client.get_object(Bucket=self.bucket, Key=key)
        async with response["Body"] as body:
            data: bytes = await body.read()
        return data

    async def head(self, key: str) -> None:
        await self.client.head_object(Bucket=self.bucket, Key=key)

    async def get_range(self, key: str, start: int, end: int) -> bytes:
        response = await self.client.get_object(
            Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end - 1}"
        )
        async with response["Body"] as body:
            data: bytes = await body.read()
        return data

    async def list(self, prefix: str) -> int:
        count = 0
        async for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix + "/"
        ):
            count += len(page.get("Contents", []))
        return count

    async def list_delimited(self, prefix: str) -> int:
        count = 0
        async for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix + "/", Delimiter="/"
        ):
            count += len(page.get("Contents", [])) + len(page.get("CommonPrefixes", []))
        return count


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

    await timed(
        "small PUT 4 KiB", N_SMALL, lambda: bounded([partial(client.put, k, SMALL) for k in keys])
    )
    await timed("small GET 4 KiB", N_SMALL, lambda: bounded([partial(client.get, k) for k in keys]))
    await timed("HEAD", N_SMALL, lambda: bounded([partial(client.head, k) for k in keys]))
    if first:
        await client.put("big.bin", BIG)
        await bounded([partial(client.put, f"many/{i:05d}", b"") for i in range(N_LIST)])
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


async def main_async(server: S3Server) -> list[Row]:
    admin = botocore.session.get_session().create_client(
        "s3", endpoint_url=server.endpoint, region_name=server.region,
        aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
    )  # fmt: skip
    clients: list[Client] = [Ours(), Obstore(), Aiobotocore()]
    for client in clients:
        bucket = f"bench-{client.name}-{uuid.uuid4().hex[:6]}"
        admin.create_bucket(Bucket=bucket)
        await client.open(server, bucket)
    names = ["small PUT 4 KiB", "small GET 4 KiB", "HEAD", "64 KiB ranged GET",
             f"list {N_LIST:,} keys (lists/s)", "list with delimiter (lists/s)",
             "warm GET latency (1/s)"]  # fmt: skip
    rows = {name: Row(name, "ops/s") for name in names}
    for rep in range(REPS):
        order = clients[rep % len(clients) :] + clients[: rep % len(clients)]
        for client in order:
            await measure(client, rows, first=rep == 0)
    for client in clients:
        await client.close()
    return list(rows.values())


def main() -> None:
    with tempfile.TemporaryDirectory() as directory, seaweedfs(directory) as server:
        rows = asyncio.run(main_async(server))
    print_table("S3 on SeaweedFS (higher is better; latency as 1/s)", rows,
                ["objstore", "obstore", "aiobotocore"], ["obstore", "aiobotocore"])  # fmt: skip
    save("s3", rows)


if __name__ == "__main__":
    main()
