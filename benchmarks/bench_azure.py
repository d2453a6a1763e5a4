"""Azure on one Azurite: objstore vs obstore's AzureStore vs the Azure SDK, side by side.

The workloads of :mod:`benchmarks.cloud`. obstore is configured with the endpoint, account and
key (its ``use_emulator`` ignores the endpoint and dials 127.0.0.1:10000); the SDK is
azure-storage-blob's async ``ContainerClient`` with its default transport.
"""

from __future__ import annotations

import asyncio
import tempfile
from typing import Any

from obstore.store import AzureStore as ObAzure

from benchmarks.cloud import Client, ObstoreClient, Ours, run_clients
from benchmarks.common import Row, print_table, save
from objstore.testing.emulators import AzureServer, azurite


class Obstore(ObstoreClient):
    async def open(self, server: AzureServer, bucket: str) -> None:
        self.store = ObAzure(
            bucket, account_name=server.account, account_key=server.key,
            endpoint=server.endpoint, client_options={"allow_http": True},
        )  # fmt: skip


class Sdk(Client):
    """azure-storage-blob's async client, as a user would call it."""

    name = "azure-sdk"

    async def open(self, server: AzureServer, bucket: str) -> None:
        from azure.storage.blob.aio import ContainerClient

        self.client: Any = ContainerClient(
            server.endpoint, bucket,
            credential={"account_name": server.account, "account_key": server.key},
        )  # fmt: skip

    async def close(self) -> None:
        await self.client.close()

    async def put(self, key: str, data: bytes) -> None:
        await self.client.get_blob_client(key).upload_blob(data, overwrite=True)

    async def get(self, key: str) -> bytes:
        stream = await self.client.download_blob(key)
        data: bytes = await stream.readall()
        return data

    async def head(self, key: str) -> None:
        await self.client.get_blob_client(key).get_blob_properties()

    async def get_range(self, key: str, start: int, end: int) -> bytes:
        stream = await self.client.download_blob(key, offset=start, length=end - start)
        data: bytes = await stream.readall()
        return data

    async def list(self, prefix: str) -> int:
        return len([b async for b in self.client.list_blobs(name_starts_with=prefix + "/")])

    async def list_delimited(self, prefix: str) -> int:
        return len([b async for b in self.client.walk_blobs(name_starts_with=prefix + "/")])


async def main_async(server: AzureServer) -> list[Row]:
    return await run_clients([Ours("az"), Obstore(), Sdk()], server, server.create_container)


def main() -> None:
    with tempfile.TemporaryDirectory() as directory, azurite(directory) as server:
        rows = asyncio.run(main_async(server))
    print_table("Azure on Azurite (higher is better; latency as 1/s)", rows,
                ["objstore", "obstore", "azure-sdk"], ["obstore", "azure-sdk"])  # fmt: skip
    save("azure", rows)


if __name__ == "__main__":
    main()
