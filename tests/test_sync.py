"""The blocking facade: parity, threads, running loops, its own thread, timeouts, fork."""

from __future__ import annotations

import asyncio
import gc
import inspect
import multiprocessing
import os
import signal
import threading
import time
from typing import Any

import pytest

import objstore
import objstore_sync
from objstore import ObjstoreTimeoutError, SyncInAsyncContextError
from objstore._path import Path
from objstore._types import GetOptions, GetResponse
from objstore_sync._loop import io_loop

RENAMED = {"aclose": "close"}


def public_async_methods() -> dict[str, Any]:
    out = {}
    for name, member in inspect.getmembers(objstore.ObjectStore):
        if name.startswith("_"):
            continue
        if inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member):
            out[RENAMED.get(name, name)] = member
        elif name in ("stream", "open_writer", "delete_many"):
            out[name] = member
    return out


def test_every_async_method_has_a_blocking_twin_with_the_same_signature() -> None:
    methods = public_async_methods()
    assert {"get", "put", "list", "list_iter", "open_reader", "open_writer", "stream"} <= set(
        methods
    )
    for name, method in methods.items():
        twin = getattr(objstore_sync.ObjectStore, name, None)
        assert twin is not None, f"objstore_sync.ObjectStore lacks {name}"
        assert not inspect.iscoroutinefunction(twin), name
        expected = [
            (p.name, p.kind, p.default) for p in inspect.signature(method).parameters.values()
        ]
        actual = [(p.name, p.kind, p.default) for p in inspect.signature(twin).parameters.values()]
        assert actual == expected, name


def test_reference_readme_example_runs_as_written() -> None:
    from objstore_sync import ObjectMeta, ObjectStore

    store = ObjectStore("memory://")
    store.put("data", b"some data")
    data = store.get("data")
    assert data == b"some data"
    blobs = store.list()
    meta: ObjectMeta = store.head("data")
    range = store.get_range("data", start=0, length=4)
    assert range == b"some"
    store.copy("data", "copied")
    copied = store.get("copied")
    assert copied == data
    assert [b.location for b in blobs] == ["data"]
    assert meta.size == 9


@pytest.mark.parametrize("inline", [True, False])
async def test_works_inside_a_running_event_loop(inline: bool) -> None:
    store = objstore_sync.ObjectStore("memory://", inline=inline)
    store.put("k", b"v")
    assert store.get("k") == b"v"


def test_blocking_call_on_the_io_thread_raises_at_once() -> None:
    store = objstore_sync.ObjectStore("memory://", inline=False)

    async def misuse() -> None:
        store.get("k")

    started = time.monotonic()
    with pytest.raises(SyncInAsyncContextError, match="own IO thread"):
        io_loop.run(misuse())
    assert time.monotonic() - started < 5


def test_many_threads_at_once() -> None:
    store = objstore_sync.ObjectStore("memory://", inline=False)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(100):
                store.put(f"t{n}/{i}", b"x")
                assert store.get(f"t{n}/{i}") == b"x"
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert len(store.list()) == 6400


class SlowStore(objstore.MemoryStore):
    """A memory store whose reads hang, to observe cancellation."""

    inline_capable = False

    def __init__(self) -> None:
        super().__init__()
        self.cancelled = threading.Event()

    async def _get(self, key: Path, options: GetOptions) -> GetResponse:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return await super()._get(key, options)


def test_timeout_cancels_the_task() -> None:
    slow = SlowStore()
    store = objstore_sync.ObjectStore(slow, call_timeout=0.2)
    with pytest.raises(ObjstoreTimeoutError, match="cancelled") as info:
        store.get_result("k")
    assert slow.cancelled.wait(5)
    # it says which call: the timeout is raised where only a coroutine is known
    assert str(info.value).startswith("get_result('k'): blocking call did not finish")
    assert (info.value.operation, info.value.path, info.value.store) == (
        "get_result",
        "k",
        "memory://",
    )


def test_ctrl_c_cancels_the_task() -> None:
    slow = SlowStore()
    store = objstore_sync.ObjectStore(slow)
    main = threading.main_thread().ident
    assert main is not None
    assert threading.current_thread() is threading.main_thread()
    timer = threading.Timer(0.3, signal.pthread_kill, args=(main, signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        store.get_result("k")
    timer.join()
    assert slow.cancelled.wait(5)


@pytest.mark.parametrize("inline", [True, False])
def test_dropped_writer_is_aborted_not_committed(inline: bool) -> None:
    store = objstore_sync.ObjectStore("memory://", inline=inline)
    writer = store.open_writer("partial")
    writer.write(b"half of it")
    del writer
    gc.collect()
    time.sleep(0.05)
    assert not store.exists("partial")


def test_blocking_reader_writer_and_stream(tmp_path: Any) -> None:
    store = objstore_sync.ObjectStore(str(tmp_path))
    with store.open_writer("f", part_size=1024) as writer:
        for i in range(10):
            writer.write(bytes([i]) * 1000)
        assert writer.tell() == 10_000
    data = b"".join(bytes([i]) * 1000 for i in range(10))
    assert writer.result is not None
    with store.open_reader("f", block_size=4096) as reader:
        assert reader.size == 10_000
        assert reader.read(5) == data[:5]
        reader.seek(9_000)
        buffer = bytearray(2000)
        assert reader.readinto(buffer) == 1000
        assert bytes(buffer[:1000]) == data[9_000:]
        assert reader.read_range(10, 20) == data[10:20]
    assert reader.closed
    with store.stream("f", chunk_size=3000) as stream:
        assert stream.meta.size == 10_000
        assert b"".join(stream) == data
    assert [m.location for m in store.list_iter()] == ["f"]


@pytest.mark.parametrize("inline", [True, False])
def test_delete_many_consumes_a_blocking_listing(inline: bool) -> None:
    store = objstore_sync.ObjectStore("memory://", inline=inline)
    for i in range(2500):
        store.put(f"x/{i}", b"")
    store.put("keep", b"")
    assert store.delete_many(store.list_iter("x"), max_concurrency=2) == 2500
    assert [m.location for m in store.list()] == ["keep"]


@pytest.mark.parametrize("inline", [True, False])
def test_versions_come_through_the_loop_in_batches(
    inline: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = objstore_sync.ObjectStore("memory://", inline=inline)
    for i in range(2500):
        store.put(f"v/{i:04d}", b"")
    trips = 0
    run = store._run

    def counted(coro: Any) -> Any:
        nonlocal trips
        trips += 1
        return run(coro)

    monkeypatch.setattr(store, "_run", counted)
    seen = [v.location for v in store.list_versions_iter("v")]
    assert seen == [f"v/{i:04d}" for i in range(2500)]
    assert trips == 4  # three lists of up to a thousand, and the end
    for version in store.list_versions_iter("v"):
        assert version.is_latest
        break  # stopping early closes the listing


def test_store_pickles(tmp_path: Any) -> None:
    import pickle

    store = objstore_sync.ObjectStore(str(tmp_path / "root"), {"fsync": True})
    store.put("k", b"v")
    clone = pickle.loads(pickle.dumps(store))
    assert clone.get("k") == b"v"
    assert clone.config["fsync"] is True
    memory = objstore_sync.ObjectStore("memory://")
    memory.put("m", b"snapshot")
    assert pickle.loads(pickle.dumps(memory)).get("m") == b"snapshot"


def _child_ops(store: objstore_sync.ObjectStore, queue: Any) -> None:
    try:
        for i in range(100):
            store.put(f"child/{i}", b"c")
        queue.put(len(store.list("child")))
    except BaseException as exc:
        queue.put(repr(exc))


def wait_child(pid: int, hang_message: str, timeout: float = 10.0) -> int:
    """Wait for a forked child; kill it and fail the test if it runs past ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(hang_message)


def test_fork_child_gets_its_own_loop() -> None:
    store = objstore_sync.ObjectStore("memory://", inline=False)
    store.put("parent/0", b"p")
    assert io_loop.thread is not None
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            for i in range(100):
                store.put(f"child/{i}", b"c")
            os.write(write_end, str(len(store.list("child"))).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    for i in range(100):
        store.put(f"parent/{i}", b"p")
    status = wait_child(pid, "the forked child hung")
    assert os.read(read_end, 100) == b"100"
    os.close(read_end)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(store.list("parent")) == 100
    assert store.list("child") == []


def test_multiprocessing_fork_child() -> None:
    store = objstore_sync.ObjectStore("memory://", inline=False)
    store.put("warm", b"x")
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=_child_ops, args=(store, queue))
    process.start()
    result = queue.get(timeout=10)
    process.join(10)
    assert result == 100
    assert process.exitcode == 0
    assert store.get("warm") == b"x"


def test_fork_while_another_thread_holds_the_memory_lock() -> None:
    async_store = objstore.MemoryStore()
    store = objstore_sync.ObjectStore(async_store)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with async_store._lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    pid = os.fork()
    if pid == 0:  # child: the holder thread does not exist here
        try:
            store.put("child", b"ok")
            os._exit(0 if store.get("child") == b"ok" else 1)
        finally:
            os._exit(2)
    release.set()
    holder.join()
    status = wait_child(pid, "the child deadlocked on the inherited lock")
    assert os.waitstatus_to_exitcode(status) == 0


def test_exit_with_open_writers_is_fast_and_commits_nothing(tmp_path: Any) -> None:
    import subprocess
    import sys

    code = (
        "import objstore_sync\n"
        f"store = objstore_sync.ObjectStore({str(tmp_path)!r}, inline=False)\n"
        "writers = [store.open_writer(f'w{i}', part_size=1024) for i in range(8)]\n"
        "for w in writers:\n"
        "    w.write(b'x' * 4096)\n"
        "print('written', flush=True)\n"
    )
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=30, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "written" in result.stdout
    assert time.monotonic() - started < 10
    assert objstore_sync.ObjectStore(str(tmp_path)).list() == []
    assert [p.name for p in tmp_path.iterdir()] == []
