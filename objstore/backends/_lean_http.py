"""A lean HTTP/1.1 client for the small, fully buffered requests of the data plane.

aiohttp spends about half of a small request's client CPU in its own layers (measured in
``benchmarks/bench_ceiling.py``: 370 µs per S3 HEAD against 141 µs for a bare client on
``asyncio.Protocol``). This client sends a request whose body is in memory and reads the whole
reply, and nothing else: keep-alive connections per (scheme, host, port) and event loop,
Content-Length, chunked and close-delimited replies, TLS, timeouts, and one retry on a fresh
connection when an idempotent request finds its kept-alive connection closed by the server.
Streams, large bodies and proxied requests stay on aiohttp (``_http.exchange`` chooses).

The wire format matches aiohttp's, header for header (``Accept``, ``Accept-Encoding``, a
``User-Agent``, ``Content-Length`` on writes and deletes, ``Content-Type`` on writes that set
none), so a signature computed for one is valid on the other.
"""

from __future__ import annotations

import asyncio
import collections
import io
import ipaddress
import random
import socket
import ssl
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDict
from yarl import URL

__all__ = ["LeanClient", "LeanReply", "ProtocolError", "USER_AGENT"]

USER_AGENT = f"Python/{sys.version_info[0]}.{sys.version_info[1]} aiohttp/{aiohttp.__version__}"
"""aiohttp's own, so that servers see one client whichever path a request takes."""

_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_WITH_LENGTH = frozenset({"PUT", "POST", "PATCH", "DELETE"})
_WITH_TYPE = frozenset({"PUT", "POST", "PATCH"})
_LARGE = 1024 * 1024
"""Replies longer than this are written into a buffer presized to their length."""
_MAX_HEAD = 64 * 1024


class ProtocolError(ConnectionError):
    """The server's reply broke HTTP/1.1 framing (the connection is dropped)."""


@dataclass(slots=True)
class LeanReply:
    """A reply's status and headers (a case-insensitive multi-mapping)."""

    status: int
    headers: CIMultiDict[str]

    def close(self) -> None:
        """Nothing to release: the body was read whole and the connection went back."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection, one request at a time; the reply completes ``waiter``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[LeanReply, bytes]] | None = None
        self._head_only = False
        self._reply: LeanReply | None = None
        self._keep_alive = True
        self._length: int | None = None  # a Content-Length body's
        self._chunked = False
        self._large: io.BytesIO | None = None
        self._chunks: list[bytes] = []
        self.received_any = False
        self._received = 0
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None
        self._read_timeout: float | None = None
        self._last_data = 0.0

    # ---- the asyncio.Protocol side ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            self._drop()  # bytes nobody asked for: the connection is no longer in step
            return
        self.received_any = True
        if self._read_timeout is not None:
            self._last_data = self._loop.time()
        try:
            self._feed(data)
        except ProtocolError as exc:
            self._fail(exc)

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost finishes a close-delimited body

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if exc is None and self._reply is not None and self._length is None and not self._chunked:
            self._finish(b"".join(self._chunks))  # a body delimited by the close
            return
        self._fail(ProtocolError("the server closed the connection before its reply ended"))

    # ---- one exchange -----------------------------------------------------------------------

    def send(
        self, request: bytes, *, head_only: bool, timeout: float | None, read_timeout: float | None
    ) -> asyncio.Future[tuple[LeanReply, bytes]]:
        """Write ``request``; the future completes with the reply and its body, or fails
        after ``timeout`` in all or ``read_timeout`` without a byte."""
        assert self.transport is not None
        self._waiter = waiter = self._loop.create_future()
        self._head_only = head_only
        self._reply, self._length, self._chunked, self._large = None, None, False, None
        self._chunks, self._received = [], 0
        self._keep_alive = True
        self.received_any = False
        now = self._loop.time()
        self._deadline = now + timeout if timeout is not None else None
        self._read_timeout, self._last_data = read_timeout, now
        self._arm()
        self.transport.write(request)
        return waiter

    def reusable(self) -> bool:
        """Whether the last exchange left the connection ready for another."""
        return self._keep_alive and not self.closed and not self._buffer

    def abort(self) -> None:
        """Drop the connection at once (a cancelled or failed exchange)."""
        self._cancel_timer()
        self._drop()

    def _drop(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _arm(self) -> None:
        """Wake at the earlier of the deadline and the read timeout (none without either)."""
        when = self._deadline
        if self._read_timeout is not None:
            silence_ends = self._last_data + self._read_timeout
            when = silence_ends if when is None else min(when, silence_ends)
        self._timer = self._loop.call_at(when, self._expire) if when is not None else None

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        now = self._loop.time()
        silent = self._read_timeout is not None and now >= self._last_data + self._read_timeout
        if silent or (self._deadline is not None and now >= self._deadline):
            self._timer = None
            self._fail(TimeoutError("the request ran past its timeout"))
        else:
            self._arm()  # bytes came since: wait for the next deadline

    def _fail(self, exc: BaseException) -> None:
        waiter = self._waiter
        self._cancel_timer()
        self._drop()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _finish(self, body: bytes) -> None:
        waiter, reply = self._waiter, self._reply
        assert waiter is not None
        assert reply is not None
        self._cancel_timer()
        self._chunks, self._large = [], None
        if not waiter.done():
            waiter.set_result((reply, body))

    # ---- parsing ------------------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        if self._reply is None:
            self._buffer += data
            if not self._read_head():
                return
            data = bytes(self._buffer)
            self._buffer.clear()
            if self._length == 0:
                if data:  # a body where none belongs (some servers answer HEAD with one)
                    self._keep_alive = False
                self._finish(b"")
                return
            if not data:
                return
        if self._chunked:
            self._buffer += data
            self._read_chunks()
        elif self._length is None:
            self._chunks.append(data)  # until the server closes
        else:
            if self._large is not None:
                self._large.write(data)
            else:
                self._chunks.append(data)
            self._received += len(data)
            self._check_length()

    def _read_head(self) -> bool:
        """Parse the status line and headers once they are all in; True when parsed."""
        buffer = self._buffer
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > _MAX_HEAD:
                    raise ProtocolError("the reply's headers are too long")
                return False
            lines = buffer[:end].decode("latin-1").split("\r\n")
            del buffer[: end + 4]
            version, _, rest = lines[0].partition(" ")
            status_text = rest[:3]
            if not version.startswith("HTTP/1.") or not status_text.isdigit():
                raise ProtocolError(f"not an HTTP/1.1 reply: {lines[0][:40]!r}")
            status = int(status_text)
            if 100 <= status < 200:
                continue  # an interim reply (100 Continue, 103 Early Hints)
            headers: CIMultiDict[str] = CIMultiDict()
            for line in lines[1:]:
                name, colon, value = line.partition(":")
                if not colon:
                    raise ProtocolError(f"malformed header line {line[:40]!r}")
                headers.add(name.strip(), value.strip())
            self._reply = LeanReply(status, headers)
            self._frame(version, headers, status)
            return True

    def _frame(self, version: str, headers: CIMultiDict[str], status: int) -> None:
        connection = headers.get("Connection", "").lower()
        self._keep_alive = (
            "keep-alive" in connection if version == "HTTP/1.0" else "close" not in connection
        )
        if self._head_only or status in (204, 304):
            self._length = 0
        elif "chunked" in headers.get("Transfer-Encoding", "").lower():
            self._chunked = True
        elif "Content-Length" in headers:
            try:
                self._length = int(headers["Content-Length"])
            except ValueError:
                raise ProtocolError("the reply's Content-Length is not a number") from None
            if self._length > _LARGE:
                self._large = io.BytesIO()
                self._large.seek(self._length - 1)
                self._large.write(b"\0")
                self._large.seek(0)
        else:
            self._keep_alive = False  # the body ends where the connection does

    def _check_length(self) -> None:
        assert self._length is not None
        if self._received < self._length:
            return
        if self._received > self._length:
            raise ProtocolError("the server sent more than the Content-Length it announced")
        if self._large is not None:
            self._finish(self._large.getvalue())
        else:
            self._finish(self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks))

    def _read_chunks(self) -> None:
        buffer = self._buffer
        while True:
            line_end = buffer.find(b"\r\n")
            if line_end < 0:
                return
            size_text = bytes(buffer[:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ProtocolError("malformed chunk size in the reply") from None
            if size == 0:
                trailer_end = buffer.find(b"\r\n\r\n", line_end)  # after any trailers
                if trailer_end < 0:
                    return
                del buffer[: trailer_end + 4]
                if buffer:
                    raise ProtocolError("the server sent bytes after the chunked body")
                self._finish(b"".join(self._chunks))
                return
            start = line_end + 2
            if len(buffer) < start + size + 2:
                return
            if buffer[start + size : start + size + 2] != b"\r\n":
                raise ProtocolError("a chunk of the reply does not end where its size says")
            self._chunks.append(bytes(buffer[start : start + size]))
            del buffer[: start + size + 2]


@dataclass(frozen=True, slots=True)
class _Origin:
    scheme: str
    host: str
    port: int


class LeanClient:
    """Keep-alive connections of one event loop, at most ``limit`` open per origin."""

    def __init__(
        self,
        *,
        tls: ssl.SSLContext,
        connect_timeout: float | None,
        timeout: float | None,
        read_timeout: float | None,
        idle_timeout: float,
        limit: int,
        randomize_addresses: bool,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._tls = tls
        self._connect_timeout = connect_timeout
        self._timeout = timeout
        self._read_timeout = read_timeout
        self._idle_timeout = idle_timeout
        self._limit = limit
        self._randomize = randomize_addresses
        self._idle: dict[_Origin, collections.deque[_Connection]] = {}
        self._slots: dict[_Origin, asyncio.Semaphore] = {}

    async def request(
        self, method: str, url: URL, headers: Mapping[str, str], body: bytes
    ) -> tuple[LeanReply, bytes]:
        """Send one request and read its whole reply.

        Raises:
            TimeoutError: past ``timeout`` (or ``connect_timeout``, ``read_timeout``).
            OSError: the connection failed (``ssl.SSLError`` for TLS); ``ProtocolError`` for
                a reply that breaks HTTP/1.1.
        """
        origin = _Origin(url.scheme, url.raw_host or "", url.port or 0)
        message = _message(method, url, headers, body)
        slots = self._slots.get(origin)
        if slots is None:
            slots = self._slots[origin] = asyncio.Semaphore(self._limit)
        async with slots:
            connection = self._idle_connection(origin)
            reused = connection is not None
            if connection is None:
                connection = await self._connect(origin)
            try:
                reply = await self._exchange(connection, message, method)
            except ProtocolError:
                if not (reused and method in _IDEMPOTENT and not connection.received_any):
                    raise
                # the server closed a kept-alive connection as the request went out: once more
                connection = await self._connect(origin)
                reply = await self._exchange(connection, message, method)
            if connection.reusable():
                connection.idle_since = time.monotonic()
                self._idle.setdefault(origin, collections.deque()).append(connection)
            elif not connection.closed:
                connection.abort()
            return reply

    async def _exchange(
        self, connection: _Connection, message: bytes, method: str
    ) -> tuple[LeanReply, bytes]:
        waiter = connection.send(
            message,
            head_only=method == "HEAD",
            timeout=self._timeout,
            read_timeout=self._read_timeout,
        )
        try:
            return await waiter
        except BaseException:
            connection.abort()  # cancelled, timed out or broken: its state is unknown
            raise

    def _idle_connection(self, origin: _Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        oldest_allowed = time.monotonic() - self._idle_timeout
        while idle:
            connection = idle.pop()
            if connection.closed:
                continue
            if connection.idle_since < oldest_allowed:
                connection.abort()
                continue
            return connection
        return None

    async def _connect(self, origin: _Origin) -> _Connection:
        secure = origin.scheme == "https"
        port = origin.port or (443 if secure else 80)
        host = origin.host.strip("[]")
        tls = self._tls if secure else None
        async with asyncio.timeout(self._connect_timeout):
            addresses = await self._addresses(host, port)
            failure: OSError | None = None
            for address in addresses:
                try:
                    _, connection = await self._loop.create_connection(
                        lambda: _Connection(self._loop),
                        address,
                        port,
                        ssl=tls,
                        server_hostname=host if tls else None,
                    )
                except ssl.SSLError:
                    raise
                except OSError as exc:
                    failure = exc
                    continue
                return connection
        assert failure is not None
        raise failure

    async def _addresses(self, host: str, port: int) -> list[str]:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            return [host]
        infos = await self._loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if self._randomize:
            random.shuffle(addresses)
        if not addresses:
            raise OSError(f"no address for {host}")
        return addresses

    def close(self) -> None:
        """Close every idle connection."""
        for idle in self._idle.values():
            while idle:
                idle.pop().abort()
        self._idle.clear()


def _message(method: str, url: URL, headers: Mapping[str, str], body: bytes) -> bytes:
    """The request's bytes: request line, headers as aiohttp would send them, body."""
    lines = [f"{method} {url.raw_path_qs} HTTP/1.1", f"Host: {url.host_port_subcomponent}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    given = {name.lower() for name in headers}
    if "accept" not in given:
        lines.append("Accept: */*")
    if "accept-encoding" not in given:
        lines.append("Accept-Encoding: gzip, deflate")
    if "user-agent" not in given:
        lines.append(f"User-Agent: {USER_AGENT}")
    if (body or method in _WITH_LENGTH) and "content-length" not in given:
        lines.append(f"Content-Length: {len(body)}")
    if method in _WITH_TYPE and "content-type" not in given:
        lines.append("Content-Type: application/octet-stream")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body if body else head
