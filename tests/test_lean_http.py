"""The lean HTTP/1.1 client against scripted servers on 127.0.0.1: framing, keep-alive,
stale connections, timeouts, cancellation, limits, TLS, and aiohttp's wire format."""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
import trustme
from yarl import URL

from objstore.backends._lean_http import LeanClient, ProtocolError

Script = Callable[["Seen"], Awaitable[bytes | None]]
"""Answer one request: the reply's bytes, or None to close the connection unanswered."""


@dataclass
class Seen:
    """One request as the server received it."""

    connection: int
    index: int
    head: bytes
    body: bytes

    @property
    def method(self) -> str:
        return self.head.split(b" ", 1)[0].decode()

    @property
    def headers(self) -> dict[str, str]:
        lines = self.head.decode("latin-1").split("\r\n")[1:]
        pairs = [line.split(":", 1) for line in lines if line]
        return {name.strip().lower(): value.strip() for name, value in pairs}


@dataclass
class ScriptedServer:
    script: Script
    tls: ssl.SSLContext | None = None
    close_after: bool = False
    """Close each connection after its first reply."""
    raw: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]] | None = None
    """Serve each connection with this instead of the script."""
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    open_now: int = 0
    most_open: int = 0

    async def __aenter__(self) -> ScriptedServer:
        self._writers: set[asyncio.StreamWriter] = set()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for writer in self._writers:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        number = self.connections
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            if self.raw is not None:
                await self.raw(reader, writer)
                return
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = re.search(rb"(?i)content-length: (\d+)", head)
                body = await reader.readexactly(int(length.group(1))) if length else b""
                seen = Seen(number, len(self.seen), head, body)
                self.seen.append(seen)
                reply = await self.script(seen)
                if reply is None:
                    return
                writer.write(reply)
                await writer.drain()
                if self.close_after:
                    return
        finally:
            self.open_now -= 1
            writer.close()


def ok(body: bytes = b"", extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


def client(**overrides: object) -> LeanClient:
    options: dict[str, object] = {
        "tls": ssl.create_default_context(),
        "connect_timeout": 5.0,
        "timeout": 10.0,
        "read_timeout": None,
        "idle_timeout": 90.0,
        "limit": 100,
        "randomize_addresses": True,
    }
    options.update(overrides)
    return LeanClient(**options)  # type: ignore[arg-type]


@pytest.fixture
async def echo() -> AsyncIterator[ScriptedServer]:
    async def script(seen: Seen) -> bytes:
        body = b"" if seen.method == "HEAD" else b"echo:" + seen.body
        return ok(body, 'ETag: "e"\r\nX-Dup: 1\r\nX-Dup: 2\r\n')

    async with ScriptedServer(script) as server:
        yield server


# ---- framing ----------------------------------------------------------------------------------


async def test_replies_with_a_length_reuse_one_connection(echo: ScriptedServer) -> None:
    lean = client()
    for n in range(3):
        reply, body = await lean.request("PUT", URL(f"{echo.url}/k{n}"), {}, b"v%d" % n)
        assert (reply.status, body) == (200, b"echo:v%d" % n)
        assert reply.headers["etag"] == '"e"'
        assert reply.headers.getall("X-Dup") == ["1", "2"]
    assert echo.connections == 1
    lean.close()


async def test_chunked_replies_sent_a_byte_at_a_time() -> None:
    payload = b"3;ext=1\r\nabc\r\n10\r\n" + b"x" * 16 + b"\r\n0\r\nTrailer: t\r\n\r\n"

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + payload
            for i in range(len(reply)):
                writer.write(reply[i : i + 1])
                await writer.drain()

    async with ScriptedServer(_unused, raw=trickle) as server:
        lean = client()
        for _ in range(2):
            reply, body = await lean.request("GET", URL(f"{server.url}/c"), {}, b"")
            assert (reply.status, body) == (200, b"abc" + b"x" * 16)
        assert server.connections == 1
        lean.close()


async def _unused(seen: Seen) -> bytes | None:
    raise AssertionError("a raw server runs no script")


async def test_a_reply_without_length_ends_with_the_connection() -> None:
    async def script(seen: Seen) -> bytes:
        return b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"

    async with ScriptedServer(script, close_after=True) as server:
        lean = client()
        for _ in range(2):
            _, body = await lean.request("GET", URL(f"{server.url}/k"), {}, b"")
            assert body == b"until the end"
        assert server.connections == 2  # not reused
        lean.close()


@pytest.mark.parametrize(
    ("method", "reply"),
    [
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"),
        ("GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 1000\r\n\r\n"),
        ("DELETE", b"HTTP/1.1 204 No Content\r\n\r\n"),
        ("GET", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ],
)
async def test_replies_without_a_body(method: str, reply: bytes) -> None:
    async def script(seen: Seen) -> bytes:
        return reply

    async with ScriptedServer(script) as server:
        lean = client()
        for _ in range(2):
            answer, body = await lean.request(method, URL(f"{server.url}/k"), {}, b"")
            assert body == b""
            assert answer.status in (200, 204, 304)
        assert server.connections == 1
        lean.close()


async def test_a_large_reply_arrives_whole() -> None:
    data = bytes(range(256)) * (5 * 4096 + 7)

    async def script(seen: Seen) -> bytes:
        return ok(data)

    async with ScriptedServer(script) as server:
        lean = client()
        _, body = await lean.request("GET", URL(f"{server.url}/big"), {}, b"")
        assert body == data
        lean.close()


@pytest.mark.parametrize(
    "reply",
    [
        b"SPDY/3 200 OK\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",  # then the server closes
    ],
)
async def test_broken_replies_are_protocol_errors(reply: bytes) -> None:
    async def script(seen: Seen) -> bytes:
        return reply

    async with ScriptedServer(script, close_after=True) as server:
        lean = client(timeout=2.0)
        with pytest.raises(ProtocolError):
            await lean.request("GET", URL(f"{server.url}/k"), {}, b"")
        lean.close()


# ---- connections ----------------------------------------------------------------------------


async def test_a_kept_alive_connection_closed_by_the_server_is_retried_when_idempotent() -> None:
    async def script(seen: Seen) -> bytes | None:
        # the first connection answers once, then closes on the next request unanswered
        if seen.connection == 1 and seen.index > 0:
            return None
        return ok(b"fresh" if seen.connection > 1 else b"first")

    async with ScriptedServer(script) as server:
        lean = client()
        url = URL(f"{server.url}/k")
        assert (await lean.request("GET", url, {}, b""))[1] == b"first"
        assert (await lean.request("GET", url, {}, b""))[1] == b"fresh"
        assert server.connections == 2
        lean.close()


async def test_a_post_on_a_closed_connection_is_not_resent() -> None:
    async def script(seen: Seen) -> bytes | None:
        return ok() if seen.index == 0 else None

    async with ScriptedServer(script) as server:
        lean = client()
        url = URL(f"{server.url}/k")
        await lean.request("POST", url, {}, b"1")
        with pytest.raises(ProtocolError):
            await lean.request("POST", url, {}, b"2")
        assert [s.body for s in server.seen] == [b"1", b"2"]  # sent once each
        lean.close()


async def test_timeouts() -> None:
    release = asyncio.Event()

    async def stall(seen: Seen) -> bytes:
        await release.wait()
        return ok()

    async with ScriptedServer(stall) as server:
        lean = client(timeout=0.3)
        with pytest.raises(TimeoutError):
            await lean.request("GET", URL(f"{server.url}/k"), {}, b"")
        lean.close()
        lean = client(timeout=None, read_timeout=0.3)
        with pytest.raises(TimeoutError):
            await lean.request("GET", URL(f"{server.url}/k"), {}, b"")
        lean.close()
        release.set()


async def test_a_trickling_reply_meets_the_total_timeout_not_the_read_timeout() -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(100):
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.05)

    async with ScriptedServer(_unused, raw=trickle) as server:
        lean = client(timeout=0.6, read_timeout=0.3)
        started = asyncio.get_running_loop().time()
        with pytest.raises(TimeoutError):
            await lean.request("GET", URL(f"{server.url}/k"), {}, b"")
        assert 0.5 < asyncio.get_running_loop().time() - started < 3
        lean.close()


async def test_a_cancelled_request_drops_its_connection() -> None:
    gate = asyncio.Event()

    async def script(seen: Seen) -> bytes:
        if seen.index == 0:
            await gate.wait()
        return ok(b"late" if seen.index == 0 else b"next")

    async with ScriptedServer(script) as server:
        lean = client()
        url = URL(f"{server.url}/k")
        task = asyncio.create_task(lean.request("GET", url, {}, b""))
        while not server.seen:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.set()
        assert (await lean.request("GET", url, {}, b""))[1] == b"next"  # not "late"
        assert server.connections == 2
        lean.close()


async def test_connections_per_origin_are_limited() -> None:
    async def slow(seen: Seen) -> bytes:
        await asyncio.sleep(0.05)
        return ok(b"s")

    async with ScriptedServer(slow) as server:
        lean = client(limit=2)
        url = URL(f"{server.url}/k")
        replies = await asyncio.gather(*(lean.request("GET", url, {}, b"") for _ in range(8)))
        assert [body for _, body in replies] == [b"s"] * 8
        assert server.most_open <= 2
        lean.close()


async def test_connections_idle_too_long_are_not_reused(echo: ScriptedServer) -> None:
    lean = client(idle_timeout=0.05)
    url = URL(f"{echo.url}/k")
    await lean.request("GET", url, {}, b"")
    await asyncio.sleep(0.1)
    await lean.request("GET", url, {}, b"")
    assert echo.connections == 2
    lean.close()


async def test_a_refused_connection_is_an_os_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(ConnectionRefusedError):
        await client().request("GET", URL(f"http://127.0.0.1:{port}/k"), {}, b"")


async def test_a_name_is_resolved(echo: ScriptedServer) -> None:
    for randomize in (True, False):
        lean = client(randomize_addresses=randomize)
        url = URL(echo.url.replace("127.0.0.1", "localhost") + "/k")
        assert (await lean.request("GET", url, {}, b""))[1] == b"echo:"
        lean.close()
    assert {s.headers["host"] for s in echo.seen} == {
        URL(echo.url).raw_authority.replace("127.0.0.1", "localhost")
    }


# ---- TLS ------------------------------------------------------------------------------------


async def test_tls_with_a_trusted_and_an_untrusted_certificate(echo: ScriptedServer) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    async with ScriptedServer(echo.script, tls=server_context) as server:
        trusting = ssl.create_default_context()
        ca.configure_trust(trusting)
        lean = client(tls=trusting)
        assert (await lean.request("PUT", URL(f"{server.url}/k"), {}, b"t"))[1] == b"echo:t"
        lean.close()
        with pytest.raises(ssl.SSLCertVerificationError):
            await client(tls=ssl.create_default_context()).request(
                "GET", URL(f"{server.url}/k"), {}, b""
            )


# ---- the wire format ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "body", "headers"),
    [
        ("GET", b"", {"Range": "bytes=0-9"}),
        ("HEAD", b"", {}),
        ("PUT", b"", {}),
        ("PUT", b"data", {"Content-Type": "text/plain", "x-amz-meta-a": "1"}),
        ("DELETE", b"", {}),
        ("POST", b"<Delete/>", {"Content-MD5": "x"}),
        ("GET", b"", {"User-Agent": "mine", "Accept-Encoding": "identity"}),
    ],
)
async def test_requests_carry_the_headers_aiohttp_sends(
    echo: ScriptedServer, method: str, body: bytes, headers: dict[str, str]
) -> None:
    url = URL(f"{echo.url}/a%20b/c%2Fd?x=1&y=%2F", encoded=True)
    lean = client()
    await lean.request(method, url, headers, body)
    lean.close()
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.request(method, url, headers=headers, data=body or None) as response,
    ):
        await response.read()
    by_lean, by_aiohttp = echo.seen
    assert by_lean.head.split(b"\r\n", 1)[0] == by_aiohttp.head.split(b"\r\n", 1)[0]
    assert by_lean.headers == by_aiohttp.headers
    assert by_lean.body == by_aiohttp.body == body
