"""The aiohttp layer the network backends share: sessions per (process, event loop), whole-body
reads into presized buffers, HTTP dates."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import html
import io
import logging
import os
import ssl
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any, TypeVar

import aiohttp
import aiohttp.payload
from yarl import URL

from objstore._config import Config
from objstore._errors import (
    BucketNotFoundError,
    ChecksumMismatchError,
    IntegrityError,
    InvalidRangeError,
    ObjstoreConnectionError,
    ObjstoreError,
    ObjstoreTimeoutError,
    TLSError,
    TransientError,
)
from objstore._inline import gather_bounded
from objstore._path import Path
from objstore._types import (
    ByteRange,
    GetOptions,
    OffsetRange,
    RangeRequest,
    requested_part,
)
from objstore.backends._checksums import BodyChecksum
from objstore.backends._client_options import (
    ProxyRoute,
    ShuffledResolver,
    check_http_version,
    proxy_route,
    tls_context,
)
from objstore.backends._loop_shutdown import ShutdownHook
from objstore.backends._upload_progress import MovingDeadline, Progressing, RenewingWriter

__all__ = [
    "READ_BUFFER",
    "BufferPayload",
    "FilePayload",
    "ResponseBody",
    "SessionPool",
    "client_session",
    "delete_each",
    "raise_if_bucket_missing",
    "exchange",
    "http_date",
    "pages_ahead",
    "parse_http_date",
    "parse_iso_time",
    "range_header",
    "ranged_get",
    "read_body",
    "read_headers",
    "reply_time",
    "served_range",
    "session_pool",
    "transport_error",
    "verify_body",
    "xml_text",
]

MiB = 1024 * 1024
PageT = TypeVar("PageT")
READ_BUFFER = 4 * MiB
"""aiohttp's read buffer: its 64 KiB default pauses the socket thousands of times per large GET."""


class SessionPool:
    """One aiohttp session per (process, event loop), made on first use inside a coroutine.

    A forked child or a new event loop (a second ``asyncio.run``, per-test loops) gets a fresh
    session; sessions of closed loops and of the parent process are detached, never reused.
    """

    def __init__(
        self,
        make: Callable[[], aiohttp.ClientSession],
        proxy: ProxyRoute | None = None,
        timeout: float | None = None,
    ) -> None:
        self._make = make
        self._proxy = proxy
        self.timeout = timeout
        """Seconds a request may take up to its response's headers, and a body's reads may
        wait without :data:`FLOOR` bytes arriving (the ``timeout`` key; see ``BodyClock``)."""
        self._proxies: dict[tuple[str, str], URL | None] = {}
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        self._hooks: dict[asyncio.AbstractEventLoop, ShutdownHook] = {}
        """Each session's closer at its loop's shutdown (``asyncio.run`` closes it)."""
        self._pid = os.getpid()

    @property
    def pid(self) -> int:
        """The process the sessions belong to."""
        return self._pid

    def __len__(self) -> int:
        return len(self._sessions)

    def proxy_for(self, url: URL) -> URL | None:
        """The proxy a request to ``url`` goes through (``proxy_url`` or the environment),
        decided once per scheme and host: the exclusions are matched by parsing addresses."""
        if self._proxy is None:
            return None
        origin = (url.scheme, url.host or "")
        try:
            return self._proxies[origin]
        except KeyError:
            proxy = self._proxies[origin] = self._proxy.for_url(url)
            return proxy

    def session(self) -> aiohttp.ClientSession:
        """This event loop's session."""
        loop = asyncio.get_running_loop()
        if self._pid != os.getpid():
            for old_loop in list(self._sessions):
                self._retire(old_loop)
            self._pid = os.getpid()
        existing = self._sessions.get(loop)
        if existing is not None and not existing.closed:
            return existing
        # a snapshot: event loops in other threads may add their sessions meanwhile
        for old_loop in [old for old in list(self._sessions) if old.is_closed()]:
            self._retire(old_loop)  # closed by its hook, unless the loop skipped the hooks
        self._retire(loop)
        session = self._sessions[loop] = self._make()
        self._hooks[loop] = ShutdownHook(session)
        return session

    def _retire(self, loop: asyncio.AbstractEventLoop) -> None:
        """Forget ``loop``'s session, one this process can no longer close (a closed loop's,
        the parent's): detached, its sockets left to the garbage collector."""
        session, hook = self._sessions.pop(loop, None), self._hooks.pop(loop, None)
        if session is not None:
            session.detach()
        if hook is not None:
            hook.finish()

    async def close(self) -> None:
        """Close this event loop's session (the next request opens a new one)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        session, hook = self._sessions.pop(loop, None), self._hooks.pop(loop, None)
        if session is not None:
            await session.close()
        if hook is not None:
            hook.finish()


def session_pool(config: Config) -> SessionPool:
    """Sessions made from a store's client keys: timeouts, pool size and idle time, TLS
    trust, proxy, address order. Raises ``ConfigError`` for a key that cannot be honoured."""
    check_http_version(config)
    # No total: a whole-request deadline cut every body slower than it (a 2 GB GET at
    # 50 MB/s could never finish in 30 s, however often retried); exchange() and BodyClock
    # bound the headers and the body's progress instead.
    timeout = aiohttp.ClientTimeout(
        total=None,
        connect=config["connect_timeout"],
        sock_read=config.get("read_timeout"),
    )
    tls = tls_context(config)
    proxy = proxy_route(config)
    return SessionPool(lambda: client_session(config, timeout, tls), proxy, config["timeout"])


def served_range(headers: Mapping[str, str], size: int) -> tuple[int, int]:
    """The ``[start, end)`` a response carries: its ``Content-Range``, else the whole object."""
    content_range = headers.get("Content-Range", "")
    if content_range.startswith("bytes ") and "-" in content_range:
        first, _, last = content_range[6:].partition("/")[0].partition("-")
        return int(first), int(last) + 1
    return 0, size


def client_session(
    config: Config, timeout: aiohttp.ClientTimeout, tls: ssl.SSLContext | bool
) -> aiohttp.ClientSession:
    """A session for an object store: no cookies, no decompression, large read buffers."""
    connector = aiohttp.TCPConnector(
        limit=int(config.get("pool_max_idle_per_host") or 0) or 100,
        ssl=tls,
        keepalive_timeout=config["pool_idle_timeout"],
        resolver=ShuffledResolver() if config["randomize_addresses"] else None,
    )
    return aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        timeout=timeout,
        cookie_jar=aiohttp.DummyCookieJar(),  # object stores set no cookies: skip the jar's work
        read_bufsize=READ_BUFFER,
    )


FLOOR = 64 * 1024
"""Bytes a body must deliver per ``timeout`` of waiting for it (a throughput floor)."""


class BodyClock:
    """How long a body's reads may wait: ``timeout`` in all, renewed each time another
    :data:`FLOOR` bytes arrive.

    A body that keeps arriving is never cut, whatever its size (a stream of 10 GB may take an
    hour); one that stalls, or trickles (a slowloris server sending a byte at a time), ends
    with ``TimeoutError`` after ``timeout`` of waiting. Only time spent waiting counts: a
    consumer may take as long as it likes between the chunks of a stream.
    """

    __slots__ = ("_got", "_timeout", "_waited")

    def __init__(self, timeout: float | None) -> None:
        self._timeout = timeout
        self._waited = 0.0
        self._got = 0

    async def read(self, content: aiohttp.StreamReader, size: int = -1) -> bytes:
        """Up to ``size`` bytes as they arrive (``-1``: whatever is there); ``b""`` at the end.

        Raises:
            TimeoutError: ``timeout`` of waiting went by without :data:`FLOOR` bytes.
        """
        if self._timeout is None:
            return await (content.readany() if size < 0 else content.read(size))
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with asyncio.timeout(self._timeout - self._waited):
            piece = await (content.readany() if size < 0 else content.read(size))
        self._waited += loop.time() - started
        self._got += len(piece)
        if self._got >= FLOOR:
            self._got, self._waited = 0, 0.0
        return piece


async def read_body(response: aiohttp.ClientResponse, timeout: float | None) -> bytes:
    """Read a whole body; large ones in chunks into a buffer sized from Content-Length.

    aiohttp's ``read()`` gathers a large body 2-3x slower than chunked reads and holds it twice
    at the end; ``iter_chunked`` joins the received pieces into chunks (one more copy, ~10%
    slower). Here the pieces are written as received into a ``BytesIO`` presized to the length,
    whose ``getvalue()`` then hands over its buffer without a copy (CPython), so the peak stays
    near the object's size.

    Deadlines: ``timeout`` per :data:`FLOOR` bytes. A body of up to ``READ_BUFFER`` bytes is
    read whole with that budget computed from its length (aiohttp's ``read()``, the fastest
    for listing pages and small objects); a larger one, or one of unknown length, piece by
    piece under a :class:`BodyClock`.
    """
    length = response.content_length
    if response.content.is_eof():  # all of it is here (a HEAD, a small reply): no waiting
        return await response.read()
    if response.method == "HEAD" or (length is not None and length <= READ_BUFFER):
        budget = None if timeout is None else timeout * max(1.0, (length or 0) / FLOOR)
        async with asyncio.timeout(budget):
            return await response.read()
    clock = BodyClock(timeout)
    if length is None:
        pieces = []
        while piece := await clock.read(response.content):
            pieces.append(piece)
        return b"".join(pieces)
    buffer = io.BytesIO()
    buffer.seek(length - 1)
    buffer.write(b"\0")
    buffer.seek(0)
    while chunk := await clock.read(response.content):  # as received: no re-chunking copy
        buffer.write(chunk)
    if buffer.tell() != length:
        raise IntegrityError(f"body ended at {buffer.tell()} of {length} bytes")
    return buffer.getvalue()


_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


@functools.lru_cache(maxsize=4096)
def parse_http_date(text: str) -> datetime:
    """Parse an IMF-fixdate (``Wed, 26 Nov 2026 06:00:00 GMT``) fast; other forms via email.

    Cached: a listing's objects share timestamps (written in the same second), and a parse
    costs 5 µs where a cache hit costs 0.1 µs."""
    parts = text.split()
    if len(parts) == 6 and parts[5] == "GMT" and parts[2] in _MONTHS:
        hour, minute, second = parts[4].split(":")
        return datetime(
            int(parts[3]),
            _MONTHS[parts[2]],
            int(parts[1]),
            int(hour),
            int(minute),
            int(second),
            tzinfo=UTC,
        )
    return parsedate_to_datetime(text)


def reply_time(headers: Mapping[str, str], fallback: float) -> float:
    """The server's time when it replied (its ``Date``, seconds since the epoch), or
    ``fallback`` when the reply has none or an unreadable one."""
    date = headers.get("Date")
    if date:
        with contextlib.suppress(TypeError, ValueError, IndexError):
            return parse_http_date(date).timestamp()
    return fallback


def parse_iso_time(text: str | None) -> datetime:
    """Parse an ISO 8601 time as S3 listings and the GCS JSON API send it (``Z`` for UTC)."""
    if not text:
        return datetime.now(UTC)
    return _parse_iso(text)


@functools.lru_cache(maxsize=4096)
def _parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def xml_text(raw: bytes) -> str:
    """The text of an XML element's content, entities resolved (a listing's key or marker).

    The quotes of an ETag (``&#34;`` from SeaweedFS and Go servers, ``&quot;`` from AWS) are
    replaced directly: ``html.unescape`` costs ~10 µs a call, a third of a listing's parse.
    """
    text = raw.decode()
    if "&" not in text:
        return text
    text = text.replace("&#34;", '"').replace("&quot;", '"')
    return html.unescape(text) if "&" in text else text


def with_retry_after(error: ObjstoreError, headers: Mapping[str, str]) -> ObjstoreError:
    """Give a transient error the wait its reply asked for (``Retry-After``: seconds or an
    HTTP date), for the retry policy; other errors pass through."""
    if isinstance(error, TransientError):
        value = headers.get("Retry-After")
        if value:
            error.retry_after = parse_retry_after(value)
    return error


def parse_retry_after(value: str) -> float | None:
    """Seconds to wait from a ``Retry-After`` value; ``None`` for one that makes no sense."""
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parse_http_date(value.strip()).timestamp() - time.time()
        except (ValueError, TypeError, IndexError):
            return None
        return max(0.0, seconds)
    return seconds if 0.0 <= seconds < float("inf") else None


def http_date(value: datetime) -> str:
    """Format an aware datetime as an HTTP date."""
    return format_datetime(value.astimezone(UTC), usegmt=True)


def transport_error(exc: BaseException, key: str | None, service: str) -> ObjstoreError:
    """A timeout or connection failure as objstore's error: transient, so retried, except a
    failed TLS handshake (``TLSError``), which no retry can change."""
    what = f"{key!r}" if key else "the bucket"
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        reason = (
            exc.certificate_error
            if isinstance(exc, aiohttp.ClientConnectorCertificateError)
            else getattr(exc, "os_error", exc)
        )
        return TLSError(
            f"{service} request on {what}: TLS with the server failed ({reason}); its "
            "certificate must be trusted for its name (system roots, proxy_ca_certificate), "
            "or set allow_invalid_certificates for a test server",
            path=key,
        )
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return ObjstoreTimeoutError(f"{service} request on {what} timed out", path=key)
    return ObjstoreConnectionError(
        f"{service} request on {what} failed: {type(exc).__name__}: {exc}", path=key
    )


async def exchange(
    http: SessionPool,
    method: str,
    url: URL,
    *,
    headers: Mapping[str, str],
    body: bytes | aiohttp.payload.Payload,
    ok: tuple[int, ...],
    read: bool,
    key: str | None,
    service: str,
    logger: logging.Logger,
    once: bool = False,
    checksum: Callable[[Mapping[str, str]], BodyChecksum | None] | None = None,
) -> tuple[aiohttp.ClientResponse, bytes]:
    """Send one request (through the store's proxy, if any); read the body of a wanted status
    (when ``read``) or of an error.

    A body that fails half-way drops its connection; transport failures become
    :func:`transport_error`. With ``once`` (a conditional write) the request is sent at most
    once: aiohttp would otherwise resend it by itself when a pooled connection drops, and a
    lost reply would go unseen by the write's reconciliation. ``checksum`` finds the checksum
    a whole-object reply (200) announces; a body read here that does not match it raises
    :class:`ChecksumMismatchError` (retried by the caller's policy).
    """
    started = time.monotonic()
    try:
        data_arg: Any = None
        if isinstance(body, aiohttp.payload.Payload):
            data_arg = body  # streamed (a file)
        elif once:
            data_arg = BufferPayload(body, once=True)
        elif body:
            data_arg = body if len(body) <= MiB else BufferPayload(body)
        moving: MovingDeadline | None = None
        try:
            async with asyncio.timeout(http.timeout) as deadline:  # up to the response's headers
                if isinstance(data_arg, Progressing) and http.timeout is not None:
                    moving = data_arg.deadline = MovingDeadline(deadline, http.timeout)
                response = await http.session().request(
                    method,
                    url,
                    headers=headers,
                    data=data_arg,
                    allow_redirects=False,
                    proxy=http.proxy_for(url),
                )
        finally:
            if moving is not None:
                moving.close()
        try:
            if response.status in ok:
                data = await read_body(response, http.timeout) if read else b""
                if read and checksum is not None and response.status == 200:
                    verify_body(checksum(response.headers), data, key, service)
            else:
                data = await read_body(response, http.timeout)
                response.release()
        except BaseException:
            response.close()
            raise
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise transport_error(exc, key, service) from exc
    if logger.isEnabledFor(logging.DEBUG):
        elapsed = (time.monotonic() - started) * 1000
        logger.debug("%s %s -> %d (%.1f ms)", method, key, response.status, elapsed)
    return response, data


def verify_body(
    checksum: BodyChecksum | None, data: bytes | memoryview, key: str | None, service: str
) -> None:
    """Raise :class:`ChecksumMismatchError` if ``data`` is not what ``checksum`` announced."""
    if checksum is None:
        return
    checksum.update(data)
    if not checksum.matches():
        what = repr(key) if key is not None else "a request"
        raise ChecksumMismatchError(
            f"{service} sent a body for {what} that does not match its {checksum.algorithm} "
            "checksum (corrupted in transfer)",
            path=key,
        )


class BufferPayload(Progressing, aiohttp.payload.Payload):
    """A large request body sent from the caller's bytes in slices.

    aiohttp's own choices both cost: raw bytes past 1 MiB draw a ``ResourceWarning`` (one
    write stalls the loop), and a ``BytesIO`` is copied whole when aiohttp measures it
    (``getbuffer()`` unshares the bytes), which held every part of an upload in flight twice.
    """

    SLICE = 256 * 1024

    def __init__(self, data: bytes, *, once: bool = False) -> None:
        super().__init__(data, content_type="application/octet-stream")
        self._size = len(data)
        self._once = once
        """Sent at most once: aiohttp must not resend it by itself on a dropped connection."""

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return bytes(self._value).decode(encoding, errors)

    async def as_bytes(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return bytes(self._value)

    async def write(self, writer: Any) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: Any, content_length: int | None) -> None:
        self._consumed = self._once
        view = memoryview(self._value)
        end = len(view) if content_length is None else min(len(view), content_length)
        renewing = RenewingWriter(writer, self.deadline)
        for start in range(0, end, self.SLICE):
            await renewing.write(view[start : min(end, start + self.SLICE)])
        self.taken(writer)


class FilePayload(Progressing, aiohttp.payload.BufferedReaderPayload):
    """A request body streamed once from the caller's open file, from where it stands. The
    file stays open afterwards (aiohttp closes the files it is given), and aiohttp does not
    resend it by itself on a dropped connection: the caller's retry decides what to send."""

    async def write_with_length(self, writer: Any, content_length: int | None) -> None:
        self._consumed = True
        renewing: Any = RenewingWriter(writer, self.deadline)  # the one method aiohttp calls
        await super().write_with_length(renewing, content_length)
        self.taken(writer)

    def _close(self) -> None:
        pass

    async def close(self) -> None:
        pass


class ResponseBody:
    """A streaming response body (a network backend's ``GetResponse.body``)."""

    def __init__(
        self, response: aiohttp.ClientResponse, service: str, timeout: float | None
    ) -> None:
        self._response = response
        self._service = service
        self._timeout = timeout

    async def chunks(self, chunk_size: int) -> AsyncIterator[bytes]:
        clock = BodyClock(self._timeout)
        try:
            while chunk := await clock.read(self._response.content, chunk_size):
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise transport_error(exc, None, self._service) from exc

    async def read_all(self) -> bytes:
        try:
            return await read_body(self._response, self._timeout)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise transport_error(exc, None, self._service) from exc

    async def aclose(self) -> None:
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


def read_headers(options: GetOptions) -> dict[str, str]:
    """The HTTP headers of a read's range and conditions."""
    headers: dict[str, str] = {}
    if options.if_match is not None:
        headers["If-Match"] = strong_tags(options.if_match)
    if options.if_none_match is not None:
        headers["If-None-Match"] = strong_tags(options.if_none_match)
    if options.if_modified_since is not None:
        headers["If-Modified-Since"] = http_date(options.if_modified_since)
    if options.if_unmodified_since is not None:
        headers["If-Unmodified-Since"] = http_date(options.if_unmodified_since)
    if options.range is not None:
        headers["Range"] = range_header(options.range)
    return headers


def strong_tags(condition: str) -> str:
    """An ETag condition with its weak tags made strong: objstore compares ETags without
    ``W/`` (memory, local and GCS, which are checked here), while S3 and Azure never match a
    weak tag in ``If-Match``."""
    if "W/" not in condition:
        return condition
    return ", ".join(tag.strip().removeprefix("W/") for tag in condition.split(","))


def range_header(request: RangeRequest) -> str:
    """The ``Range`` header value of a range request."""
    if isinstance(request, ByteRange):
        return f"bytes={request.start}-{request.end - 1}"
    if isinstance(request, OffsetRange):
        return f"bytes={request.offset}-"
    return f"bytes=-{request.suffix}"


async def ranged_get(
    send: Callable[[str], Awaitable[tuple[aiohttp.ClientResponse, bytes]]],
    request: ByteRange | OffsetRange,
) -> bytes | None:
    """The lean half of ``get_range``: ``send`` the GET with this ``Range`` header and return
    the bytes, not parsing the reply into metadata.

    ``None`` means the general path must answer: an empty range, a refused one (416), or an
    empty reply (a start past the end that a server answered with 206 anyway); that path
    tells an empty object from a start past its end. A whole object sent back with 200 (a
    server that ignores ranges) is cut to the request.
    """
    if isinstance(request, ByteRange) and request.end == request.start:
        return None
    try:
        response, data = await send(range_header(request))
    except InvalidRangeError:
        return None
    if response.status != 206:  # the whole object: cut it (a start past the end raises)
        data = requested_part(data, 0, request, len(data))
    return data or None


def raise_if_bucket_missing(
    response: aiohttp.ClientResponse,
    body: bytes,
    key: str,
    translate: Callable[[int, bytes, Mapping[str, str], str], ObjstoreError],
) -> None:
    """After a delete that took 404 as done: a missing object is, a missing bucket is not (a
    typo in its name must not pass for a successful delete). ``translate`` is the backend's
    error translator, which tells the two 404s apart.

    Raises:
        BucketNotFoundError: the 404 was the bucket's.
    """
    if response.status == 404:
        error = translate(404, body, response.headers, key)
        if isinstance(error, BucketNotFoundError):
            raise error


async def delete_each(
    keys: Sequence[Path], delete: Callable[[Path], Awaitable[object]], limit: int
) -> dict[Path, ObjstoreError]:
    """Delete ``keys`` one request each, ``limit`` at a time; return each key's failure."""
    failures: dict[Path, ObjstoreError] = {}

    async def one(key: Path) -> None:
        try:
            await delete(key)
        except ObjstoreError as exc:
            failures[key] = exc

    await gather_bounded([one(k) for k in keys], limit)
    return failures


async def pages_ahead(
    fetch: Callable[[str | None], Awaitable[PageT]], next_token: Callable[[PageT], str | None]
) -> AsyncGenerator[PageT, None]:
    """The pages of a paged listing: ``fetch(None)`` first, then ``fetch(token)`` for the
    token ``next_token`` finds in the page before. Each next page is requested before this one
    is handed out, so the server works while the caller parses; closing early cancels it."""
    page = await fetch(None)
    while True:
        token = next_token(page)
        following = asyncio.ensure_future(fetch(token)) if token else None
        try:
            if following is not None:
                await asyncio.sleep(0)  # it sends its request now, not after the caller parses
            yield page
            if following is None:
                return
            page = await following
        finally:
            if following is not None and not following.done():
                following.cancel()
                with contextlib.suppress(BaseException):
                    await following
