"""1 GiB local write and read: throughput and peak extra memory, each run in its own process.

``python -m benchmarks.bench_large`` runs the table; the child mode
``python -m benchmarks.bench_large child CLIENT OP ROOT SOURCE`` runs one transfer and prints
``{"seconds": ..., "extra_rss": ...}``.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator

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
SIZE_MIB = int(os.environ.get("BENCH_LARGE_MIB", "1024"))
CHUNK = 8 * MiB
REPS = int(os.environ.get("BENCH_LARGE_REPS", "3"))

WRITERS = ["baseline", "objstore-async", "objstore-sync", "obstore-async", "obstore-sync",
           "objstore-async-stream"]  # fmt: skip
READERS = ["baseline", "objstore-async", "objstore-sync", "obstore-async", "obstore-sync"]


def _chunks(source: str) -> Iterator[bytes]:
    with open(source, "rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def child(client: str, op: str, root: str, source: str) -> None:
    import obstore
    from obstore.store import LocalStore as ObLocal

    import objstore
    import objstore_sync

    ours = objstore.from_url(root)
    ours_sync = objstore_sync.ObjectStore(root)
    theirs = ObLocal(root)
    key = "big.bin"
    path = pathlib.Path(source)

    async def a_write() -> None:
        await ours.put(key, path)

    async def a_write_stream() -> None:
        async with ours.open_writer(key) as writer:
            for chunk in _chunks(source):
                await writer.write(chunk)

    async def a_read() -> None:
        async with ours.stream(key, chunk_size=CHUNK) as stream:
            async for _ in stream:
                pass

    async def ob_a_write() -> None:
        await obstore.put_async(theirs, key, path)

    async def ob_a_read() -> None:
        result = await obstore.get_async(theirs, key)
        async for _ in result.stream(min_chunk_size=CHUNK):
            pass

    def baseline_read() -> None:
        with open(os.path.join(root, key), "rb") as handle:
            while handle.read(CHUNK):
                pass

    def sync_read() -> None:
        with ours_sync.stream(key, chunk_size=CHUNK) as stream:
            for _ in stream:
                pass

    def ob_sync_read() -> None:
        for _ in obstore.get(theirs, key).stream(min_chunk_size=CHUNK):
            pass

    actions = {
        ("baseline", "write"): lambda: shutil.copyfile(source, os.path.join(root, key)),
        ("objstore-async", "write"): lambda: asyncio.run(a_write()),
        ("objstore-async-stream", "write"): lambda: asyncio.run(a_write_stream()),
        ("objstore-sync", "write"): lambda: ours_sync.put(key, path),
        ("obstore-async", "write"): lambda: asyncio.run(ob_a_write()),
        ("obstore-sync", "write"): lambda: obstore.put(theirs, key, path),
        ("baseline", "read"): baseline_read,
        ("objstore-async", "read"): lambda: asyncio.run(a_read()),
        ("objstore-sync", "read"): sync_read,
        ("obstore-async", "read"): lambda: asyncio.run(ob_a_read()),
        ("obstore-sync", "read"): ob_sync_read,
    }
    reset_peak_rss()
    before = rss_bytes()
    start = time.perf_counter()
    actions[(client, op)]()
    seconds = time.perf_counter() - start
    extra = max(0, peak_rss_bytes() - before)
    print(json.dumps({"seconds": seconds, "extra_rss": extra}), flush=True)


def main() -> None:
    base = tempfile.mkdtemp(prefix="objstore-large-")
    source = os.path.join(base, "source.bin")
    block = os.urandom(64 * MiB)
    with open(source, "wb") as handle:
        for _ in range(max(1, SIZE_MIB // 64)):
            handle.write(block)
    size = os.path.getsize(source)
    rows = []
    for op, clients in (("write", WRITERS), ("read", READERS)):
        row = Row(f"local {op} {size // MiB} MiB", "MB/s")
        memory: dict[str, list[int]] = {}
        crashes: dict[str, int] = {}

        def make(
            client: str,
            op: str = op,
            memory: dict[str, list[int]] = memory,
            crashes: dict[str, int] = crashes,
        ) -> Callable[[], float]:
            def run() -> float:
                root = os.path.join(base, client)
                os.makedirs(root, exist_ok=True)
                if op == "read" and not os.path.exists(os.path.join(root, "big.bin")):
                    shutil.copyfile(source, os.path.join(root, "big.bin"))
                os.sync()  # every run starts with no dirty pages of the one before
                result = run_child("benchmarks.bench_large", "child", client, op, root, source)
                memory.setdefault(client, []).append(result["extra_rss"])
                if result["exit_code"] != 0:
                    crashes[client] = crashes.get(client, 0) + 1
                return float(size / result["seconds"] / 1e6)

            return run

        interleave({c: make(c) for c in clients}, REPS, row)
        for client in clients:
            row.extra[f"{client} peak extra RSS"] = f"{max(memory[client]) / MiB:.1f} MiB"
            if crashes.get(client):
                row.extra[f"{client} abnormal exits"] = (
                    f"{crashes[client]} of {REPS} runs (after the transfer was timed)"
                )
        rows.append(row)
    shutil.rmtree(base)
    save("large", rows)
    clients = sorted({c for r in rows for c in r.rates}, key=lambda c: (c != "baseline", c))
    print_table(f"Large local objects ({size // MiB} MiB, chunks of {CHUNK // MiB} MiB)", rows,
                clients, ["obstore-async", "obstore-sync"])  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(*sys.argv[2:6])
    else:
        main()
