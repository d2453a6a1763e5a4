"""256 MiB S3 GET into memory and PUT from a file: throughput and peak extra memory.

Each transfer runs in its own process (``child`` mode) against one SeaweedFS, so that peak
memory is the transfer's own; objstore, obstore and aiobotocore take turns.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import sys
import tempfile
import time
import uuid

from benchmarks.common import (
    Row,
    interleave,
    peak_rss_bytes,
    print_table,
    reset_peak_rss,
    rss_bytes,
    run_child,
    save,
)

MiB = 1024 * 1024
SIZE_MIB = int(os.environ.get("BENCH_S3_LARGE_MIB", "256"))
REPS = int(os.environ.get("BENCH_REPS", "3"))
CLIENTS = ["objstore", "obstore", "aiobotocore"]


async def transfer(client: str, op: str, env: dict[str, str], source: str) -> None:
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


def child(client: str, op: str, config: str, source: str) -> None:
    env = json.loads(config)
    _import_client(client)  # what the transfer costs, not what loading the library costs
    reset_peak_rss()
    before = rss_bytes()
    start = time.perf_counter()
    asyncio.run(transfer(client, op, env, source))
    seconds = time.perf_counter() - start
    extra = max(0, peak_rss_bytes() - before)
    print(json.dumps({"seconds": seconds, "extra_rss": extra}), flush=True)


def _import_client(client: str) -> None:
    if client == "objstore":
        import objstore.backends.s3  # noqa: F401
    elif client == "obstore":
        import obstore.store  # noqa: F401
    else:
        import aiobotocore.session  # noqa: F401


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
        source = os.path.join(directory, "source.bin")
        with open(source, "wb") as handle:
            block = os.urandom(MiB)
            for _ in range(SIZE_MIB):
                handle.write(block)
        config = json.dumps({"endpoint": server.endpoint, "bucket": bucket,
                             "access": server.access_key, "secret": server.secret_key})  # fmt: skip
        rows = []
        for op in ("put", "get"):
            row = Row(f"S3 {op.upper()} {SIZE_MIB} MiB", "MB/s")
            peaks: dict[str, int] = {}

            def make(client: str, op: str = op, peaks: dict[str, int] = peaks):  # type: ignore[no-untyped-def]
                def run() -> float:
                    result = run_child("benchmarks.bench_s3_large", "child", client, op,
                                       config, source)  # fmt: skip
                    peaks[client] = max(peaks.get(client, 0), result["extra_rss"])
                    return float(SIZE_MIB * MiB / result["seconds"] / 1e6)

                return run

            interleave({c: make(c) for c in CLIENTS}, REPS, row)
            for client in CLIENTS:
                row.extra[f"{client} peak extra RSS"] = f"{peaks[client] / MiB:.0f} MiB"
            rows.append(row)
    print_table(f"S3 large objects ({SIZE_MIB} MiB) on SeaweedFS", rows, CLIENTS,
                ["obstore", "aiobotocore"])  # fmt: skip
    save("s3_large", rows)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(*sys.argv[2:6])
    else:
        main()
