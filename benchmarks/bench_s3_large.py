"""256 MiB S3 GET into memory and PUT from a file: throughput and peak extra memory.

Each transfer runs in its own process (:mod:`benchmarks.large`) against one SeaweedFS, so that
peak memory is the transfer's own; objstore, obstore and aiobotocore take turns.
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
    "objstore": "objstore.backends.s3",
    "obstore": "obstore.store",
    "aiobotocore": "aiobotocore.session",
}
"""What each client imports before its transfer is timed."""
CLIENTS = list(MODULES)


async def transfer(client: str, op: str, env: dict[str, Any], source: str) -> None:
    endpoint, bucket, key = env["endpoint"], env["bucket"], f"big-{client}"
    creds = {"access": env["access"], "secret": env["secret"]}
    if client == "objstore":
        import objstore
        from objstore.testing.emulators import S3Server

        server = S3Server(endpoint, creds["access"], creds["secret"])
        store = objstore.from_url(f"s3://{bucket}", server.options())
        if op == "put":
            await store.put(key, pathlib.Path(source))
        else:
            assert len(await store.get(key)) == SIZE_MIB * MiB
        await store.aclose()
    elif client == "obstore":
        import obstore
        from obstore.store import S3Store

        ob = S3Store(bucket, endpoint=endpoint, access_key_id=creds["access"],
                     secret_access_key=creds["secret"], region="us-east-1",
                     client_options={"allow_http": True})  # fmt: skip
        if op == "put":
            await obstore.put_async(ob, key, pathlib.Path(source))
        else:
            data = await (await obstore.get_async(ob, key)).bytes_async()
            assert len(data) == SIZE_MIB * MiB
    else:
        from aiobotocore.session import get_session

        async with get_session().create_client(
            "s3", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id=creds["access"], aws_secret_access_key=creds["secret"],
        ) as s3:  # fmt: skip
            if op == "put":
                with open(source, "rb") as handle:
                    await s3.put_object(Bucket=bucket, Key=key, Body=handle)
            else:
                response = await s3.get_object(Bucket=bucket, Key=key)
                async with response["Body"] as body:
                    assert len(await body.read()) == SIZE_MIB * MiB


def main() -> None:
    import botocore.session

    from objstore.testing.emulators import seaweedfs

    with tempfile.TemporaryDirectory() as directory, seaweedfs(directory) as server:
        admin = botocore.session.get_session().create_client(
            "s3", endpoint_url=server.endpoint, region_name="us-east-1",
            aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
        )  # fmt: skip
        bucket = f"large-{uuid.uuid4().hex[:8]}"
        admin.create_bucket(Bucket=bucket)
        config = {"endpoint": server.endpoint, "bucket": bucket,
                  "access": server.access_key, "secret": server.secret_key}  # fmt: skip
        made = rows("benchmarks.bench_s3_large", "S3", CLIENTS, config, write_source(directory))
    print_table(f"S3 large objects ({SIZE_MIB} MiB) on SeaweedFS", made, CLIENTS,
                ["obstore", "aiobotocore"])  # fmt: skip
    save("s3_large", made)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(transfer, MODULES, sys.argv[2:6])
    else:
        main()
