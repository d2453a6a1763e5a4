"""GCS on one fake-gcs-server: objstore vs obstore's GCSStore, side by side in one run.

The workloads of :mod:`benchmarks.cloud`. obstore reaches the emulator through a service-account
document with ``gcs_base_url`` and ``disable_oauth`` (its documented emulator set-up). Its
uploads use the XML API's path-style PUT, which fake-gcs-server answers with 400 ("invalid
uploadType"), so obstore's PUT row stays empty and its fixtures are written by objstore.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import uuid

import obstore
from obstore.store import GCSStore as ObGCS

import objstore
from benchmarks.cloud import ROW_NAMES, Client, Ours, measure
from benchmarks.common import Row, print_table, save
from objstore.testing.emulators import GCSServer, fake_gcs

REPS = int(os.environ.get("BENCH_REPS", "3"))


class Obstore(Client):
    name = "obstore"
    can_put = False

    async def open(self, server: GCSServer, bucket: str) -> None:
        key = json.dumps({"gcs_base_url": server.endpoint, "disable_oauth": True,
                          "client_email": "", "private_key": "", "private_key_id": ""})  # fmt: skip
        self.store = ObGCS(bucket, service_account_key=key, client_options={"allow_http": True})
        self.writer = objstore.from_url(f"gs://{bucket}", server.options())

    async def close(self) -> None:
        await self.writer.aclose()

    async def seed(self, key: str, data: bytes) -> None:
        await self.writer.put(key, data)

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


async def main_async(server: GCSServer) -> list[Row]:
    clients: list[Client] = [Ours("gs"), Obstore()]
    for client in clients:
        bucket = f"bench-{client.name}-{uuid.uuid4().hex[:6]}"
        server.create_bucket(bucket)
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
    with tempfile.TemporaryDirectory() as directory, fake_gcs(directory) as server:
        rows = asyncio.run(main_async(server))
    print_table("GCS on fake-gcs-server (higher is better; latency as 1/s)", rows,
                ["objstore", "obstore"], ["obstore"])  # fmt: skip
    save("gcs", rows)


if __name__ == "__main__":
    main()
