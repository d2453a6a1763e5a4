"""Import time of objstore and the blocking facade's per-call overhead."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time

import objstore
import objstore_sync
from benchmarks.common import Row, print_table, rate

RUNS = int(os.environ.get("BENCH_IMPORT_RUNS", "15"))


# Bytecode may be written: with PYTHONDONTWRITEBYTECODE set and stale caches, every run would
# recompile the sources and time the compiler (~50 ms for objstore) instead of the import.
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def import_ms(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=_ENV)
    return (time.perf_counter() - start) * 1000


def import_rows() -> list[Row]:
    cases = {
        "bare python": "pass",
        "import objstore": "import objstore",
        "import objstore_sync": "import objstore_sync",
        "import obstore": "import obstore",
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for code in cases.values():  # warm the bytecode caches
        import_ms(code)
    for _ in range(RUNS):
        for name, code in cases.items():
            times[name].append(import_ms(code))
    bare = statistics.median(times["bare python"])
    print("\n### Import time (median of", RUNS, "runs, milliseconds)\n")
    print("| case | ms | over bare python |")
    print("|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.1f} | {median - bare:+.1f} |")
    return []


def facade_rows() -> list[Row]:
    n = 20_000
    store = objstore.from_url("memory://")
    inline = objstore_sync.ObjectStore(store)
    hop = objstore_sync.ObjectStore(store, inline=False)
    asyncio.run(store.put("k", b"x" * 4096))
    row = Row("memory get 4 KiB, one call", "µs/call")

    async def direct() -> float:
        start = time.perf_counter()
        for _ in range(n):
            await store.get("k")
        return time.perf_counter() - start

    for _ in range(5):
        row.add("async (in loop)", asyncio.run(direct()) / n * 1e6)
        start = time.perf_counter()
        for _ in range(n // 10):
            hop.get("k")
        row.add("blocking via loop thread", (time.perf_counter() - start) / (n // 10) * 1e6)
        start = time.perf_counter()
        for _ in range(n):
            inline.get("k")
        row.add("blocking inline", (time.perf_counter() - start) / n * 1e6)
    hop_cost = row.median("blocking via loop thread") - row.median("async (in loop)")
    row.extra["loop-thread hop over the async call"] = f"{hop_cost:.1f} µs"
    row.extra["blocking inline rate"] = f"{rate(1, row.median('blocking inline') / 1e6):,.0f} ops/s"
    return [row]


def main() -> None:
    import_rows()
    rows = facade_rows()
    print_table("Blocking facade overhead (lower is better)", rows,
                ["async (in loop)", "blocking inline", "blocking via loop thread"], [])  # fmt: skip


if __name__ == "__main__":
    main()
