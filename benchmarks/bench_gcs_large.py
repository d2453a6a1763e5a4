"""256 MiB GCS GET into memory and PUT from a file on fake-gcs-server: throughput and memory.

Each transfer runs in its own process (:mod:`benchmarks.large`). objstore and
gcloud-aio-storage (``upload_from_filename`` / ``download``) write and read; obstore only reads
(its XML-API uploads get 400 from fake-gcs-server, see :mod:`benchmarks.bench_gcs`), so its
object is written by objstore and its PUT row stays empty.
"""

from __future__ import annotations

import json
import pathlib
import sys
import tempfile
import uuid
from typing import Any

from benchmarks.common import print_table, save
from benchmarks.large import SIZE_MIB, MiB, child, rows, write_source

MODULES = {
    "objstore": "objstore.backends.gcs",
    "obstore": "obstore.store",
    "gcloud-aio-storage": "gcloud.aio.storage",
}
"""What each client imports before its transfer is timed."""
CLIENTS = list(MODULES)


async def transfer(client: str, op: str, env: dict[str, Any], source: str) -> None:
    endpoint, bucket, key = env["endpoint"], env["bucket"], f"big-{client}"
    if client == "objstore" or (client == "obstore" and op == "put"):
        import objstore
        from objstore.testing.emulators import GCSServer

        store = objstore.from_url(f"gs://{bucket}", GCSServer(endpoint).options())
        if op == "put":
            await store.put(key, pathlib.Path(source))
        else:
            assert len(await store.get(key)) == SIZE_MIB * MiB
        await store.aclose()
    elif client == "obstore":
        import obstore
        from obstore.store import GCSStore

        document = json.dumps({"gcs_base_url": endpoint, "disable_oauth": True, "client_email": "",
                               "private_key": "", "private_key_id": ""})  # fmt: skip
        ob = GCSStore(bucket, service_account_key=document, client_options={"allow_http": True})
        data = await (await obstore.get_async(ob, key)).bytes_async()
        assert len(data) == SIZE_MIB * MiB
    else:
        from gcloud.aio.storage import Storage

        async with Storage(api_root=endpoint) as storage:
            if op == "put":
                await storage.upload_from_filename(bucket, key, source, timeout=600)
            else:
                assert len(await storage.download(bucket, key, timeout=600)) == SIZE_MIB * MiB


def main() -> None:
    from objstore.testing.emulators import fake_gcs

    with tempfile.TemporaryDirectory() as directory, fake_gcs(directory) as server:
        bucket = f"large-{uuid.uuid4().hex[:8]}"
        server.create_bucket(bucket)
        config = {"endpoint": server.endpoint, "bucket": bucket}
        made = rows("benchmarks.bench_gcs_large", "GCS", CLIENTS, config, write_source(directory))
    for row in made:  # obstore's PUT is objstore's writing its fixture: not a figure
        if "PUT" in row.workload:
            row.rates.pop("obstore", None)
            row.extra.pop("obstore peak extra RSS", None)
    print_table(f"GCS large objects ({SIZE_MIB} MiB) on fake-gcs-server", made, CLIENTS,
                ["obstore", "gcloud-aio-storage"])  # fmt: skip
    save("gcs_large", made)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(transfer, MODULES, sys.argv[2:6])
    else:
        main()
