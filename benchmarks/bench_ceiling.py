"""What plain aiohttp reaches on small requests: the ceiling of any aiohttp-based client.

PUT, HEAD and GET of 4 KiB at concurrency 64, side by side in one process: objstore, obstore,
bare aiohttp requests signed by objstore's signers with nothing around them (no retries,
no error mapping, no metadata parsing), and the same requests through a minimal HTTP/1.1
client on ``asyncio.Protocol`` (``bare_protocol.py``: the headroom under aiohttp), on one
SeaweedFS (S3) and then one Azurite (Azure). Client CPU per request is recorded.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import botocore.session
import obstore
from obstore.store import AzureStore as ObAzure
from obstore.store import S3Store as ObS3
from yarl import URL

import objstore
from benchmarks.bare_protocol import BareProtocol
from benchmarks.common import Row, bounded_each, print_table, save
from objstore.backends._azure_auth import SharedKeyAuth
from objstore.backends._sigv4 import EMPTY_SHA256, Credentials, SigV4
from objstore.testing.emulators import AzureServer, S3Server, azurite, seaweedfs

N = int(os.environ.get("BENCH_N", "2000"))
CONCURRENCY = 64
REPS = 3
BUCKET = "ceiling"
SMALL = b"x" * 4096
CLIENTS = ["objstore", "obstore", "bare aiohttp", "bare protocol"]
Work = Callable[[str], Awaitable[Any]]
Signer = Callable[[str, str, bytes], Awaitable[dict[str, str]]]


class BareAiohttp:
    """Signed requests on one aiohttp session, as lean as aiohttp allows."""

    def __init__(self, base: str, sign: Signer) -> None:
        self.base = base.rstrip("/")
        self.sign = sign
        self.session = aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False
        )

    async def request(self, method: str, path: str, body: bytes = b"") -> None:
        headers = await self.sign(method, path, body)
        url = URL(self.base + path, encoded=True)
        async with self.session.request(
            method, url, headers=headers, data=body or None
        ) as response:
            await response.read()
            assert response.status in (200, 201), response.status


def s3_signer(server: S3Server) -> Signer:
    signer = SigV4(server.region)
    credentials = Credentials(server.access_key, server.secret_key)
    host = URL(server.endpoint).raw_authority

    async def sign(method: str, path: str, body: bytes) -> dict[str, str]:
        payload = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
        return signer.sign_headers(
            method, host, path, query="", headers={}, payload_hash=payload,
            credentials=credentials,
        )  # fmt: skip

    return sign


def azure_signer(server: AzureServer) -> Signer:
    auth = SharedKeyAuth(server.account, server.key)
    root = URL(server.endpoint).path.rstrip("/")

    async def sign(method: str, path: str, body: bytes) -> dict[str, str]:
        headers = {
            "x-ms-version": "2023-11-03",
            "x-ms-date": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()),
        }
        if method == "PUT":
            headers.update({"x-ms-blob-type": "BlockBlob", "Content-Length": str(len(body)),
                            "Content-Type": "application/octet-stream"})  # fmt: skip
        await auth.authorize(method, f"{root}{path}", [], headers)
        return headers

    return sign


async def measure(
    title: str, store: Any, theirs: Mapping[str, Work], bare: BareAiohttp, prefix: str
) -> list[Row]:
    """Rows of PUT, HEAD and GET for the four clients, reps interleaved."""
    raw = BareProtocol(bare.base, bare.sign)
    keys = [f"small/{i:05d}" for i in range(N)]
    await bounded_each(lambda k: store.put(k, SMALL), keys)
    clients: dict[str, dict[str, Work]] = {
        "PUT 4 KiB": {
            "objstore": lambda k: store.put(k, SMALL),
            "obstore": theirs["put"],
            "bare aiohttp": lambda k: bare.request("PUT", f"{prefix}/{k}", SMALL),
            "bare protocol": lambda k: raw.request("PUT", f"{prefix}/{k}", SMALL),
        },
        "HEAD": {
            "objstore": store.head,
            "obstore": theirs["head"],
            "bare aiohttp": lambda k: bare.request("HEAD", f"{prefix}/{k}"),
            "bare protocol": lambda k: raw.request("HEAD", f"{prefix}/{k}"),
        },
        "GET 4 KiB": {
            "objstore": store.get,
            "obstore": theirs["get"],
            "bare aiohttp": lambda k: bare.request("GET", f"{prefix}/{k}"),
            "bare protocol": lambda k: raw.request("GET", f"{prefix}/{k}"),
        },
    }
    rows = []
    for workload, by_client in clients.items():
        row = Row(f"{title} {workload}", "ops/s")
        for rep in range(REPS):
            for name in CLIENTS[rep % len(CLIENTS) :] + CLIENTS[: rep % len(CLIENTS)]:
                young = gc.get_stats()[0]["collections"]
                cpu, wall = time.process_time(), time.perf_counter()
                await bounded_each(by_client[name], keys)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                young = gc.get_stats()[0]["collections"] - young
                row.add(name, N / wall)
                row.extra[f"{name} client CPU"] = (
                    f"{cpu / N * 1e6:,.0f} µs/op, {young * 1000 / N:.0f} young GCs per 1,000"
                )
        rows.append(row)
    await bare.session.close()
    raw.close()
    await store.aclose()
    return rows


def obstore_work(store: Any) -> dict[str, Work]:
    async def put(key: str) -> None:
        await obstore.put_async(store, key, SMALL)

    async def head(key: str) -> None:
        await obstore.head_async(store, key)

    async def get(key: str) -> None:
        await (await obstore.get_async(store, key)).bytes_async()

    return {"put": put, "head": head, "get": get}


async def s3(server: S3Server) -> list[Row]:
    admin = botocore.session.get_session().create_client(
        "s3", endpoint_url=server.endpoint, region_name=server.region,
        aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
    )  # fmt: skip
    admin.create_bucket(Bucket=BUCKET)
    theirs = ObS3(
        BUCKET, endpoint=server.endpoint, access_key_id=server.access_key,
        secret_access_key=server.secret_key, region=server.region,
        client_options={"allow_http": True},
    )  # fmt: skip
    store = objstore.from_url(f"s3://{BUCKET}", server.options())
    bare = BareAiohttp(server.endpoint, s3_signer(server))
    return await measure("S3", store, obstore_work(theirs), bare, f"/{BUCKET}")


async def azure(server: AzureServer) -> list[Row]:
    server.create_container(BUCKET)
    theirs = ObAzure(
        BUCKET, account_name=server.account, account_key=server.key,
        endpoint=server.endpoint, client_options={"allow_http": True},
    )  # fmt: skip
    store = objstore.from_url(f"az://{BUCKET}", server.options())
    bare = BareAiohttp(server.endpoint, azure_signer(server))
    return await measure("Azure", store, obstore_work(theirs), bare, f"/{BUCKET}")


def main() -> None:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as directory, seaweedfs(directory) as server:
        rows += asyncio.run(s3(server))
    with tempfile.TemporaryDirectory() as directory, azurite(directory) as az_server:
        rows += asyncio.run(azure(az_server))
    print_table("Small requests: objstore, obstore, bare aiohttp and a bare asyncio protocol "
                "(SeaweedFS, Azurite)", rows, CLIENTS, ["obstore", "bare aiohttp"])  # fmt: skip
    save("ceiling", rows)


if __name__ == "__main__":
    main()
