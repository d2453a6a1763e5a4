"""Small S3 requests on asyncio's event loop and on uvloop: objstore and obstore, one SeaweedFS.

Services on uvicorn run on uvloop whenever it is installed, so both loops matter. Each
(client, loop, workload, repetition) runs in a process of its own, 2,000 requests at
concurrency 64 after 500 to warm up, the order rotated every repetition; client CPU per
request (``time.process_time``, every thread of the process) is recorded next to the rates.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks.common import Row, bounded_each, measure_requests, print_table, run_child, save
from objstore.testing.emulators import S3Server, seaweedfs

N = 2000
WARM = 500
CONCURRENCY = 64
REPS = 3
BUCKET = "loops"
SMALL = b"x" * 4096
WORKLOADS = ("PUT 4 KiB", "HEAD", "GET 4 KiB")
LOOPS = ("asyncio", "uvloop")
Work = Callable[[str], Awaitable[Any]]


def _work(client: str, workload: str, server: S3Server) -> Work:
    if client == "objstore":
        import objstore

        store = objstore.from_url(f"s3://{BUCKET}", server.options())
        works: dict[str, Work] = {
            "PUT 4 KiB": lambda k: store.put(k, SMALL),
            "HEAD": store.head,
            "GET 4 KiB": store.get,
        }
        return works[workload]
    import obstore
    from obstore.store import S3Store

    theirs = S3Store(
        BUCKET, endpoint=server.endpoint, access_key_id=server.access_key,
        secret_access_key=server.secret_key, region=server.region,
        client_options={"allow_http": True},
    )  # fmt: skip

    async def get(key: str) -> bytes:
        return bytes(await (await obstore.get_async(theirs, key)).bytes_async())

    return {
        "PUT 4 KiB": lambda k: obstore.put_async(theirs, k, SMALL),
        "HEAD": lambda k: obstore.head_async(theirs, k),
        "GET 4 KiB": get,
    }[workload]


async def _measure(work: Work) -> dict[str, float]:
    return await measure_requests(work, N, WARM)


def child(endpoint: str, client: str, loop: str, workload: str) -> None:
    """One measurement in this process; prints its JSON line."""
    work = _work(client, workload, S3Server(endpoint=endpoint))
    if loop == "uvloop":
        import uvloop

        result = uvloop.run(_measure(work))
    else:
        result = asyncio.run(_measure(work))
    print(json.dumps(result))


async def _seed(server: S3Server) -> None:
    import botocore.session

    import objstore

    botocore.session.get_session().create_client(
        "s3", endpoint_url=server.endpoint, region_name=server.region,
        aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
    ).create_bucket(Bucket=BUCKET)  # fmt: skip
    store = objstore.from_url(f"s3://{BUCKET}", server.options())
    await bounded_each(lambda k: store.put(k, SMALL), [f"small/{i:05d}" for i in range(N)])
    await store.aclose()


def main() -> None:
    with tempfile.TemporaryDirectory() as directory, seaweedfs(directory) as server:
        asyncio.run(_seed(server))
        rows = {(w, loop): Row(f"S3 {w} on {loop}", "ops/s") for w in WORKLOADS for loop in LOOPS}
        cpu: dict[tuple[str, str], dict[str, list[float]]] = {key: {} for key in rows}
        runs = [(client, loop) for loop in LOOPS for client in ("objstore", "obstore")]
        for rep in range(REPS):
            for workload in WORKLOADS:
                for client, loop in runs[rep % len(runs) :] + runs[: rep % len(runs)]:
                    result = run_child("benchmarks.bench_loops", "child", server.endpoint,
                                       client, loop, workload)  # fmt: skip
                    rows[workload, loop].add(client, result["rate"])
                    cpu[workload, loop].setdefault(client, []).append(result["cpu_us"])
        for key, row in rows.items():
            row.extra["client CPU per request (µs, median)"] = ", ".join(
                f"{client} {statistics.median(values):.0f}" for client, values in cpu[key].items()
            )
    table = list(rows.values())
    print_table("Event loops: asyncio and uvloop (median of per-repetition ratios)", table,
                ["objstore", "obstore"], ["obstore"])  # fmt: skip
    save("bench_loops", table)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(*sys.argv[2:])
    else:
        main()
