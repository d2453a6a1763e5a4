"""Upload deadlines that follow progress: ``timeout`` bounds a stall of a request body, not
its length.

:func:`~objstore.backends._http.exchange` gives a body that reports progress (a
:class:`Progressing` payload) the request's :class:`MovingDeadline`. Each slice the connection
takes moves the deadline ``timeout`` on; after the last slice, the kernel may still hold a few
MiB to send (its send buffer), so the deadline follows that queue (``TIOCOUTQ``, Linux) while
it drains, and from then on ``timeout`` covers the service's reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from typing import Any

try:
    import fcntl
    import termios

    _TIOCOUTQ: int | None = termios.TIOCOUTQ
except (ImportError, AttributeError):  # not a Unix that has it
    _TIOCOUTQ = None

__all__ = ["MovingDeadline", "Progressing", "RenewingWriter"]


class MovingDeadline:
    """An ``asyncio.timeout`` moved ``timeout`` on at each sign of progress."""

    def __init__(self, deadline: asyncio.Timeout, timeout: float) -> None:
        self._deadline = deadline
        self._timeout = timeout
        self._loop = asyncio.get_running_loop()
        self.tick = min(timeout / 4, 1.0)
        """How often a draining send queue is looked at."""
        self.open = True
        """False once the request is over: nothing moves the deadline any more."""
        self._follower: asyncio.Task[None] | None = None

    def renew(self) -> None:
        if self.open and not self._deadline.expired():
            self._deadline.reschedule(self._loop.time() + self._timeout)

    def follow(self, sock: Any) -> None:
        """Renew while ``sock``'s send queue drains (until :meth:`close`)."""
        if self.open and self._follower is None:
            self._follower = self._loop.create_task(_follow(self, sock))

    def close(self) -> None:
        """The request is over (its reply came, or it failed)."""
        self.open = False
        if self._follower is not None:
            self._follower.cancel()


class Progressing:
    """A request body that moves its request's deadline as the connection takes it."""

    deadline: MovingDeadline | None = None

    def taken(self, writer: Any) -> None:
        """Call after the last slice: follow the kernel's send queue while it drains."""
        deadline = self.deadline
        transport = getattr(writer, "transport", None)
        sock = transport.get_extra_info("socket") if transport is not None else None
        if deadline is not None and sock is not None and _unsent(sock) > 0:
            deadline.follow(sock)


class RenewingWriter:
    """aiohttp's stream writer, moving a deadline after each write it has taken."""

    def __init__(self, writer: Any, deadline: MovingDeadline | None) -> None:
        self._writer = writer
        self._deadline = deadline

    async def write(self, chunk: bytes | memoryview) -> None:
        await self._writer.write(chunk)
        if self._deadline is not None:
            self._deadline.renew()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


async def _follow(deadline: MovingDeadline, sock: Any) -> None:
    """Move ``deadline`` on while ``sock``'s send queue shrinks; stop when it is empty, when
    it stops shrinking (then the deadline runs out) or when the request is over."""
    left = _unsent(sock)
    while left > 0 and deadline.open:
        await asyncio.sleep(deadline.tick)
        now = _unsent(sock)
        if now < left:
            deadline.renew()
        left = now


def _unsent(sock: Any) -> int:
    """Bytes the kernel has yet to send (or see acknowledged) on ``sock``; 0 where unknown."""
    if _TIOCOUTQ is None:
        return 0
    with contextlib.suppress(OSError, ValueError, AttributeError):
        raw = fcntl.ioctl(sock.fileno(), _TIOCOUTQ, b"\0\0\0\0")
        return int(struct.unpack("i", raw)[0])
    return 0
