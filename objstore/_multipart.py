"""Multipart writes: buffer into parts, upload them concurrently, complete in order, or abort.

A backend implements :class:`MultipartUpload` (``put_part`` / ``complete`` / ``abort``);
:class:`Writer` does everything else once for all backends. Nothing becomes visible before
``complete``; an exception (or cancellation) inside ``async with`` aborts the upload.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

from objstore._errors import InvalidRequestError, MultipartUploadError
from objstore._inline import inline_active
from objstore._types import ProgressCallback, PutResult, byte_view

if TYPE_CHECKING:
    import asyncio

__all__ = ["MultipartUpload", "Writer"]

MIN_PART_SIZE = 5 * 1024 * 1024
GROWTH_STEPS = 10
"""A write of unknown size doubles its part size after each tenth of the parts a service
allows: 8 MiB parts reach 10,000 × 8 MiB × (2¹⁰ − 1) / 1,000 ≈ 7.8 TiB on S3."""


class MultipartUpload(abc.ABC):
    """An open multipart upload on a backend."""

    buffered: ClassVar[bool] = True
    """Parts must be cut to ``part_size``; a backend that takes bytes as they come (a local
    staging file, memory) sets this to ``False`` and receives every write at once."""

    @abc.abstractmethod
    async def put_part(self, index: int, offset: int, data: bytes) -> None:
        """Upload part ``index`` (0-based), which starts at byte ``offset`` of the object."""

    @abc.abstractmethod
    async def complete(self) -> PutResult:
        """Make the object visible, made of the parts in index order."""

    @abc.abstractmethod
    async def abort(self) -> None:
        """Discard the parts; the object is left as it was."""


class Writer:
    """A streaming writer over a multipart upload (``async with store.open_writer(p) as w``).

    Bytes are buffered to ``part_size``; up to ``max_concurrency`` parts upload at once, so
    memory stays near ``(max_concurrency + 1) * part_size``. A payload smaller than one part is
    written with a single put when the writer closes.
    """

    def __init__(
        self,
        *,
        path: str,
        create_upload: Callable[[], Awaitable[MultipartUpload]],
        single_put: Callable[[bytes], Awaitable[PutResult]],
        part_size: int,
        max_concurrency: int,
        progress: ProgressCallback | None = None,
        total: int | None = None,
        grow_every: int = 0,
        max_part_size: int | None = None,
    ) -> None:
        self.path = path
        self._grow_every = grow_every
        self._max_part_size = max_part_size
        self._create_upload = create_upload
        self._single_put = single_put
        self._part_size = part_size
        self._limit = max(1, max_concurrency)
        self._progress = progress
        self._total = total
        self._buffer = bytearray()
        self._upload: MultipartUpload | None = None
        self._next_index = 0
        self._offset = 0
        self._done = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots: asyncio.Semaphore | None = None
        self._state = "open"
        self.result: PutResult | None = None

    @property
    def closed(self) -> bool:
        """Say whether the writer was completed or aborted."""
        return self._state != "open"

    def _check_open(self) -> None:
        if self._state != "open":
            raise MultipartUploadError(
                f"writer for {self.path!r} is {self._state}", path=self.path, operation="write"
            )

    async def write(self, data: bytes | bytearray | memoryview | Any) -> int:
        """Append ``data``; return its length. Full parts start uploading at once.

        A write that fails (or is cancelled) aborts the upload: a later ``close()`` raises
        instead of committing an object with a gap in it.
        """
        self._check_open()
        if type(data) is not bytes:
            view = byte_view(data)
            if view is None:
                raise InvalidRequestError(f"write() takes bytes, not {type(data).__name__}")
            data = view
        try:
            return await self._write(data)
        except BaseException:
            await self.abort()
            raise

    async def _write(self, data: bytes | bytearray | memoryview) -> int:
        size = len(data)
        if self._upload is None and len(self._buffer) + size >= self._part_size:
            self._upload = await self._create_upload()
        if self._upload is not None and not self._upload.buffered:
            if self._buffer:
                pending, self._buffer = bytes(self._buffer), bytearray()
                await self._send(pending)
            await self._send(data if type(data) is bytes else bytes(data))
            return size
        if not self._buffer and size == self._part_size and type(data) is bytes:
            await self._send(data)  # a whole part as it came (file reads): no copy
            return size
        self._buffer += data
        while len(self._buffer) >= self._part_size:
            with memoryview(self._buffer) as view:
                part = bytes(view[: self._part_size])
            del self._buffer[: self._part_size]
            await self._send(part)
        return size

    async def _send(self, part: bytes) -> None:
        assert self._upload is not None
        index, offset = self._next_index, self._offset
        self._next_index += 1
        self._offset += len(part)
        if self._grow_every and self._next_index % self._grow_every == 0:
            grown = self._part_size * 2  # a stream of unknown size: stay within the part count
            self._part_size = min(grown, self._max_part_size or grown)
        if inline_active() or self._limit == 1 or not self._upload.buffered:
            await self._upload.put_part(index, offset, part)
            self._advance(len(part))
            return
        self._raise_failed()
        import asyncio

        if self._slots is None:
            self._slots = asyncio.Semaphore(self._limit)
        await self._slots.acquire()
        task = asyncio.ensure_future(self._put_part(index, offset, part))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _put_part(self, index: int, offset: int, part: bytes) -> None:
        assert self._upload is not None
        assert self._slots is not None
        try:
            await self._upload.put_part(index, offset, part)
            self._advance(len(part))
        finally:
            self._slots.release()

    def _advance(self, size: int) -> None:
        self._done += size
        if self._progress is not None:
            self._progress(self._done, self._total)

    def _raise_failed(self) -> None:
        for task in list(self._tasks):
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    async def _drain(self) -> None:
        import asyncio

        while self._tasks:
            await asyncio.gather(*self._tasks)

    async def close(self) -> PutResult:
        """Upload what is buffered and make the object visible; return its identity (again,
        on a later ``close()``, as a file closes once; after ``abort()`` it raises)."""
        if self._state == "complete" and self.result is not None:
            return self.result
        self._check_open()
        try:
            if self._upload is None:
                data, self._buffer = bytes(self._buffer), bytearray()
                self.result = await self._single_put(data)
                self._advance(len(data))
            else:
                if self._buffer:
                    part, self._buffer = bytes(self._buffer), bytearray()
                    await self._send(part)
                await self._drain()
                self.result = await self._upload.complete()
        except BaseException:
            await self.abort()
            raise
        self._state = "complete"
        return self.result

    async def abort(self) -> None:
        """Discard everything written; the object is left as it was."""
        if self._state != "open":
            return
        self._state = "aborted"
        self._buffer = bytearray()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            import asyncio

            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._upload is not None:
            await self._upload.abort()

    async def __aenter__(self) -> Writer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            await self.abort()
        elif self._state == "open":
            await self.close()
