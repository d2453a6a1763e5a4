"""A fault-injecting HTTP reverse proxy on 127.0.0.1, for the reliability tests.

Requests are forwarded unchanged to the upstream server (the ``Host`` header too, so signatures
stay valid). Rules pick requests by method and a path/query substring, and inject a fault:

- ``"status:503"``: answer with that status (and the rule's ``headers``) without forwarding;
- ``"reset_before"``: drop the connection without forwarding;
- ``"drop_upload"``: read half of the request's body, then drop the connection;
- ``"delay:3"``: wait that many seconds, then forward;
- ``"slow_upload"``: read the request's body 256 KiB every 0.1 s (a slow uplink,
  2.5 MiB/s), then forward;
- ``"stall_upload"``: read 1 MiB of the request's body, then stop reading (for ``STALL``
  seconds, then drop the connection; bodies up to 1 MiB pass);
- ``"reset_after"``: forward, let the upstream apply the request, then drop the connection
  (the response is lost);
- ``"truncate"``: forward, then send the headers and only half of the body;
- ``"corrupt"``: forward, then send the body with its middle byte flipped (same length: only
  a checksum can tell);
- ``"corrupt_upload"``: forward the request's body with its middle byte flipped;
- ``"ignore_range"``: forward without the ``Range`` header, as a server that does not do
  ranges would (the whole object comes back with 200);
- ``"hang"``: take the request and never answer (a black hole);
- ``"trickle"``: forward, then send the headers and the body one byte every 0.25 s (a
  slowloris server);
- ``"throttle"``: forward, then send the body 64 KiB every 0.1 s (a slow link, 640 KB/s).

Each rule fires ``times`` times, or with ``every=N`` on every N-th matching request for as long
as the proxy runs. ``proxy.log`` records ``(method, path_qs, fault or None)``.

``answer`` stands in for a check the emulator behind does not make: it sees each request and
its body first, and a response it returns is sent instead of forwarding.

It is also a forward proxy (``proxy_url``): ``proxy.targets`` records each request's target as
sent (absolute-form through a proxy) and its ``Proxy-Authorization``; with ``tls`` (a server
``SSLContext``) it serves HTTPS.
:func:`serve_in_thread` runs a proxy on a thread of its own, for blocking callers (pyarrow).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from yarl import URL

import objstore
from objstore._errors import InvalidRangeError

__all__ = [
    "FaultProxy",
    "ProxiedBackend",
    "ENDPOINT_KEYS",
    "Rule",
    "check_ranges_from_whole_replies",
    "serve_in_thread",
    "split_endpoint",
]

ENDPOINT_KEYS = {"s3": "aws_endpoint", "gcs": "google_base_url", "azure": "azure_storage_endpoint"}
"""The option that names each network backend's endpoint (what a proxy takes the place of)."""

STALL = 4.0
"""How long a ``stall_upload`` stalls."""

_HOP_HEADERS = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "proxy-authorization",
}


@dataclass
class Rule:
    """Inject ``fault`` into the next ``times`` requests that match."""

    fault: str
    method: str | None = None
    contains: str = ""
    times: int = 1
    every: int = 0
    """When positive: fire on every ``every``-th matching request, without a limit."""
    seen: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    """Headers of a ``status:`` answer (``Retry-After``)."""
    avoid: str = ""
    """When set: requests whose path and query contain it are spared."""
    after: int = 0
    """The first ``after`` matching requests are spared."""

    def matches(self, method: str, path_qs: str) -> bool:
        if (self.method is not None and self.method != method) or self.contains not in path_qs:
            return False
        if (self.avoid and self.avoid in path_qs) or (self.every <= 0 and self.times <= 0):
            return False
        self.seen += 1
        if self.seen <= self.after:
            return False
        return self.every <= 0 or (self.seen - self.after) % self.every == 0


@dataclass
class FaultProxy:
    """The proxy; ``async with FaultProxy(upstream) as proxy`` gives ``proxy.url``."""

    upstream: str
    rules: list[Rule] = field(default_factory=list)
    log: list[tuple[str, str, str | None]] = field(default_factory=list)
    targets: list[tuple[str, str | None]] = field(default_factory=list)
    url: str = ""
    tls: ssl.SSLContext | None = None
    answer: Callable[[web.Request, bytes], web.Response | None] | None = None

    async def __aenter__(self) -> FaultProxy:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # bodies pass as sent: aiohttp would otherwise decompress a gzip-encoded upload
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, auto_decompress=False
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.tls)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()
        await self._session.close()

    def _rule(self, method: str, path_qs: str) -> Rule | None:
        for rule in self.rules:
            if rule.matches(method, path_qs):
                if rule.every <= 0:
                    rule.times -= 1
                return rule
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        rule = self._rule(request.method, request.path_qs)
        fault = rule.fault if rule else None
        self.log.append((request.method, request.path_qs, fault))
        self.targets.append((request.raw_path, request.headers.get("Proxy-Authorization")))
        if fault == "drop_upload":
            await request.content.read(max(request.content_length or 0, 2) // 2)
            return await _drop(request)
        if fault and fault.startswith("delay:"):
            await asyncio.sleep(float(fault.split(":")[1]))
        if fault in ("slow_upload", "stall_upload"):
            body = await _read_slowly(request, stall=fault == "stall_upload")
        else:
            body = await request.read()
        if fault == "corrupt_upload" and body:
            body = _flipped(body)
        if self.answer is not None and (reply := self.answer(request, body)) is not None:
            return reply
        if rule and fault and fault.startswith("status:"):
            status = int(fault.split(":")[1])
            return web.Response(status=status, text="injected", headers=rule.headers)
        if fault == "reset_before":
            return await _drop(request)
        if fault == "hang":
            await asyncio.Event().wait()  # until the client gives up (the handler is cancelled)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        if fault == "ignore_range":
            headers = {k: v for k, v in headers.items() if k.lower() != "range"}
        data: object = body if len(body) <= 1 << 20 else io.BytesIO(body)  # aiohttp warns on more
        # the path as sent (decoded and encoded again, a key's signature could fail), and no
        # Content-Type that aiohttp would add to a body-less PUT (Shared Key signs it)
        target = URL(self.upstream + request.rel_url.raw_path_qs, encoded=True)
        untyped = () if "Content-Type" in request.headers else ("Content-Type",)
        async with self._session.request(
            request.method, target, headers=headers, data=data if body else None,
            allow_redirects=False, skip_auto_headers=untyped,
        ) as upstream:  # fmt: skip
            payload = await upstream.read()
            if fault == "corrupt" and payload:
                payload = _flipped(payload)
            if fault == "reset_after":
                return await _drop(request)
            response = web.StreamResponse(status=upstream.status)
            for name, value in upstream.headers.items():
                if name.lower() not in _HOP_HEADERS:
                    response.headers[name] = value
            if fault in ("trickle", "throttle"):
                piece, pause = (1, 0.25) if fault == "trickle" else (64 * 1024, 0.1)
                response.content_length = len(payload)
                await response.prepare(request)
                for index in range(0, len(payload), piece):
                    await response.write(payload[index : index + piece])
                    await asyncio.sleep(pause)
                return response
            if fault == "truncate":
                response.content_length = len(payload)
                await response.prepare(request)
                await response.write(payload[: len(payload) // 2])
                return await _drop(request)
            if request.method == "HEAD":  # no body: pass the object's length through
                response.content_length = int(upstream.headers.get("Content-Length", "0"))
            else:
                response.content_length = len(payload)
            await response.prepare(request)
            await response.write(payload)
            return response


class ProxiedBackend:
    """A network backend (``name``: s3, gcs, azure) behind a :class:`FaultProxy`:
    ``open(**options)`` makes stores on a fresh bucket through it (closed after the test)."""

    def __init__(self, name: str, url: str, options: dict[str, str], proxy: FaultProxy) -> None:
        self.name = name
        self.proxy = proxy
        self._url = url
        self._options = options
        self._made: list[Any] = []

    def open(self, **options: str) -> Any:
        store = objstore.from_url(self._url, {**self._options, **options})
        self._made.append(store)
        return store

    async def close(self) -> None:
        for store in self._made:
            await store.aclose()


async def check_ranges_from_whole_replies(store: Any, proxy: FaultProxy, key: str) -> None:
    """Ranged reads through ``proxy`` with every Range header dropped (the server sends the
    whole object with 200) still give just the ranges: ``get_range``, ``get_ranges`` and
    ``open_reader``."""
    data = bytes(range(256)) * 64
    await store.put(key, data)
    proxy.rules = [Rule("ignore_range", "GET", contains=key, every=1)]
    assert await store.get_range(key, 10, 20) == data[10:20]
    assert await store.get_range(key, 16000) == data[16000:]
    assert await store.get_range(key, 100, length=5000) == data[100:5100]
    assert await store.get_range(key, 16380, 99999) == data[16380:]
    assert await store.get_ranges(key, [(0, 3), (9000, 9010)], coalesce=0) == [
        data[0:3],
        data[9000:9010],
    ]
    async with await store.open_reader(key, block_size=4096) as reader:
        reader.seek(5000)
        assert await reader.read(100) == data[5000:5100]
    for past_the_end in ((len(data), None), (len(data) + 5, len(data) + 10)):
        try:
            await store.get_range(key, *past_the_end)
        except InvalidRangeError:
            continue
        raise AssertionError(f"get_range{past_the_end} past the end did not raise")
    try:
        await store.get_ranges(key, [(0, 3), (len(data) + 5, len(data) + 10)], coalesce=0)
    except InvalidRangeError:
        pass
    else:
        raise AssertionError("get_ranges with a range past the end did not raise")
    assert [fault for _, _, fault in proxy.log].count("ignore_range") >= 9


def _flipped(data: bytes) -> bytes:
    """``data`` with one bit of its middle byte flipped."""
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]


async def _read_slowly(request: web.Request, *, stall: bool) -> bytes:
    """The request's body read as a slow or stalled uplink would carry it (aiohttp stops
    reading the socket while its buffer is full, so the client's sends slow down too)."""
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is not None:  # a small window: the kernel holds back little of the client's data
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    pieces: list[bytes] = []
    taken = 0
    while piece := await request.content.read(256 * 1024):
        pieces.append(piece)
        taken += len(piece)
        if stall and taken >= 1 << 20:
            # a client that gives up cannot be seen leaving while reading is paused (its FIN
            # waits behind the unread bytes), so the stall ends after STALL seconds
            await asyncio.sleep(STALL)
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # as aiohttp cancels a handler whose client left
        await asyncio.sleep(0 if stall else 0.1)
    return b"".join(pieces)


async def _drop(request: web.Request) -> web.StreamResponse:
    """Abort the client's connection; aiohttp then cancels this handler."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    await asyncio.sleep(3600)
    raise AssertionError("unreachable: the handler is cancelled when its connection drops")


def split_endpoint(endpoint: str) -> tuple[str, str]:
    """``endpoint`` as the origin a proxy forwards to and the path that follows the proxy's
    URL in its place (Azure's account, ``/devstoreaccount1``; nothing for S3 and GCS)."""
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")


@contextlib.contextmanager
def serve_in_thread(proxy: FaultProxy) -> Iterator[FaultProxy]:
    """Run ``proxy`` on an event loop in a background thread while the block runs."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="faultproxy", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(proxy.__aenter__(), loop).result(30)
        try:
            yield proxy
        finally:
            asyncio.run_coroutine_threadsafe(proxy.__aexit__(), loop).result(30)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
