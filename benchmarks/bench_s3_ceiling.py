"""What plain aiohttp reaches on small S3 requests: the ceiling of an aiohttp-based client.

PUT, HEAD and GET of 4 KiB at concurrency 64 on one SeaweedFS, side by side in one process:
objstore, obstore, and bare aiohttp requests signed by objstore's signer with nothing around
them (no retries, no error mapping, no metadata parsing). Client CPU per request is recorded.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import botocore.session
import obstore
from obstore.store import S3Store as ObS3
from yarl import URL

import objstore
from benchmarks.common import Row, print_table, save
from objstore.backends._sigv4 import EMPTY_SHA256, Credentials, SigV4, encode_path
from objstore.testing.emulators import S3Server, seaweedfs

N = 2000
CONCURRENCY = 64
REPS = 3
BUCKET = "ceiling"
SMALL = b"x" * 4096


async def bounded(work: Callable[[str], Awaitable[Any]], keys: list[str]) -> None:
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def one(key: str) -> None:
        async with semaphore:
            await work(key)

    await asyncio.gather(*(one(k) for k in keys))


class BareAiohttp:
    """Signed requests on one aiohttp session, as lean as aiohttp allows."""

    def __init__(self, server: S3Server) -> None:
        self.endpoint = server.endpoint
        self.host = URL(server.endpoint).raw_authority
        self.signer = SigV4(server.region)
        self.credentials = Credentials(server.access_key, server.secret_key)
        self.session = aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False
        )

    async def request(self, method: str, key: str, body: bytes = b"") -> None:
        path = f"/{BUCKET}/{encode_path(key)}"
        headers = self.signer.sign_headers(
            method, self.host, path, query="", headers={},
            payload_hash=hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256,
            credentials=self.credentials,
        )  # fmt: skip
        url = URL(self.endpoint + path, encoded=True)
        async with self.session.request(
            method, url, headers=headers, data=body or None
        ) as response:
            await response.read()
            assert response.status == 200


async def main_async(server: S3Server) -> list[Row]:
    admin = botocore.session.get_session().create_client(
        "s3", endpoint_url=server.endpoint, region_name=server.region,
        aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
    )  # fmt: skip
    admin.create_bucket(Bucket=BUCKET)
    store = objstore.from_url(f"s3://{BUCKET}", server.options())
    ob = ObS3(
        BUCKET, endpoint=server.endpoint, access_key_id=server.access_key,
        secret_access_key=server.secret_key, region=server.region,
        client_options={"allow_http": True},
    )  # fmt: skip
    bare = BareAiohttp(server)
    keys = [f"small/{i:05d}" for i in range(N)]
    await bounded(lambda k: store.put(k, SMALL), keys)

    async def ob_put(key: str) -> None:
        await obstore.put_async(ob, key, SMALL)

    async def ob_head(key: str) -> None:
        await obstore.head_async(ob, key)

    async def ob_get(key: str) -> None:
        await (await obstore.get_async(ob, key)).bytes_async()

    clients: dict[str, dict[str, Callable[[str], Awaitable[Any]]]] = {
        "PUT 4 KiB": {
            "objstore": lambda k: store.put(k, SMALL),
            "obstore": ob_put,
            "bare aiohttp": lambda k: bare.request("PUT", k, SMALL),
        },
        "HEAD": {
            "objstore": store.head,
            "obstore": ob_head,
            "bare aiohttp": lambda k: bare.request("HEAD", k),
        },
        "GET 4 KiB": {
            "objstore": store.get,
            "obstore": ob_get,
            "bare aiohttp": lambda k: bare.request("GET", k),
        },
    }
    rows = []
    for workload, by_client in clients.items():
        row = Row(workload, "ops/s")
        names = list(by_client)
        for rep in range(REPS):
            for name in names[rep % len(names) :] + names[: rep % len(names)]:
                cpu, wall = time.process_time(), time.perf_counter()
                await bounded(by_client[name], keys)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                row.add(name, N / wall)
                row.extra[f"{name} client CPU"] = f"{cpu / N * 1e6:,.0f} µs/op"
        rows.append(row)
    await bare.session.close()
    await store.aclose()
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory() as directory, seaweedfs(directory) as server:
        rows = asyncio.run(main_async(server))
    print_table("Small S3 requests: objstore, obstore and bare aiohttp on one SeaweedFS", rows,
                ["objstore", "obstore", "bare aiohttp"], ["obstore", "bare aiohttp"])  # fmt: skip
    save("s3_ceiling", rows)


if __name__ == "__main__":
    main()
