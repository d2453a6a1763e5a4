"""Shared benchmark helpers: interleaved repetitions, medians, ratio tables, peak memory."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".bench")


@dataclass
class Row:
    """One workload: each client's per-repetition rates (higher is better)."""

    workload: str
    unit: str
    rates: dict[str, list[float]] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)

    def add(self, client: str, rate: float) -> None:
        self.rates.setdefault(client, []).append(rate)

    def median(self, client: str) -> float:
        return statistics.median(self.rates[client])

    def ratio(self, client: str, anchor: str) -> float:
        """Median of the per-repetition ratios client/anchor (same-run pairs)."""
        pairs = zip(self.rates[client], self.rates[anchor], strict=False)
        return statistics.median(a / b for a, b in pairs if b > 0)


async def bounded_each(
    work: Callable[[str], Awaitable[Any]], keys: Sequence[str], concurrency: int = 64
) -> None:
    """Run ``work(key)`` for every key, ``concurrency`` at a time."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(key: str) -> None:
        async with semaphore:
            await work(key)

    await asyncio.gather(*(one(k) for k in keys))


async def measure_requests(
    work: Callable[[str], Awaitable[Any]], count: int, warm: int
) -> dict[str, float]:
    """Rate and client CPU per request (µs) of ``work`` over keys ``small/00000``… at
    concurrency 64, after ``warm`` unmeasured requests (connections made, caches filled)."""
    keys = [f"small/{i:05d}" for i in range(count)]
    await bounded_each(work, keys[:warm])
    cpu, wall = time.process_time(), time.perf_counter()
    await bounded_each(work, keys)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"rate": count / wall, "cpu_us": cpu / count * 1e6}


def interleave(clients: dict[str, Callable[[], float]], repetitions: int, row: Row) -> Row:
    """Run each client once per repetition, rotating the order every repetition."""
    names = list(clients)
    for rep in range(repetitions):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            row.add(name, clients[name]())
    return row


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def print_table(title: str, rows: Sequence[Row], clients: Sequence[str], anchors: Sequence[str]
                ) -> None:  # fmt: skip
    """Print medians and ratios as a Markdown table."""
    print(f"\n### {title}\n")
    head = ["workload", "unit", *clients]
    head += [f"{c} / {a}" for a in anchors for c in clients if c != a and c.startswith("objstore")]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        cells = [row.workload, row.unit]
        cells += [_fmt(row.median(c)) if c in row.rates else "–" for c in clients]
        for anchor in anchors:
            for c in clients:
                if c != anchor and c.startswith("objstore"):
                    ok = c in row.rates and anchor in row.rates
                    cells.append(f"{row.ratio(c, anchor):.2f}×" if ok else "–")
        print("| " + " | ".join(cells) + " |")
        for key, value in row.extra.items():
            print(f"|  ↳ {key} | {value} |")


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def save(name: str, rows: Sequence[Row]) -> None:
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, f"{name}.json"), "w") as handle:
        json.dump([row.__dict__ for row in rows], handle, indent=1)


def rss_bytes() -> int:
    """The current resident set size."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak_rss() -> None:
    """Reset the kernel's high-water mark of this process (Linux ``clear_refs``)."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def peak_rss_bytes() -> int:
    """The resident high-water mark since the last :func:`reset_peak_rss`."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_child(module: str, *args: str) -> dict[str, Any]:
    """Run ``python -m module args`` and parse the JSON it prints last."""
    out = subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, check=False
    )
    lines = out.stdout.strip().splitlines()
    if not lines or not lines[-1].startswith("{"):
        raise RuntimeError(f"{module} {args} failed ({out.returncode}):\n{out.stderr}")
    result: dict[str, Any] = json.loads(lines[-1])
    result["exit_code"] = out.returncode
    return result
