"""Small-object put/get on memory and local stores: objstore vs obstore vs a plain baseline.

Async and blocking, interleaved repetitions in one process; prints medians and same-run ratios.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Callable

import obstore
from obstore.store import LocalStore as ObLocal
from obstore.store import MemoryStore as ObMemory

import objstore
import objstore_sync
from benchmarks.common import Row, interleave, print_table, rate, save, timed

DATA = os.urandom(4096)
REPS = int(os.environ.get("BENCH_REPS", "5"))


# ---- memory -----------------------------------------------------------------------------------


def memory_rows() -> list[Row]:
    n_fast, n_slow = 200_000, 3_000
    ours = objstore.from_url("memory://")
    ours_sync = objstore_sync.ObjectStore("memory://")
    theirs = ObMemory()
    plain: dict[str, bytes] = {}

    async def dict_put(key: str, data: bytes) -> None:
        plain[key] = data

    async def dict_get(key: str) -> bytes:
        return plain[key]

    def run(coro_fn: Callable[[], object]) -> float:
        return asyncio.run(coro_fn())  # type: ignore[arg-type]

    async def a_dict_put() -> float:
        return rate(n_fast, await _atimed(lambda: _loop(dict_put, n_fast)))

    async def a_dict_get() -> float:
        await dict_put("k0", DATA)
        return rate(n_fast, await _atimed(lambda: _loop_get(dict_get, n_fast)))

    async def a_ours_put() -> float:
        return rate(n_fast, await _atimed(lambda: _loop(ours.put, n_fast)))

    async def a_ours_get() -> float:
        await ours.put("k0", DATA)
        return rate(n_fast, await _atimed(lambda: _loop_get(ours.get, n_fast)))

    async def ob_put(key: str, data: bytes) -> None:
        await obstore.put_async(theirs, key, data)

    async def ob_get(key: str) -> bytes:
        return bytes(await (await obstore.get_async(theirs, key)).bytes_async())

    async def a_ob_put() -> float:
        return rate(n_slow, await _atimed(lambda: _loop(ob_put, n_slow)))

    async def a_ob_get() -> float:
        await ob_put("k0", DATA)
        return rate(n_slow, await _atimed(lambda: _loop_get(ob_get, n_slow)))

    put = interleave(
        {"baseline": lambda: run(a_dict_put), "objstore": lambda: run(a_ours_put),
         "obstore": lambda: run(a_ob_put)}, REPS, Row("memory async put 4 KiB", "ops/s"),
    )  # fmt: skip
    get = interleave(
        {"baseline": lambda: run(a_dict_get), "objstore": lambda: run(a_ours_get),
         "obstore": lambda: run(a_ob_get)}, REPS, Row("memory async get 4 KiB", "ops/s"),
    )  # fmt: skip

    obstore.put(theirs, "k0", DATA)
    ours_sync.put("k0", DATA)
    plain["k0"] = DATA
    keys = [f"k{i % 1000}" for i in range(n_fast)]

    def s_dict_put() -> float:
        return rate(n_fast, timed(lambda: _fill(plain, keys)))

    def s_dict_get() -> float:
        return rate(n_fast, timed(lambda: [plain["k0"] for _ in keys]))

    def s_ours_put() -> float:
        put = ours_sync.put
        return rate(n_fast, timed(lambda: [put(k, DATA) for k in keys]))

    def s_ours_get() -> float:
        get = ours_sync.get
        return rate(n_fast, timed(lambda: [get("k0") for _ in keys]))

    def s_ob_put() -> float:
        return rate(n_fast, timed(lambda: [obstore.put(theirs, k, DATA) for k in keys]))

    def s_ob_get() -> float:
        return rate(n_fast, timed(lambda: [obstore.get(theirs, "k0").bytes() for _ in keys]))

    sput = interleave({"baseline": s_dict_put, "objstore": s_ours_put, "obstore": s_ob_put},
                      REPS, Row("memory blocking put 4 KiB", "ops/s"))  # fmt: skip
    sget = interleave({"baseline": s_dict_get, "objstore": s_ours_get, "obstore": s_ob_get},
                      REPS, Row("memory blocking get 4 KiB", "ops/s"))  # fmt: skip
    return [put, get, sput, sget]


def _fill(target: dict[str, bytes], keys: list[str]) -> None:
    for key in keys:
        target[key] = DATA


def _each(fn: Callable[[str], None], keys: list[str]) -> None:
    for key in keys:
        fn(key)


async def _atimed(fn: Callable[[], object]) -> float:
    import time

    start = time.perf_counter()
    await fn()  # type: ignore[misc]
    return time.perf_counter() - start


async def _loop(put: Callable[..., object], n: int) -> None:
    for i in range(n):
        await put(f"k{i % 1000}", DATA)  # type: ignore[misc]


async def _loop_get(get: Callable[..., object], n: int) -> None:
    for _ in range(n):
        await get("k0")  # type: ignore[misc]


# ---- local ------------------------------------------------------------------------------------


def local_rows() -> list[Row]:
    n = 2000
    base = tempfile.mkdtemp(prefix="objstore-bench-")
    roots = {name: os.path.join(base, name) for name in ("baseline", "objstore", "obstore")}
    for root in roots.values():
        os.makedirs(root)
    ours = objstore.from_url(roots["objstore"])
    ours_sync = objstore_sync.ObjectStore(roots["objstore"])
    theirs = ObLocal(roots["obstore"])
    keys = [f"d{i % 20}/k{i}" for i in range(n)]

    def plain_write(key: str) -> None:
        path = os.path.join(roots["baseline"], key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(DATA)

    def plain_read(key: str) -> bytes:
        with open(os.path.join(roots["baseline"], key), "rb") as handle:
            return handle.read()

    async def bounded(fn: Callable[[str], object]) -> float:
        semaphore = asyncio.Semaphore(64)

        async def one(key: str) -> None:
            async with semaphore:
                await fn(key)  # type: ignore[misc]

        return await _atimed(lambda: asyncio.gather(*(one(k) for k in keys)))

    async def to_thread_write(key: str) -> None:
        await asyncio.to_thread(plain_write, key)

    async def to_thread_read(key: str) -> None:
        await asyncio.to_thread(plain_read, key)

    async def ours_write(key: str) -> None:
        await ours.put(key, DATA)

    async def ours_read(key: str) -> None:
        await ours.get(key)

    async def ob_write(key: str) -> None:
        await obstore.put_async(theirs, key, DATA)

    async def ob_read(key: str) -> None:
        await (await obstore.get_async(theirs, key)).bytes_async()

    def arun(fn: Callable[[str], object]) -> float:
        return rate(n, asyncio.run(bounded(fn)))

    rows = [
        interleave({"baseline": lambda: arun(to_thread_write), "objstore": lambda: arun(ours_write),
                    "obstore": lambda: arun(ob_write)}, REPS,
                   Row("local async put 4 KiB (64 at once)", "ops/s")),
        interleave({"baseline": lambda: arun(to_thread_read), "objstore": lambda: arun(ours_read),
                    "obstore": lambda: arun(ob_read)}, REPS,
                   Row("local async get 4 KiB (64 at once)", "ops/s")),
        interleave({"baseline": lambda: rate(n, timed(lambda: _each(plain_write, keys))),
                    "objstore": lambda: rate(n, timed(lambda: [ours_sync.put(k, DATA)
                                                               for k in keys])),
                    "obstore": lambda: rate(n, timed(lambda: [obstore.put(theirs, k, DATA)
                                                              for k in keys]))},
                   REPS, Row("local blocking put 4 KiB", "ops/s")),
        interleave({"baseline": lambda: rate(n, timed(lambda: [plain_read(k) for k in keys])),
                    "objstore": lambda: rate(n, timed(lambda: [ours_sync.get(k) for k in keys])),
                    "obstore": lambda: rate(n, timed(lambda: [obstore.get(theirs, k).bytes()
                                                              for k in keys]))},
                   REPS, Row("local blocking get 4 KiB", "ops/s")),
    ]  # fmt: skip
    shutil.rmtree(base)
    return rows


def main() -> None:
    rows = memory_rows() + local_rows()
    print_table("Small objects (median of per-repetition ratios)", rows,
                ["baseline", "objstore", "obstore"], ["obstore", "baseline"])  # fmt: skip
    save("small", rows)


if __name__ == "__main__":
    main()
