"""Multipart writers SIGKILLed at random points (RELIABILITY B5): after the upload began,
between and during parts, while completing, after completing. Whatever the moment, the key
holds its previous content (or nothing) or the whole new content, never a part of it; what the
dead writers left behind is found by ``list_incomplete`` and removed by ``cleanup_incomplete``.

Each trial runs a writer in a process of its own (a 20 MiB object in 5 MiB parts; 200 trials of
50 MiB with ``OBJSTORE_SOAK=nightly``) and kills it either at a random time within a whole
write's duration or just after a random one of its progress reports.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

import objstore
from objstore import NotFoundError

MiB = 1024 * 1024
NIGHTLY = os.environ.get("OBJSTORE_SOAK") == "nightly"
TRIALS, SIZE = (200, 50 * MiB) if NIGHTLY else (12, 20 * MiB)
PART = 5 * MiB
KEYS = 3
"""Trials rotate over this many keys, so most find a previous version to keep intact."""

WRITER = """
import asyncio, json, random, sys
import objstore

async def main():
    url, options, key, size, seed, part = json.loads(sys.argv[1])
    data = random.Random(seed).randbytes(size)
    store = objstore.from_url(url, options)
    print("ready", flush=True)
    progress = lambda done, total: print("part", done, flush=True)
    async with store.open_writer(key, part_size=part, progress=progress) as writer:
        for start in range(0, size, 1024 * 1024):
            await writer.write(data[start : start + 1024 * 1024])
    print("committed", flush=True)
    await store.aclose()

asyncio.run(main())
"""


def _digest(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def _expected(seed: int) -> str:
    return hashlib.sha256(random.Random(seed).randbytes(SIZE)).hexdigest()


async def _content(store: objstore.ObjectStore, key: str) -> str | None:
    try:
        return _digest(await store.get(key))
    except NotFoundError:
        return None


async def _write(
    target: tuple[str, dict[str, Any]], key: str, seed: int, kill: Callable[[str, float], bool]
) -> tuple[list[str], float]:
    """Run one writer; SIGKILL it when ``kill(line, seconds since ready)`` says so (checked
    at each line it prints and every 5 ms). Return the lines it printed and the seconds from
    ready to committed."""
    url, options = target
    argument = json.dumps([url, options, key, SIZE, seed, PART])
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, argument,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    lines: list[str] = []
    ready = took = 0.0
    ended = False  # (killing an exited process would reap it behind asyncio's back)
    try:
        while not ended:
            try:
                raw = await asyncio.wait_for(process.stdout.readline(), 0.005)
            except TimeoutError:
                raw = None
            ended = raw == b""  # the writer finished
            line = raw.decode().strip() if raw else ""
            if line == "ready":
                ready = time.monotonic()
            if line == "committed":
                took = time.monotonic() - ready
            if line:
                lines.append(line)
            if not ended and ready and kill(line, time.monotonic() - ready):
                break
    finally:
        if not ended:
            process.kill()
        _, errors = await process.communicate()
    if process.returncode != -9:
        assert process.returncode == 0, errors.decode()[-2000:]
    return lines, took


def _phase(lines: list[str]) -> str:
    """Where the writer was when it was killed, as far as its reports tell."""
    if "committed" in lines:
        return "after complete"
    if f"part {SIZE}" in lines:
        return "completing"
    if any(line.startswith("part") for line in lines):
        return "between or during parts"
    return "before any part"


def _at_time(at: float) -> Callable[[str, float], bool]:
    """Kill ``at`` seconds after the writer is ready."""
    return lambda line, elapsed: elapsed >= at


def _after_report(done: int, extra: float) -> Callable[[str, float], bool]:
    """Kill ``extra`` seconds after the writer reports ``done`` bytes sent (or all of them)."""
    wanted = (f"part {done}", f"part {SIZE}")
    seen: list[float] = []

    def kill(line: str, elapsed: float) -> bool:
        if line in wanted and not seen:
            seen.append(elapsed)
        return bool(seen) and elapsed >= seen[0] + extra

    return kill


@pytest.mark.parametrize("backend", ["local", "s3", "azure", "gcs"])
async def test_killed_writers_leave_no_partial_object(
    backend: str, backend_target: Callable[[str, str], tuple[str, dict[str, Any]]]
) -> None:
    target = backend_target(backend, "")
    store = objstore.from_url(*target)
    rng = random.Random(5)
    lines, duration = await _write(target, "kill/0", 0, lambda line, t: False)
    assert lines[-1] == "committed"
    assert await _content(store, "kill/0") == _expected(0)
    phases: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    for trial in range(1, TRIALS):
        key = f"kill/{trial % KEYS}"
        previous = await _content(store, key)
        if trial % 3 == 1:  # at a random time within a whole write
            kill = _at_time(rng.uniform(0, duration * 1.05))
        elif trial % 3 == 2:  # just after a random part's report
            kill = _after_report(rng.randint(1, SIZE // PART) * PART, rng.uniform(0, 0.03))
        else:  # just after the last report: while completing
            kill = _after_report(SIZE, rng.uniform(0, 0.005))
        lines, took = await _write(target, key, trial, kill)
        if took:
            duration = min(duration, took)  # the first write runs cold
        now = await _content(store, key)
        new = _expected(trial)
        phases[_phase(lines)] += 1
        if "committed" in lines:
            assert now == new, f"trial {trial}: a completed write is not what was written"
        else:
            assert now in (previous, new), f"trial {trial}: {key!r} holds a partial object"
        outcomes["new" if now == new else "previous" if previous else "absent"] += 1
    leftover = await store.list_incomplete("kill")
    await asyncio.sleep(1.0)  # server times have whole seconds
    removed = await store.cleanup_incomplete("kill", older_than=0)
    assert await store.list_incomplete("kill") == []
    assert removed == len(leftover)
    if backend == "local":
        assert all(not name.startswith("\x01") for name in os.listdir(target[0] + "/kill"))
    await store.aclose()
    print(
        f"\n{backend}: {TRIALS} writers of {SIZE // MiB} MiB, one run {duration:.2f} s; killed "
        f"{dict(phases)}; key held {dict(outcomes)}; partial objects 0; uploads left "
        f"{len(leftover)}, removed by cleanup_incomplete {removed}"
    )
