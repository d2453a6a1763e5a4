"""Small S3 requests with every (client, workload, repetition) in a process of its own.

PERFORMANCE.md's method: a fresh interpreter per run, so that no client pays for another's
heap (the garbage collector walks all of it), threads or idle connections. objstore and
obstore: 2,000 GETs and PUTs of 4 KiB, and HEADs, at concurrency 64 after 200 unmeasured
requests, 5 repetitions with the order rotated, on one SeaweedFS. The in-process benchmarks
(``bench_s3``, ``bench_ceiling``) should agree with it within their noise.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks.common import Row, bounded_each, measure_requests, print_table, run_child, save

N = int(os.environ.get("BENCH_N", "2000"))
WARM = 200
REPS = int(os.environ.get("BENCH_REPS", "5"))
BUCKET = "isolated"
SMALL = b"x" * 4096
CLIENTS = ["objstore", "obstore"]
WORKLOADS = {"get": "small GET 4 KiB", "head": "HEAD", "put": "small PUT 4 KiB"}


def _work(client: str, workload: str, options: dict[str, str]) -> Callable[[str], Awaitable[Any]]:
    """The one request a child repeats."""
    if client == "objstore":
        import objstore

        store = objstore.from_url(f"s3://{BUCKET}", options)

        async def put_ours(key: str) -> None:
            await store.put(key, SMALL)

        ours: dict[str, Callable[[str], Awaitable[Any]]] = {
            "get": store.get, "head": store.head, "put": put_ours}  # fmt: skip
        return ours[workload]
    import obstore
    from obstore.store import S3Store

    theirs = S3Store(
        BUCKET, endpoint=options["aws_endpoint"], region=options["aws_region"],
        access_key_id=options["aws_access_key_id"],
        secret_access_key=options["aws_secret_access_key"], client_options={"allow_http": True},
    )  # fmt: skip

    async def get(key: str) -> None:
        await (await obstore.get_async(theirs, key)).bytes_async()

    async def head(key: str) -> None:
        await obstore.head_async(theirs, key)

    async def put(key: str) -> None:
        await obstore.put_async(theirs, key, SMALL)

    return {"get": get, "head": head, "put": put}[workload]


async def _child(client: str, workload: str, options: dict[str, str]) -> dict[str, float]:
    return await measure_requests(_work(client, workload, options), N, WARM)


async def _seed(options: dict[str, str]) -> None:
    import objstore

    async with objstore.from_url(f"s3://{BUCKET}", options) as store:
        await bounded_each(lambda key: store.put(key, SMALL), [f"small/{i:05d}" for i in range(N)])


def main() -> None:
    if sys.argv[1:2] == ["child"]:
        client, workload, options = sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
        print(json.dumps(asyncio.run(_child(client, workload, options))))
        return
    import botocore.session

    from objstore.testing.emulators import seaweedfs

    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as directory, seaweedfs(directory) as server:
        options = server.options()
        botocore.session.get_session().create_client(
            "s3", endpoint_url=server.endpoint, region_name=server.region,
            aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
        ).create_bucket(Bucket=BUCKET)  # fmt: skip
        asyncio.run(_seed(options))
        for workload, title in WORKLOADS.items():
            row = Row(f"S3 {title}, a process per run", "ops/s")
            cpu: dict[str, list[float]] = {}
            for rep in range(REPS):
                for client in CLIENTS[rep % 2 :] + CLIENTS[: rep % 2]:
                    result = run_child("benchmarks.bench_isolated", "child", client, workload,
                                       json.dumps(options))  # fmt: skip
                    row.add(client, result["rate"])
                    cpu.setdefault(client, []).append(result["cpu_us"])
            for client, values in cpu.items():
                row.extra[f"{client} client CPU"] = f"{sorted(values)[len(values) // 2]:,.0f} µs/op"
            rows.append(row)
    print_table("Small S3 requests, every run in a fresh process (SeaweedFS)", rows, CLIENTS,
                ["obstore"])  # fmt: skip
    save("isolated", rows)


if __name__ == "__main__":
    main()
