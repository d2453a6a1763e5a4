"""The file-I/O worker threads behind ``offload``: results, failures, cancellation, loops, exit."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from objstore import _file_threads
from objstore._inline import offload


@pytest.fixture
def workers(monkeypatch: pytest.MonkeyPatch) -> Iterator[_file_threads._Workers]:
    """A private set of workers (so a test can bound them), shut down afterwards."""
    fresh = _file_threads._Workers()
    monkeypatch.setattr(_file_threads, "_workers", [fresh])
    yield fresh
    fresh.shutdown()


def test_results_and_failures_reach_their_callers(workers: _file_threads._Workers) -> None:
    def square_or_fail(n: int) -> int:
        if n % 7 == 0:
            raise ValueError(f"no {n}")
        time.sleep(0.0005 * (n % 3))  # finish out of order
        return n * n

    async def one(n: int) -> int | str:
        try:
            return await offload(square_or_fail, n)
        except ValueError as exc:
            return str(exc)

    async def main() -> list[int | str]:
        return await asyncio.gather(*(one(n) for n in range(500)))

    results = asyncio.run(main())
    assert results == [f"no {n}" if n % 7 == 0 else n * n for n in range(500)]
    assert 1 <= len(workers._threads) <= _file_threads.MAX_THREADS


def test_stop_iteration_becomes_a_runtime_error(workers: _file_threads._Workers) -> None:
    def stops() -> None:
        raise StopIteration

    with pytest.raises(RuntimeError, match="StopIteration"):
        asyncio.run(offload(stops))


def test_a_job_cancelled_before_it_starts_never_runs(
    workers: _file_threads._Workers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_file_threads, "MAX_THREADS", 1)
    release = threading.Event()
    ran: list[str] = []

    def blocker() -> None:
        release.wait(5)
        ran.append("blocker")

    async def main() -> None:
        first = asyncio.ensure_future(offload(blocker))
        await asyncio.sleep(0.05)  # the only worker is now busy
        second = asyncio.ensure_future(offload(ran.append, "cancelled"))
        await asyncio.sleep(0)
        second.cancel()
        release.set()
        await first
        with pytest.raises(asyncio.CancelledError):
            await second
        await offload(ran.append, "after")

    asyncio.run(main())
    assert ran == ["blocker", "after"]
    assert len(workers._threads) == 1


def test_loops_in_several_threads_get_their_own_results(
    workers: _file_threads._Workers,
) -> None:
    outcomes: dict[int, list[int]] = {}

    def run_loop(base: int) -> None:
        async def main() -> list[int]:
            return await asyncio.gather(*(offload(int.__add__, base, i) for i in range(200)))

        outcomes[base] = asyncio.run(main())

    threads = [threading.Thread(target=run_loop, args=(base,)) for base in (0, 1000, 2000)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == {base: [base + i for i in range(200)] for base in (0, 1000, 2000)}


def test_a_closed_loop_does_not_stop_the_workers(workers: _file_threads._Workers) -> None:
    release = threading.Event()

    abandoned: list[asyncio.Future[bool]] = []

    async def abandon() -> None:
        abandoned.append(asyncio.ensure_future(offload(release.wait, 5)))
        await asyncio.sleep(0.05)

    loop = asyncio.new_event_loop()
    loop.run_until_complete(abandon())
    loop.close()
    release.set()  # the job now finishes for a closed loop
    time.sleep(0.05)
    assert asyncio.run(offload(sum, [1, 2, 3])) == 6


def test_jobs_taken_before_exit_finish_before_the_interpreter_stops(
    tmp_path: os.PathLike[str],
) -> None:
    marker = os.path.join(os.fspath(tmp_path), "written")
    script = f"""
import asyncio, time
from objstore._inline import offload

def slow_write():
    time.sleep(0.5)
    with open({marker!r}, "w") as handle:
        handle.write("done")

async def main():
    asyncio.ensure_future(offload(slow_write))
    await asyncio.sleep(0.05)  # a worker has taken it; the program ends now

asyncio.run(main())
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    with open(marker) as handle:
        assert handle.read() == "done"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_starts_its_own_workers() -> None:
    assert asyncio.run(offload(os.getpid)) == os.getpid()  # workers exist in the parent
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        try:
            ok = asyncio.run(offload(os.getpid)) == os.getpid()
        except BaseException:
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_loop_without_weak_references_still_gets_its_results(
    workers: _file_threads._Workers, monkeypatch: pytest.MonkeyPatch
) -> None:
    class NoWeakKeys:
        def get(self, key: object) -> None:
            raise TypeError(f"cannot create weak reference to {type(key).__name__!r} object")

    monkeypatch.setattr(workers, "_inboxes", NoWeakKeys())

    async def main() -> list[int]:
        return await asyncio.gather(*(offload(abs, -n) for n in range(100)))

    assert asyncio.run(main()) == list(range(100))


def test_without_an_exit_hook_the_workers_cannot_hold_the_interpreter_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where the hook is missing or refused (first import during shutdown), workers are
    daemons: a non-daemon worker would make the interpreter wait for it forever."""
    registered: list[object] = []
    monkeypatch.setattr(threading, "_register_atexit", registered.append, raising=False)
    assert _file_threads._join_at_exit() is True
    assert registered == [_file_threads._shutdown]

    def refuse(hook: object) -> None:
        raise RuntimeError("can't register atexit after shutdown")

    monkeypatch.setattr(threading, "_register_atexit", refuse)
    assert _file_threads._join_at_exit() is False
    monkeypatch.delattr(threading, "_register_atexit")
    assert _file_threads._join_at_exit() is False
