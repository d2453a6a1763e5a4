"""A minimal HTTP/1.1 client on ``asyncio.Protocol``: what Python reaches without aiohttp.

Benchmark-only, to measure the headroom under aiohttp's per-request cost: keep-alive
connections to one plain-HTTP host, one request at a time on each, bodies framed by
Content-Length; connections the server closed are left out. No TLS, proxies, chunked replies,
redirects, timeouts or error recovery.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable

from yarl import URL

Signer = Callable[[str, str, bytes], Awaitable[dict[str, str]]]
Reply = tuple[int, dict[str, str], bytes]


class _Connection(asyncio.Protocol):
    """One keep-alive connection; a reply completes the waiting request's future."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.waiter: asyncio.Future[Reply] | None = None
        self.no_body = False
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received += data
        waiter = self.waiter
        end = self.received.find(b"\r\n\r\n")
        if waiter is None or end < 0:
            return
        lines = bytes(self.received[:end]).decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if self.no_body else int(headers.get("content-length", "0"))
        if len(self.received) < end + 4 + length:
            return
        body = bytes(self.received[end + 4 : end + 4 + length])
        del self.received[: end + 4 + length]
        self.waiter = None
        waiter.set_result((int(lines[0][9:12]), headers, body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True  # e.g. the server's keep-alive timeout: the pool skips it
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost"))

    def send(self, request: bytes, *, no_body: bool) -> asyncio.Future[Reply]:
        assert self.transport is not None
        self.no_body = no_body
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.waiter


class BareProtocol:
    """Signed requests over a pool of :class:`_Connection`."""

    def __init__(self, base: str, sign: Signer) -> None:
        url = URL(base)
        self.host, self.port = url.host or "127.0.0.1", url.port or 80
        self.authority = url.raw_authority
        self.base_path = url.raw_path.rstrip("/")
        self.sign = sign
        self.idle: collections.deque[_Connection] = collections.deque()

    async def request(self, method: str, path: str, body: bytes = b"") -> None:
        headers = await self.sign(method, path, body)
        lines = [f"{method} {self.base_path}{path} HTTP/1.1", f"Host: {self.authority}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body and not any(name.lower() == "content-length" for name in headers):
            lines.append(f"Content-Length: {len(body)}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        reused = self._idle_connection()
        connection = reused or await self._connect()
        try:
            status, _, _ = await connection.send(request, no_body=method == "HEAD")
        except ConnectionError:
            if reused is None:
                raise
            # the server closed a kept-alive connection as this request went out: once more
            connection = await self._connect()
            status, _, _ = await connection.send(request, no_body=method == "HEAD")
        self.idle.append(connection)
        assert status in (200, 201), status

    def _idle_connection(self) -> _Connection | None:
        while self.idle:
            connection = self.idle.pop()
            if not connection.closed:
                return connection
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(_Connection, self.host, self.port)
        return connection

    def close(self) -> None:
        while self.idle:
            connection = self.idle.pop()
            if connection.transport is not None:
                connection.transport.close()
