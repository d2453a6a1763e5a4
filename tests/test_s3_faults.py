"""S3 under injected faults (a reverse proxy on 127.0.0.1 in front of SeaweedFS)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

import objstore
from objstore import AlreadyExistsError, ObjstoreConnectionError, UpdateVersion
from objstore.backends.s3 import S3Store
from objstore.testing.emulators import S3Server
from objstore.testing.faultproxy import FaultProxy, Rule, check_ranges_from_whole_replies

MiB = 1024 * 1024
FAST_RETRIES = {"backoff_initial": "5ms", "backoff_max": "50ms", "max_retries": "5"}


@pytest.fixture
async def proxied(s3_server: S3Server, bucket: str) -> AsyncIterator[tuple[S3Store, FaultProxy]]:
    async with FaultProxy(s3_server.endpoint) as proxy:
        options = s3_server.options(aws_endpoint=proxy.url, **FAST_RETRIES)
        store = objstore.from_url(f"s3://{bucket}", options)
        assert isinstance(store, S3Store)
        # A new SeaweedFS bucket allocates its volumes on the first writes (~0.2 s): do that
        # before faults are injected, so that the fast test retry budget is not spent on it.
        await store.put("warm-up", b"x" * 1024)
        await store.delete("warm-up")
        yield store, proxy
        await store.aclose()


async def test_transient_errors_are_retried(proxied: tuple[S3Store, FaultProxy]) -> None:
    store, proxy = proxied
    await store.put("k", b"value")
    proxy.rules = [Rule("status:503", "GET", times=2), Rule("reset_before", "HEAD")]
    assert await store.get("k") == b"value"
    assert (await store.head("k")).size == 5
    assert [fault for _, _, fault in proxy.log[-5:]].count("status:503") == 2


async def test_lost_response_on_create_is_reconciled(
    proxied: tuple[S3Store, FaultProxy], s3_admin: Any, bucket: str
) -> None:
    store, proxy = proxied
    proxy.rules = [Rule("reset_after", "PUT", contains="/created")]
    result = await store.put("created", b"mine", mode="create")
    assert await store.get("created") == b"mine"
    assert result.e_tag == (await store.head("created")).e_tag
    assert "objstore-write-token" not in (await store.get_result("created")).attributes
    with pytest.raises(AlreadyExistsError):
        await store.put("created", b"someone else", mode="create")


async def test_lost_response_on_update_is_reconciled(proxied: tuple[S3Store, FaultProxy]) -> None:
    store, proxy = proxied
    first = await store.put("counter", b"1")
    proxy.rules = [Rule("reset_after", "PUT", contains="/counter")]
    await store.put("counter", b"2", mode=UpdateVersion(e_tag=first.e_tag))
    assert await store.get("counter") == b"2"


async def test_lost_response_on_multipart_complete_is_reconciled(
    proxied: tuple[S3Store, FaultProxy], s3_admin: Any, bucket: str
) -> None:
    store, proxy = proxied
    proxy.rules = [Rule("reset_after", "POST", contains="uploadId=")]
    data = b"z" * (6 * MiB)
    async with store.open_writer("big", mode="create", part_size=5 * MiB) as writer:
        await writer.write(data)
    assert await store.get("big") == data
    assert s3_admin.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


async def test_lost_reply_to_an_overwrite_complete_then_no_such_upload_is_a_success(
    proxied: tuple[S3Store, FaultProxy],
) -> None:
    # AWS answers a retried CompleteMultipartUpload NoSuchUpload once the first one completed
    # it (SeaweedFS answers 200 again): the answer below plays AWS for any retry. The upload's
    # write token lets a HEAD settle it first (before, an overwrite carried none, and its
    # retried complete failed with MultipartUploadError though the object was written)
    store, proxy = proxied
    await store.put("big", b"old")
    proxy.rules = [Rule("reset_after", "POST", contains="uploadId=")]
    completes: list[str] = []

    def aws_retry(request: web.Request, body: bytes) -> web.Response | None:
        if request.method != "POST" or "uploadId=" not in request.path_qs:
            return None
        completes.append(request.path_qs)
        if len(completes) == 1:
            return None  # the first is forwarded (and its reply lost)
        error = b"<Error><Code>NoSuchUpload</Code><Message>gone</Message></Error>"
        return web.Response(status=404, body=error, content_type="application/xml")

    proxy.answer = aws_retry
    data = b"o" * (6 * MiB)
    async with store.open_writer("big", part_size=5 * MiB) as writer:
        await writer.write(data)
    assert completes  # and whether a retry was sent or not, it is a success
    assert writer.result is not None
    assert writer.result.e_tag == (await store.head("big")).e_tag
    assert await store.get("big") == data


async def test_without_a_lost_response_create_conflicts_are_reported(
    proxied: tuple[S3Store, FaultProxy],
) -> None:
    store, proxy = proxied
    await store.put("taken", b"first", mode="create")
    proxy.rules = [Rule("status:503", "PUT", contains="/taken")]
    with pytest.raises(AlreadyExistsError):
        await store.put("taken", b"second", mode="create")
    assert await store.get("taken") == b"first"


async def test_retries_exhausted_are_typed(proxied: tuple[S3Store, FaultProxy]) -> None:
    store, proxy = proxied
    proxy.rules = [Rule("reset_before", "GET", times=100)]
    with pytest.raises(ObjstoreConnectionError) as info:
        await store.get("anything")
    assert info.value.attempts == 6
    assert info.value.retryable


async def test_truncated_body_is_retried_not_returned(proxied: tuple[S3Store, FaultProxy]) -> None:
    store, proxy = proxied
    data = bytes(range(256)) * 4096
    await store.put("whole", data)
    proxy.rules = [Rule("truncate", "GET", contains="/whole", times=2)]
    assert await store.get("whole") == data
    assert [fault for _, _, fault in proxy.log].count("truncate") == 2


async def test_truncated_large_body_is_retried(proxied: tuple[S3Store, FaultProxy]) -> None:
    store, proxy = proxied
    data = bytes(range(256)) * (48 * 1024)  # 12 MiB: read in chunks into a presized buffer
    await store.put("large", data)
    proxy.rules = [Rule("truncate", "GET", contains="/large")]
    assert await store.get("large") == data
    assert [fault for _, _, fault in proxy.log].count("truncate") == 1


async def test_truncated_ranged_reads_are_retried(proxied: tuple[S3Store, FaultProxy]) -> None:
    store, proxy = proxied
    data = bytes(range(256)) * (24 * 1024)  # 6 MiB
    await store.put("ranged", data)
    proxy.rules = [Rule("truncate", "GET", contains="/ranged", times=4)]
    assert await store.get_range("ranged", 1000, 5 * 1024 * 1024) == data[1000 : 5 * 1024 * 1024]
    assert (await store.get_result("ranged")).data == data
    assert await store.get_ranges("ranged", [(0, 10), (6000, 6100)]) == [data[:10], data[6000:6100]]
    async with await store.open_reader("ranged", block_size=1024 * 1024) as reader:
        assert await reader.read_exact(10, 3 * 1024 * 1024) == data[10 : 3 * 1024 * 1024]
    assert [fault for _, _, fault in proxy.log].count("truncate") == 4


async def test_truncated_stream_resumes_where_it_stopped(
    proxied: tuple[S3Store, FaultProxy],
) -> None:
    store, proxy = proxied
    data = bytes(range(256)) * (24 * 1024)  # 6 MiB
    await store.put("streamed", data)
    proxy.rules = [Rule("truncate", "GET", contains="/streamed", times=2)]
    async with store.stream("streamed", chunk_size=256 * 1024) as stream:
        received = b"".join([chunk async for chunk in stream])
    assert received == data
    assert [fault for _, _, fault in proxy.log].count("truncate") == 2
    assert len([1 for method, _, _ in proxy.log if method == "GET"]) == 3


async def test_stream_of_a_changed_object_is_not_spliced(
    proxied: tuple[S3Store, FaultProxy],
) -> None:
    store, proxy = proxied
    await store.put("changing", b"a" * (6 * 1024 * 1024))
    proxy.rules = [Rule("truncate", "GET", contains="/changing", times=1)]

    async def read_while_it_changes() -> None:
        async with store.stream("changing", chunk_size=256 * 1024) as stream:
            async for _ in stream:
                await store.put("changing", b"b" * (6 * 1024 * 1024))

    with pytest.raises(objstore.ConcurrentModificationError):
        await read_while_it_changes()


async def test_a_server_that_ignores_ranges_still_gives_the_range(
    proxied: tuple[S3Store, FaultProxy],
) -> None:
    """get_range's lean path and the general one (get_ranges, open_reader) both cut it."""
    await check_ranges_from_whole_replies(*proxied, "ranged")


async def test_an_object_too_large_for_copy_object_is_copied_in_parts(
    proxied: tuple[S3Store, FaultProxy], monkeypatch: pytest.MonkeyPatch
) -> None:
    # AWS refuses a CopyObject source over 5 GiB; SeaweedFS does not, so the proxy answers
    # as AWS does, and the parts (UploadPartCopy of at most copy_part_limit) go to SeaweedFS
    store, proxy = proxied
    monkeypatch.setattr(store, "copy_part_limit", 5 * MiB)
    data = os.urandom(12 * MiB + 7)
    await store.put("big/src", data, attributes={"content_type": "x/y"}, tags={"t": "1"})
    too_large = (
        "<Error><Code>InvalidRequest</Code><Message>The specified copy source is larger than "
        "the maximum allowable size for a copy source: 5368709120</Message></Error>"
    )

    def like_aws(request: web.Request, body: bytes) -> web.Response | None:
        whole_copy = "x-amz-copy-source" in request.headers and "uploadId" not in request.query
        return web.Response(status=400, text=too_large) if whole_copy else None

    proxy.answer = like_aws
    await store.copy("big/src", "big/copy")
    await store.rename("big/src", "big/moved")
    for key in ("big/copy", "big/moved"):
        got = await store.get_result(key)
        assert got.data == data
        assert got.attributes["content_type"] == "x/y"
        assert await store.get_tags(key) == {"t": "1"}
    part_copies = [p for m, p, _ in proxy.log if "partNumber" in p and "/big/src?" not in p]
    assert len(part_copies) == 6  # 3 parts of at most 5 MiB, twice
    assert not await store.exists("big/src")
    assert await store.list_incomplete("big") == []


async def test_writes_stay_within_the_part_count(
    proxied: tuple[S3Store, FaultProxy], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    # S3 takes at most 10,000 parts (8 MiB parts: 78 GiB); here at most 4, or 20
    store, proxy = proxied
    monkeypatch.setattr(store, "max_parts", 4)
    data = os.urandom(26 * MiB)
    source = tmp_path / "data.bin"
    source.write_bytes(data)
    await store.put("sized", data, part_size=5 * MiB)  # known size: parts made large enough
    await store.put("file", source, part_size=5 * MiB)
    for key in ("sized", "file"):
        parts = [p for m, p, _ in proxy.log if m == "PUT" and f"/{key}?partNumber" in p]
        assert len(parts) == 4, key
        assert await store.get(key) == data
    monkeypatch.setattr(store, "max_parts", 20)  # unknown size: parts double every 2
    async with store.open_writer("stream", part_size=5 * MiB) as writer:
        for i in range(0, len(data), MiB):
            await writer.write(data[i : i + MiB])
        await writer.write(data)  # 52 MiB: 5 + 5 + 10 + 10 + 20 + 2
    parts = [p for m, p, _ in proxy.log if m == "PUT" and "/stream?partNumber" in p]
    assert len(parts) == 6
    assert await store.get("stream") == data + data
