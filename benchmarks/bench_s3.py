"""S3 on one SeaweedFS server: objstore vs obstore vs aiobotocore, side by side in one run.

Small PUT/GET/HEAD at concurrency 64, 64 KiB ranged GETs, listing 10,000 keys (recursive and
with a delimiter) and the warm latency of one GET. Every client works on its own bucket on
the same server; repetitions rotate the client order. Client CPU per request is recorded
(``time.process_time``) next to the rates.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid

import botocore.session
import obstore
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from obstore.store import S3Store as ObS3

from benchmarks.cloud import CONCURRENCY, ROW_NAMES, Client, Ours, measure
from benchmarks.common import Row, print_table, save
from objstore.testing.emulators import S3Server, seaweedfs

REPS = int(os.environ.get("BENCH_REPS", "3"))


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


async def main_async(server: S3Server) -> list[Row]:
    admin = botocore.session.get_session().create_client(
        "s3", endpoint_url=server.endpoint, region_name=server.region,
        aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
    )  # fmt: skip
    clients: list[Client] = [Ours("s3"), Obstore(), Aiobotocore()]
    for client in clients:
        bucket = f"bench-{client.name}-{uuid.uuid4().hex[:6]}"
        admin.create_bucket(Bucket=bucket)
        await client.open(server, bucket)
    rows = {name: Row(name, "ops/s") for name in ROW_NAMES}
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
