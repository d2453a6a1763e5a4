"""GCS resumable uploads resumed the way GCS documents: after a failure, ask the session how many
bytes it holds and send only the rest; after a ``308`` that kept fewer bytes than were sent,
send the rest too. fake-gcs-server cannot play this (a status query finishes its upload with
whatever it holds, fsouza/fake-gcs-server#1149), so a stand-in on 127.0.0.1 does: it keeps
chunks in multiples of 256 KiB, refuses a chunk that does not start where it stopped, and
misbehaves on the requests a test names."""

from __future__ import annotations

import errno
import json
import os
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

import objstore
from objstore.testing.standin import serve

KiB, MiB = 1024, 1024 * 1024
QUANTUM = 256 * KiB
RETRIES = {"backoff_initial": "5ms", "backoff_max": "50ms", "max_retries": "5"}
_RANGE = re.compile(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)")


class ResumableServer:
    """One bucket's resumable uploads and finished objects, kept as GCS keeps them.

    ``faults`` maps a chunk request's number (1, 2, ... over the server's life; status queries
    are not counted) to ``"lose_reply"`` (keep the chunk, drop the connection), ``"fail_midway"``
    (keep part of it, answer 503) or ``"keep_short"`` (keep part of it, answer 308).
    """

    def __init__(self) -> None:
        self.sessions: dict[str, tuple[dict[str, Any], bytearray]] = {}
        self.objects: dict[str, tuple[dict[str, Any], bytes]] = {}
        self.faults: dict[int, str] = {}
        self.chunks: list[tuple[int, int]] = []  # (start, length) of each chunk request
        self.queries = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        upload_id = request.query.get("upload_id")
        if request.method == "POST" and request.query.get("uploadType") == "resumable":
            upload_id = f"u{len(self.sessions)}"
            self.sessions[upload_id] = (json.loads(await request.read()), bytearray())
            location = f"{request.url.with_query({'uploadType': 'resumable'})}"
            return web.Response(headers={"Location": f"{location}&upload_id={upload_id}"})
        if request.method == "PUT" and upload_id in self.sessions:
            return await self._chunk(request, upload_id)
        if request.method == "DELETE" and upload_id in self.sessions:
            del self.sessions[upload_id]
            return web.Response(status=499)
        name = request.match_info["tail"].rpartition("/o/")[2]
        if request.method == "GET" and name in self.objects:
            return web.json_response(self.objects[name][0])
        return web.json_response({"error": {"code": 404, "message": "Not Found"}}, status=404)

    async def _chunk(self, request: web.Request, upload_id: str) -> web.StreamResponse:
        resource, held = self.sessions[upload_id]
        match = _RANGE.fullmatch(request.headers["Content-Range"])
        assert match, request.headers["Content-Range"]
        first, _, size = match.groups()
        body = await request.read()
        if first is None:  # a status query
            self.queries += 1
            return self._answer(upload_id, size)
        self.chunks.append((int(first), len(body)))
        fault = self.faults.get(len(self.chunks))
        if int(first) != len(held):
            return web.json_response({"error": {"code": 400, "message": "bad offset"}}, status=400)
        final = size != "*" and int(first) + len(body) == int(size)
        keep = len(body) if final else (len(held) + len(body)) // QUANTUM * QUANTUM - len(held)
        if fault in ("fail_midway", "keep_short"):
            keep = (len(body) // 2) // QUANTUM * QUANTUM
            final = False
        held += body[:keep]
        if final:
            self._finish(upload_id, resource, held)
        if fault == "lose_reply" and request.transport is not None:
            request.transport.abort()
        if fault == "fail_midway":
            return web.json_response({"error": {"code": 503, "message": "backend"}}, status=503)
        return self._answer(upload_id, size)

    def _finish(self, upload_id: str, resource: dict[str, Any], held: bytearray) -> None:
        generation = str(len(self.objects) + 1)
        item = {**resource, "size": str(len(held)), "generation": generation,
                "etag": f"e{generation}", "updated": "2026-11-26T00:00:00Z"}  # fmt: skip
        self.objects[resource["name"]] = (item, bytes(held))
        self.sessions[upload_id] = (item, held)

    def _answer(self, upload_id: str, size: str) -> web.Response:
        resource, held = self.sessions[upload_id]
        if "generation" in resource:  # finished
            return web.json_response(resource)
        if size != "*" and int(size) == len(held):
            self._finish(upload_id, resource, held)
            return web.json_response(self.sessions[upload_id][0])
        headers = {"Range": f"bytes=0-{len(held) - 1}"} if held else {}
        return web.Response(status=308, headers=headers)


@pytest.fixture
async def standin() -> AsyncIterator[tuple[ResumableServer, Any]]:
    server = ResumableServer()
    app = web.Application(client_max_size=1 << 30)
    app.router.add_route("*", "/{tail:.*}", server.handle)
    async with serve(app) as url:
        store = objstore.from_url("gs://bkt", {"google_base_url": url, "allow_http": "true",
                                               **RETRIES})  # fmt: skip
        yield server, store
        await store.aclose()


def _chunks(data: bytes) -> Any:
    return (data[i : i + MiB] for i in range(0, len(data), MiB))


async def test_a_clean_upload_sends_each_byte_once(standin: tuple[ResumableServer, Any]) -> None:
    server, store = standin
    data = os.urandom(11 * MiB)
    await store.put("k", _chunks(data), part_size=4 * MiB)
    assert server.objects["k"][1] == data
    assert server.chunks == [(0, 4 * MiB), (4 * MiB, 4 * MiB), (8 * MiB, 3 * MiB)]
    assert server.queries == 0


@pytest.mark.parametrize("fault", ["lose_reply", "fail_midway", "keep_short"])
@pytest.mark.parametrize("chunk", [1, 2, 3])
async def test_a_chunk_is_resumed_where_the_service_stopped(
    standin: tuple[ResumableServer, Any], fault: str, chunk: int
) -> None:
    server, store = standin
    server.faults = {chunk: fault}
    data = os.urandom(11 * MiB)
    result = await store.put("k", _chunks(data), part_size=4 * MiB)
    assert server.objects["k"][1] == data  # whole, nothing twice
    assert result.version == server.objects["k"][0]["generation"]
    sent = sum(length for _, length in server.chunks)
    assert sent < len(data) + 4 * MiB  # only what the service lacked was sent again
    # after a failure one query learns what arrived; when all of it did, a second confirms it
    assert server.queries == {"keep_short": 0, "fail_midway": 1, "lose_reply": 2}[fault]


async def test_a_part_size_off_the_quantum_is_rounded_up(
    standin: tuple[ResumableServer, Any],
) -> None:
    server, store = standin
    data = os.urandom(3 * MiB)
    await store.put("k", _chunks(data), part_size=MiB + 1)
    assert server.objects["k"][1] == data
    assert [start for start, _ in server.chunks] == [0, MiB + QUANTUM, 2 * MiB + 2 * QUANTUM]


async def test_a_file_upload_resumes_where_a_failed_request_stopped(
    standin: tuple[ResumableServer, Any], tmp_path: Any
) -> None:
    server, store = standin
    data = os.urandom(9 * MiB)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    server.faults = {1: "fail_midway"}
    await store.put("f", source)
    assert server.objects["f"][1] == data
    # the file but its last bytes in one request, resumed where the service stopped; then
    # the last bytes, which carry the whole file's CRC32C
    kept = 4 * MiB + QUANTUM
    last = 9 * MiB - QUANTUM
    assert server.chunks == [(0, last), (kept, last - kept), (last, QUANTUM)]


async def test_a_service_that_finishes_early_is_an_integrity_error(
    standin: tuple[ResumableServer, Any],
) -> None:
    server, store = standin
    original = server._answer

    def finishes_on_query(upload_id: str, size: str) -> web.Response:  # fake-gcs-server's way
        resource, held = server.sessions[upload_id]
        if server.queries and "generation" not in resource:
            server._finish(upload_id, resource, held)
        return original(upload_id, size)

    server._answer = finishes_on_query  # type: ignore[method-assign]
    server.faults = {2: "fail_midway"}
    with pytest.raises(objstore.IntegrityError, match="early"):
        await store.put("k", _chunks(os.urandom(11 * MiB)), part_size=4 * MiB)


async def test_a_file_the_hash_cannot_read_is_a_typed_error(
    standin: tuple[ResumableServer, Any], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, store = standin
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(9 * MiB))

    def unreadable(*_: Any) -> bytes:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "pread", unreadable)
    with pytest.raises(objstore.ObjstoreError, match=r"big\.bin"):
        await store.put("f", source)
    assert server.objects == {}
    assert server.sessions == {}  # the session was aborted
