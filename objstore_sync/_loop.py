"""The one background event-loop thread that serves blocking calls.

Lazy (started by the first blocking call that needs it), daemon, named ``objstore-io``, and
fork-aware: a child process starts its own thread on first use. A blocking call that times
out or is interrupted (Ctrl-C) cancels its task on the loop; a blocking call made on the loop
thread itself raises :class:`SyncInAsyncContextError` instead of deadlocking.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from objstore import ObjstoreTimeoutError, SyncInAsyncContextError

__all__ = ["IOLoop", "io_loop"]

T = TypeVar("T")


class IOLoop:
    """An asyncio loop running forever in a daemon thread of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0

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
        future = asyncio.run_coroutine_threadsafe(coro, self.loop())
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            if future.done():
                raise
            future.cancel()
            raise ObjstoreTimeoutError(
                f"blocking call did not finish within {timeout} s; it was cancelled"
            ) from None
        except BaseException:
            future.cancel()
            raise

    def submit(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Start ``coro`` on the loop without waiting (for best-effort cleanup)."""
        if self._loop is None or self._pid != os.getpid() or self._loop.is_closed():
            coro.close()
            return
        asyncio.run_coroutine_threadsafe(coro, self._loop)


io_loop = IOLoop()
os.register_at_fork(after_in_child=io_loop._after_fork)
