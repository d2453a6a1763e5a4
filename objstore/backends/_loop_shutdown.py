"""Close a loop's aiohttp session when the loop shuts down, while it still runs.

A store outlives event loops: a script calls ``asyncio.run`` more than once, pytest gives each
test a loop of its own. A session left to a closed loop can no longer be closed (closing its
sockets needs that loop), so aiohttp logs "Unclosed connector" at ERROR and the sockets wait
for the garbage collector. Before closing a loop, ``asyncio.run`` (like every runner that calls
``loop.shutdown_asyncgens``) closes the async generators still suspended in it: a generator
parked in a ``try``/``finally`` around the session is a hook that runs at the loop's shutdown.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp

__all__ = ["ShutdownHook"]


class ShutdownHook:
    """Closes ``session`` when the running loop shuts down (made inside that loop)."""

    __slots__ = ("_parked",)

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._parked = _park(session)
        _step(self._parked.__anext__())  # the loop's first-iteration hook registers it

    def finish(self) -> None:
        """Retire the hook now, for a session already closed or detached."""
        with contextlib.suppress(RuntimeError):  # the loop's shutdown is closing it right now
            _step(self._parked.aclose())


async def _park(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        if not session.closed:
            await session.close()


def _step(step: Any) -> None:
    """Run a generator step that never suspends: parking, or a ``finally`` with nothing left
    to close."""
    with contextlib.suppress(StopIteration):
        step.send(None)
