"""The one background event-loop thread that serves blocking calls.

Lazy (started by the first blocking call that needs it), daemon, named ``objstore-io``, and
fork-aware: a child process starts its own thread on first use. A blocking call that times
out or is interrupted (Ctrl-C) cancels its task on the loop; a blocking call made on the loop
thread itself raises :class:`SyncInAsyncContextError` instead of deadlocking.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from objstore import ObjstoreTimeoutError, SyncInAsyncContextError

if TYPE_CHECKING:
    import asyncio

__all__ = ["IOLoop", "io_loop"]

T = TypeVar("T")

EXIT_GRACE = 1.0
"""Seconds the interpreter's exit waits for the loop to close its sessions."""


class IOLoop:
    """An asyncio loop running forever in a daemon thread of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._exit_callbacks: list[Callable[[], None]] = []

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._loop = None
        self._thread = None
        self._pid = 0

    @property
    def thread(self) -> threading.Thread | None:
        """The loop's thread in this process, if started."""
        return self._thread if self._pid == os.getpid() else None

    def loop(self) -> asyncio.AbstractEventLoop:
        """Return the running loop, starting its thread on first use."""
        loop = self._loop
        if loop is not None and self._pid == os.getpid():
            return loop
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                self._start()
            assert self._loop is not None
            return self._loop

    def _start(self) -> None:
        import asyncio  # loaded with the first call that needs the loop thread

        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        thread = threading.Thread(target=main, name="objstore-io", daemon=True)
        thread.start()
        ready.wait()
        self._loop, self._thread, self._pid = loop, thread, os.getpid()

    def on_exit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` at interpreter exit, while the loop still serves blocking calls."""
        self._exit_callbacks.append(callback)

    def _at_exit(self) -> None:
        """At interpreter exit: the ``on_exit`` callbacks (aborting writers left open), then
        let the loop close its sessions before the interpreter stops its daemon thread. Each
        session's hook runs in ``shutdown_asyncgens`` (``backends/_loop_shutdown.py``); else an
        unclosed store prints "Unclosed client session" as the process exits."""
        for callback in self._exit_callbacks:
            with contextlib.suppress(Exception):
                callback()
        loop = self._loop
        if loop is None or self._pid != os.getpid() or loop.is_closed():
            return  # never started here (a forked child's copy of the parent's), or gone
        import asyncio

        done = asyncio.run_coroutine_threadsafe(loop.shutdown_asyncgens(), loop)
        with contextlib.suppress(Exception):  # a busy or stuck loop must not hold up the exit
            done.result(timeout=EXIT_GRACE)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and block until it finishes.

        Raises:
            SyncInAsyncContextError: called on the loop's own thread.
            ObjstoreTimeoutError: ``timeout`` seconds passed (the task is cancelled).
        """
        if threading.current_thread() is self.thread:
            coro.close()
            raise SyncInAsyncContextError(
                "a blocking objstore call was made on objstore's own IO thread (from a callback "
                "or coroutine it runs); use the async API (objstore) there"
            )
        loop = self.loop()
        call = _Call(coro)
        loop.call_soon_threadsafe(call.start)
        try:
            finished = call.done.acquire(timeout=-1 if timeout is None else timeout)
        except BaseException:
            loop.call_soon_threadsafe(call.cancel)
            raise
        if not finished:
            loop.call_soon_threadsafe(call.cancel)
            raise ObjstoreTimeoutError(
                f"blocking call did not finish within {timeout} s; it was cancelled"
            )
        assert call.task is not None
        result: T = call.task.result()
        return result

    def submit(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Start ``coro`` on the loop without waiting (for best-effort cleanup)."""
        if self._loop is None or self._pid != os.getpid() or self._loop.is_closed():
            coro.close()
            return
        import asyncio

        asyncio.run_coroutine_threadsafe(coro, self._loop)


class _Call:
    """One blocking call: started as a task on the loop, awaited through a plain lock.

    Lighter than ``asyncio.run_coroutine_threadsafe`` (no chained futures): about 45 µs a
    round trip here against 70-90 µs.
    """

    __slots__ = ("cancelled", "coro", "done", "task")

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.coro = coro
        self.done = threading.Lock()
        self.done.acquire()
        self.task: asyncio.Task[Any] | None = None
        self.cancelled = False

    def start(self) -> None:
        """Create the task (on the loop thread), unless the caller gave up already."""
        if self.cancelled:
            self.coro.close()
            return
        import asyncio

        self.task = asyncio.ensure_future(self.coro)
        self.task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self.done.release()

    def cancel(self) -> None:
        """Cancel the task (on the loop thread) after a timeout or an interrupt."""
        self.cancelled = True
        if self.task is not None:
            self.task.cancel()


io_loop = IOLoop()
os.register_at_fork(after_in_child=io_loop._after_fork)
atexit.register(io_loop._at_exit)
