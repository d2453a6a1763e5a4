"""The multipart writer: bounded concurrency, order, abort on failure and cancellation."""

from __future__ import annotations

import asyncio

import pytest

from objstore import MultipartUploadError, PutResult, ServiceUnavailableError, Writer
from objstore._multipart import MultipartUpload


class RecordingUpload(MultipartUpload):
    """An upload that records what the writer does with it."""

    def __init__(self, fail_on: int | None = None, delay: float = 0.01) -> None:
        self.parts: dict[int, tuple[int, bytes]] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.completed = False
        self.aborted = False
        self.fail_on = fail_on
        self.delay = delay

    async def put_part(self, index: int, offset: int, data: bytes) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay * (1 + index % 3))
            if index == self.fail_on:
                raise ServiceUnavailableError("part failed")
            self.parts[index] = (offset, data)
        finally:
            self.in_flight -= 1

    async def complete(self) -> PutResult:
        self.completed = True
        return PutResult(e_tag="done")

    async def abort(self) -> None:
        self.aborted = True


def make_writer(upload: RecordingUpload, limit: int = 3) -> tuple[Writer, list[bytes]]:
    singles: list[bytes] = []

    async def create() -> MultipartUpload:
        return upload

    async def single(data: bytes) -> PutResult:
        singles.append(data)
        return PutResult(e_tag="single")

    writer = Writer(path="k", create_upload=create, single_put=single, part_size=100,
                    max_concurrency=limit)  # fmt: skip
    return writer, singles


async def test_parts_are_cut_bounded_and_ordered() -> None:
    upload = RecordingUpload()
    writer, singles = make_writer(upload, limit=3)
    data = bytes(range(256)) * 10
    async with writer:
        for i in range(0, len(data), 77):
            await writer.write(data[i : i + 77])
    assert upload.completed
    assert not upload.aborted
    assert singles == []
    assert upload.max_in_flight <= 3
    assert upload.max_in_flight > 1
    indexes = sorted(upload.parts)
    assert indexes == list(range(len(indexes)))
    assert b"".join(upload.parts[i][1] for i in indexes) == data
    assert [upload.parts[i][0] for i in indexes] == [i * 100 for i in indexes]
    assert writer.result == PutResult(e_tag="done")


async def test_small_payload_uses_a_single_put() -> None:
    upload = RecordingUpload()
    writer, singles = make_writer(upload)
    async with writer:
        await writer.write(b"small")
    assert singles == [b"small"]
    assert not upload.completed


async def test_failed_part_aborts() -> None:
    upload = RecordingUpload(fail_on=2)
    writer, _ = make_writer(upload)
    with pytest.raises(ServiceUnavailableError):  # noqa: PT012
        async with writer:
            for _ in range(10):
                await writer.write(b"x" * 100)
    assert upload.aborted
    assert not upload.completed


async def test_cancellation_aborts() -> None:
    upload = RecordingUpload(delay=0.05)
    writer, _ = make_writer(upload)

    async def write_forever() -> None:
        async with writer:
            while True:
                await writer.write(b"y" * 100)

    task = asyncio.ensure_future(write_forever())
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert upload.aborted
    assert not upload.completed


async def test_failed_write_aborts_and_close_does_not_commit() -> None:
    upload = RecordingUpload(fail_on=1)
    writer, singles = make_writer(upload, limit=1)
    await writer.write(b"a" * 100)
    with pytest.raises(ServiceUnavailableError):
        await writer.write(b"b" * 100)
    assert upload.aborted
    assert writer.closed
    with pytest.raises(MultipartUploadError, match="aborted"):
        await writer.close()
    assert not upload.completed
    assert singles == []


async def test_whole_parts_are_sent_without_a_copy() -> None:
    upload = RecordingUpload(delay=0)
    writer, _ = make_writer(upload, limit=1)
    parts = [bytes([i]) * 100 for i in range(3)]
    async with writer:
        for part in parts:
            await writer.write(part)
        await writer.write(b"tail")
    assert all(upload.parts[i][1] is parts[i] for i in range(3))  # the caller's objects
    assert upload.parts[3][1] == b"tail"


async def test_parts_of_a_stream_grow_to_stay_within_the_part_count() -> None:
    upload = RecordingUpload(delay=0)

    async def create() -> MultipartUpload:
        return upload

    async def single(data: bytes) -> PutResult:
        raise AssertionError("a multipart write")

    writer = Writer(path="k", create_upload=create, single_put=single, part_size=100,
                    max_concurrency=2, grow_every=2, max_part_size=350)  # fmt: skip
    data = bytes(range(256)) * 10
    async with writer:
        for i in range(0, len(data), 30):
            await writer.write(data[i : i + 30])
    sizes = [len(upload.parts[i][1]) for i in sorted(upload.parts)]
    assert sizes == [100, 100, 200, 200, 350, 350, 350, 350, 350, 210]  # doubled, then capped
    assert b"".join(upload.parts[i][1] for i in sorted(upload.parts)) == data
    assert [upload.parts[i][0] for i in sorted(upload.parts)] == [
        sum(sizes[:i]) for i in range(len(sizes))
    ]
