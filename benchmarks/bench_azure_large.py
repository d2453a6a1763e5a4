"""256 MiB Azure GET into memory and PUT from a file on Azurite: throughput and peak memory.

Each transfer runs in its own process (:mod:`benchmarks.large`); objstore, obstore and the
Azure SDK (``upload_blob`` / ``download_blob().readall()``, its defaults) take turns.
"""

from __future__ import annotations

import pathlib
import sys
import tempfile
import uuid
from typing import Any

from benchmarks.common import print_table, save
from benchmarks.large import SIZE_MIB, MiB, child, rows, write_source

MODULES = {
    "objstore": "objstore.backends.azure",
    "obstore": "obstore.store",
    "azure-sdk": "azure.storage.blob.aio",
}
"""What each client imports before its transfer is timed."""
CLIENTS = list(MODULES)


async def transfer(client: str, op: str, env: dict[str, Any], source: str) -> None:
    endpoint, container, key = env["endpoint"], env["container"], f"big-{client}"
    if client == "objstore":
        import objstore
        from objstore.testing.emulators import AzureServer

        store = objstore.from_url(f"az://{container}", AzureServer(endpoint).options())
        if op == "put":
            await store.put(key, pathlib.Path(source))
        else:
            assert len(await store.get(key)) == SIZE_MIB * MiB
        await store.aclose()
    elif client == "obstore":
        import obstore
        from obstore.store import AzureStore

        ob = AzureStore(container, account_name=env["account"], account_key=env["key"],
                        endpoint=endpoint, client_options={"allow_http": True})  # fmt: skip
        if op == "put":
            await obstore.put_async(ob, key, pathlib.Path(source))
        else:
            data = await (await obstore.get_async(ob, key)).bytes_async()
            assert len(data) == SIZE_MIB * MiB
    else:
        from azure.storage.blob.aio import ContainerClient

        credential = {"account_name": env["account"], "account_key": env["key"]}
        async with ContainerClient(endpoint, container, credential=credential) as client_:
            blob = client_.get_blob_client(key)
            if op == "put":
                with open(source, "rb") as handle:
                    await blob.upload_blob(handle, overwrite=True)
            else:
                assert len(await (await blob.download_blob()).readall()) == SIZE_MIB * MiB


def main() -> None:
    from objstore.testing.emulators import azurite

    with tempfile.TemporaryDirectory() as directory, azurite(directory) as server:
        container = f"large-{uuid.uuid4().hex[:8]}"
        server.create_container(container)
        config = {"endpoint": server.endpoint, "container": container,
                  "account": server.account, "key": server.key}  # fmt: skip
        made = rows("benchmarks.bench_azure_large", "Azure", CLIENTS, config,
                    write_source(directory))  # fmt: skip
    print_table(f"Azure large objects ({SIZE_MIB} MiB) on Azurite", made, CLIENTS,
                ["obstore", "azure-sdk"])  # fmt: skip
    save("azure_large", made)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(transfer, MODULES, sys.argv[2:6])
    else:
        main()
