"""What the large-object benchmarks share: one transfer per child process, peak memory measured.

A benchmark module defines ``transfer(client, op, config, source)`` (async) and the module each
client imports, calls :func:`child` when run as ``child`` and :func:`rows` otherwise.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from benchmarks.common import Row, interleave, peak_rss_bytes, reset_peak_rss, rss_bytes, run_child

MiB = 1024 * 1024
SIZE_MIB = int(os.environ.get("BENCH_LARGE_MIB", os.environ.get("BENCH_S3_LARGE_MIB", "256")))
REPS = int(os.environ.get("BENCH_REPS", "3"))

Transfer = Callable[[str, str, dict[str, Any], str], Coroutine[Any, Any, None]]


def child(transfer: Transfer, modules: Mapping[str, str], argv: Sequence[str]) -> None:
    """Run one transfer (``client op config source``) and print its time and peak extra RSS;
    ``modules[client]`` is imported first, outside the clock."""
    client, op, config, source = argv
    # what the transfer costs, not what loading the library (or the test helpers that build
    # objstore's options: they bring pytest, ~0.17 s) costs
    import objstore.testing.emulators  # noqa: F401

    importlib.import_module(modules[client])
    reset_peak_rss()
    before = rss_bytes()
    start = time.perf_counter()
    asyncio.run(transfer(client, op, json.loads(config), source))
    seconds = time.perf_counter() - start
    extra = max(0, peak_rss_bytes() - before)
    print(json.dumps({"seconds": seconds, "extra_rss": extra}), flush=True)


def write_source(directory: str) -> str:
    """A ``SIZE_MIB`` file of random bytes to upload."""
    source = os.path.join(directory, "source.bin")
    with open(source, "wb") as handle:
        block = os.urandom(MiB)
        for _ in range(SIZE_MIB):
            handle.write(block)
    return source


def rows(
    module: str, label: str, clients: Sequence[str], config: dict[str, Any], source: str
) -> list[Row]:
    """PUT then GET rows: each client's transfers in child processes, interleaved."""
    made = []
    for op in ("put", "get"):
        row = Row(f"{label} {op.upper()} {SIZE_MIB} MiB", "MB/s")
        peaks: dict[str, int] = {}

        def make(client: str, op: str = op, peaks: dict[str, int] = peaks) -> Callable[[], float]:
            def run() -> float:
                result = run_child(module, "child", client, op, json.dumps(config), source)
                peaks[client] = max(peaks.get(client, 0), result["extra_rss"])
                return float(SIZE_MIB * MiB / result["seconds"] / 1e6)

            return run

        interleave({c: make(c) for c in clients}, REPS, row)
        for client in clients:
            row.extra[f"{client} peak extra RSS"] = f"{peaks[client] / MiB:.0f} MiB"
        made.append(row)
    return made
