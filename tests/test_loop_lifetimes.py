"""A store outlives event loops: each ``asyncio.run`` closes the connections it opened, and
an unclosed blocking store exits quietly (``backends/_loop_shutdown.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

import objstore

CLOUDS = ["s3", "gcs", "azure"]


def _connections_to(port: int) -> int:
    """This process's established TCP connections to ``port`` on 127.0.0.1."""
    ours = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                ours.add(target[8:-1])
    count = 0
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            peer_port = int(fields[2].rsplit(":", 1)[1], 16)
            count += peer_port == port and fields[3] == "01" and fields[9] in ours
    return count


@pytest.mark.parametrize("backend", CLOUDS)
def test_each_asyncio_run_closes_what_it_opened(
    backend: str,
    backend_target: Callable[[str, str], tuple[str, dict[str, str]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, options = backend_target(backend, "")
    port = urlsplit(next(v for v in options.values() if v.startswith("http"))).port
    assert port is not None
    store = objstore.from_url(url, options)

    async def use(run: int) -> int:
        await asyncio.gather(*(store.put(f"k{run}-{i}", b"x" * 100) for i in range(8)))
        await store.delete_many([f"k{run}-{i}" for i in range(8)])
        return _connections_to(port)

    before = _connections_to(port)  # the fixtures' own clients (botocore keeps one alive)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        for run in range(3):
            assert asyncio.run(use(run)) > before  # connections were open inside the run
            assert _connections_to(port) == before  # and closed by the loop's shutdown
        gc.collect()
    assert not [r for r in caplog.records if "Unclosed" in r.getMessage()]
    asyncio.run(store.aclose())


@pytest.mark.parametrize("backend", CLOUDS)
def test_an_unclosed_blocking_store_exits_quietly(
    backend: str, backend_target: Callable[[str, str], tuple[str, dict[str, str]]]
) -> None:
    url, options = backend_target(backend, "")
    script = (
        "import json, sys, objstore_sync\n"
        "store = objstore_sync.ObjectStore(sys.argv[1], json.loads(sys.argv[2]))\n"
        "store.put('k', b'x')\n"
        "assert store.get('k') == b'x'\n"
        "writer = store.open_writer('left-open', part_size=5 * 2**20)\n"
        "writer.write(b'y' * 6 * 2**20)\n"  # an upload begun; nothing is closed: the process ends
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script, url, json.dumps(options)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no "Unclosed client session" / "Unclosed connector"
    assert time.monotonic() - started < 30
    store = objstore.from_url(url, options)  # the writer was aborted before the sessions closed

    async def check() -> None:
        assert not await store.exists("left-open")
        assert await store.list_incomplete() == []
        await store.aclose()

    asyncio.run(check())
