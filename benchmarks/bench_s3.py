"""S3 on one SeaweedFS server: objstore vs obstore, aiobotocore and s3fs, side by side in one run.

Small PUT/GET/HEAD at concurrency 64, 64 KiB ranged GETs, listing 10,000 keys (recursive and
with a delimiter) and the warm latency of one GET. Every client works on its own bucket on
the same server; repetitions rotate the client order. Client CPU per request is recorded
(``time.process_time``) next to the rates.
"""

from __future__ import annotations

import asyncio
import tempfile

import botocore.session
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from obstore.store import S3Store as ObS3
from s3fs import S3FileSystem

from benchmarks.cloud import CONCURRENCY, Client, ObstoreClient, Ours, run_clients
from benchmarks.common import Row, print_table, save
from objstore.testing.emulators import S3Server, seaweedfs


class Obstore(ObstoreClient):
    name = "obstore"

    async def open(self, server: S3Server, bucket: str) -> None:
        self.store = ObS3(
            bucket, endpoint=server.endpoint, access_key_id=server.access_key,
            secret_access_key=server.secret_key, region=server.region,
            client_options={"allow_http": True},
        )  # fmt: skip


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


class S3fs(Client):
    """fsspec's s3fs in its asynchronous mode, caches off (every call reaches the server)."""

    name = "s3fs"

    async def open(self, server: S3Server, bucket: str) -> None:
        self.bucket = bucket
        self.fs = S3FileSystem(
            key=server.access_key, secret=server.secret_key, asynchronous=True,
            skip_instance_cache=True, use_listings_cache=False,
            client_kwargs={"endpoint_url": server.endpoint, "region_name": server.region},
            config_kwargs={"max_pool_connections": CONCURRENCY},
        )  # fmt: skip
        self.session = await self.fs.set_session()

    async def close(self) -> None:
        await self.session.close()

    def _path(self, key: str) -> str:
        return f"{self.bucket}/{key}"

    async def put(self, key: str, data: bytes) -> None:
        await self.fs._pipe_file(self._path(key), data)

    async def get(self, key: str) -> bytes:
        data: bytes = await self.fs._cat_file(self._path(key))
        return data

    async def head(self, key: str) -> None:
        await self.fs._info(self._path(key), refresh=True)

    async def get_range(self, key: str, start: int, end: int) -> bytes:
        data: bytes = await self.fs._cat_file(self._path(key), start=start, end=end)
        return data

    async def list(self, prefix: str) -> int:
        return len(await self.fs._find(self._path(prefix)))

    async def list_delimited(self, prefix: str) -> int:
        return len(await self.fs._ls(self._path(prefix), detail=False, refresh=True))


async def main_async(server: S3Server) -> list[Row]:
    admin = botocore.session.get_session().create_client(
        "s3", endpoint_url=server.endpoint, region_name=server.region,
        aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
    )  # fmt: skip
    clients: list[Client] = [Ours("s3"), Obstore(), Aiobotocore(), S3fs()]
    return await run_clients(clients, server, lambda name: admin.create_bucket(Bucket=name))


def main() -> None:
    with tempfile.TemporaryDirectory() as directory, seaweedfs(directory) as server:
        rows = asyncio.run(main_async(server))
    print_table("S3 on SeaweedFS (higher is better; latency as 1/s)", rows,
                ["objstore", "obstore", "aiobotocore", "s3fs"],
                ["obstore", "aiobotocore", "s3fs"])  # fmt: skip
    save("s3", rows)


if __name__ == "__main__":
    main()
