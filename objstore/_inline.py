"""Every place objstore may suspend, so that a coroutine can also be driven without a loop.

Memory and local stores never need the network. When the blocking facade calls them it runs
their coroutines *inline*: it sends ``None`` into the coroutine on the caller's thread and reads
the result from ``StopIteration``. For that to work, every suspension point in the shared code
goes through the helpers here, which in inline mode do the work synchronously: thread offloads
call the function directly and fan-outs run one after another. A coroutine that still suspends
in inline mode is a bug, reported as ``RuntimeError``.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, ParamSpec, TypeVar

# asyncio and the file threads load on first use: `import objstore` stays light, and any
# caller that awaits these helpers has imported asyncio already.

__all__ = ["gather_bounded", "inline_active", "offload", "run_inline"]

T = TypeVar("T")
P = ParamSpec("P")

_INLINE: contextvars.ContextVar[bool] = contextvars.ContextVar("objstore_inline", default=False)


def inline_active() -> bool:
    """Say whether the current coroutine is being driven inline (no event loop)."""
    return _INLINE.get()


def run_inline(coro: Coroutine[Any, Any, T]) -> T:
    """Drive a coroutine that never suspends to completion on this thread."""
    token = _INLINE.set(True)
    try:
        coro.send(None)
    except StopIteration as stop:
        result: T = stop.value
        return result
    finally:
        _INLINE.reset(token)
    coro.close()
    raise RuntimeError("objstore bug: a coroutine suspended while driven inline")


async def offload(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run blocking ``fn`` in a file-I/O worker thread, or directly when driven inline.

    The workers (``objstore._file_threads``) are more than asyncio's default executor has
    (file syscalls wait on the disk, not the CPU) and separate from it, so file I/O cannot
    starve other ``to_thread`` users.
    """
    if _INLINE.get():
        return fn(*args, **kwargs)
    import asyncio

    call = functools.partial(fn, *args, **kwargs) if kwargs or args else fn
    try:
        from objstore import _file_threads

        future = _file_threads.submit(asyncio.get_running_loop(), call)
    except RuntimeError:  # interpreter exit: no new work for the workers (aborts still must run)
        return fn(*args, **kwargs)
    result: T = await future
    return result


async def gather_bounded(aws: Iterable[Awaitable[T]], limit: int) -> list[T]:
    """Await ``aws`` with at most ``limit`` running at once; results keep the input order.

    The first failure cancels the rest and is raised as it is (no ``ExceptionGroup``, so
    ``except NotFoundError`` keeps working); cancelling the caller cancels every task.
    Inline, the awaitables run one after another.
    """
    import asyncio

    items = list(aws)
    if _INLINE.get() or len(items) <= 1 or limit <= 1:
        try:
            return [await a for a in items]
        finally:
            _close_unstarted(items)
    semaphore = asyncio.Semaphore(limit)

    async def run(aw: Awaitable[T]) -> T:
        try:
            async with semaphore:
                return await aw
        finally:
            _close_unstarted((aw,))

    tasks = [asyncio.ensure_future(run(aw)) for aw in items]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    return [task.result() for task in tasks]


def _close_unstarted(items: Iterable[Awaitable[Any]]) -> None:
    """Close coroutines a failure left unawaited (closing a finished one is a no-op)."""
    for aw in items:
        if isinstance(aw, Coroutine):
            aw.close()
