"""An upload's deadline follows the kernel's send queue while it drains after the last slice,
and stops following it when the request is over (``backends/_upload_progress.py``)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from objstore.backends._upload_progress import MovingDeadline, _unsent

pytestmark = pytest.mark.skipif(not hasattr(socket, "TCP_INFO"), reason="TIOCOUTQ is Linux's")


@pytest.fixture
def full_connection() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A loopback TCP connection whose sender's queue holds data its peer has not read."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        sender = socket.create_connection(server.getsockname())
        receiver, _ = server.accept()
    sender.setblocking(False)
    try:
        while True:
            sender.send(b"x" * 65536)
    except BlockingIOError:
        pass
    yield sender, receiver
    sender.close()
    receiver.close()


async def test_the_deadline_moves_while_the_queue_drains_and_not_after(
    full_connection: tuple[socket.socket, socket.socket],
) -> None:
    sender, receiver = full_connection
    assert _unsent(sender) > 0
    async with asyncio.timeout(0.6) as deadline:
        moving = MovingDeadline(deadline, 0.6)
        first = deadline.when()
        moving.follow(sender)
        for _ in range(24):  # 1.2 s of slow draining, twice the timeout: never cut
            await asyncio.sleep(0.05)
            receiver.recv(64 * 1024)
        assert _unsent(sender) > 0  # still draining
        moved = deadline.when()
        assert moved is not None
        assert first is not None
        assert moved > first
        moving.close()
        await asyncio.sleep(0)
        following = [t for t in asyncio.all_tasks() if "_follow" in repr(t.get_coro())]
        assert all(t.done() for t in following)
        deadline.reschedule(None)


async def test_a_queue_that_stops_draining_lets_the_deadline_fire(
    full_connection: tuple[socket.socket, socket.socket],
) -> None:
    sender, _ = full_connection
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def follow_a_stuck_queue() -> None:
        async with asyncio.timeout(0.4) as deadline:
            moving = MovingDeadline(deadline, 0.4)
            moving.follow(sender)
            try:
                await asyncio.sleep(5)
            finally:
                moving.close()

    with pytest.raises(TimeoutError):
        await follow_a_stuck_queue()
    assert loop.time() - started < 1.0
