"""GCS on one fake-gcs-server: objstore vs obstore's GCSStore, side by side in one run.

The workloads of :mod:`benchmarks.cloud`. obstore reaches the emulator through a service-account
document with ``gcs_base_url`` and ``disable_oauth`` (its documented emulator set-up). Its
uploads use the XML API's path-style PUT, which fake-gcs-server answers with 400 ("invalid
uploadType"), so obstore's PUT row stays empty and its fixtures are written by objstore.
"""

from __future__ import annotations

import asyncio
import json
import tempfile

from obstore.store import GCSStore as ObGCS

import objstore
from benchmarks.cloud import ObstoreClient, Ours, run_clients
from benchmarks.common import Row, print_table, save
from objstore.testing.emulators import GCSServer, fake_gcs


class Obstore(ObstoreClient):
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


async def main_async(server: GCSServer) -> list[Row]:
    return await run_clients([Ours("gs"), Obstore()], server, server.create_bucket)


def main() -> None:
    with tempfile.TemporaryDirectory() as directory, fake_gcs(directory) as server:
        rows = asyncio.run(main_async(server))
    print_table("GCS on fake-gcs-server (higher is better; latency as 1/s)", rows,
                ["objstore", "obstore"], ["obstore"])  # fmt: skip
    save("gcs", rows)


if __name__ == "__main__":
    main()
