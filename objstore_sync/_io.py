"""Blocking file objects and iterators over the async reader, writer and streams."""

from __future__ import annotations

import contextlib
import io
import os
import time
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, TypeVar

from objstore import ObjectMeta, ObjectStream, PutResult, Reader, Writer
from objstore_sync._loop import io_loop

__all__ = ["BlockingIterator", "BlockingReader", "BlockingStream", "BlockingWriter"]

T = TypeVar("T")
Runner = Callable[[Coroutine[Any, Any, Any]], Any]


class BlockingReader(io.RawIOBase):
    """A seekable binary file over :class:`objstore.Reader` (read-ahead, pinned to one ETag)."""

    def __init__(self, reader: Reader, run: Runner) -> None:
        super().__init__()
        self._reader = reader
        self._run = run

    @property
    def meta(self) -> ObjectMeta:
        """The object's metadata, as it was when the reader opened."""
        return self._reader.meta

    @property
    def size(self) -> int:
        """The object's size in bytes."""
        return self._reader.size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._reader.tell()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._check_closed()
        return self._reader.seek(offset, whence)

    def read(self, size: int | None = -1) -> bytes:
        self._check_closed()
        data: bytes = self._run(self._reader.read(-1 if size is None else size))
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def read_range(self, start: int, end: int) -> bytes:
        """Read bytes ``[start, end)`` without moving the position."""
        self._check_closed()
        data: bytes = self._run(self._reader.read_range(start, end))
        return data

    def close(self) -> None:
        if not self.closed:
            try:
                self._run(self._reader.aclose())
            finally:
                super().close()

    def _check_closed(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")


class BlockingWriter:
    """A blocking writer: ``with store.open_writer(p) as w: w.write(b)``.

    ``close()`` commits; an exception inside ``with`` aborts. A writer dropped without
    ``close()`` is aborted, never committed.
    """

    def __init__(self, writer: Writer, run: Runner, abort_later: Runner) -> None:
        self._writer = writer
        self._run = run
        self._abort_later = abort_later
        self._position = 0
        _OPEN_WRITERS.add(self)

    @property
    def closed(self) -> bool:
        """Say whether the writer was committed or aborted."""
        return self._writer.closed

    @property
    def result(self) -> PutResult | None:
        """The written object's identity, after ``close()``."""
        return self._writer.result

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        """Return how many bytes were written."""
        return self._position

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append ``data``; return its length."""
        size: int = self._run(self._writer.write(data))
        self._position += size
        return size

    def flush(self) -> None:
        """Do nothing: parts upload as they fill; ``close()`` commits."""

    def close(self) -> PutResult:
        """Upload what is left and commit the object; return its identity (the same again on
        a later ``close()``).

        Raises:
            MultipartUploadError: the writer was aborted (by ``abort()``, or by a write that
                failed): nothing was committed.
        """
        if self._writer.closed and self._writer.result is not None:
            return self._writer.result
        result: PutResult = self._run(self._writer.close())
        return result

    def abort(self) -> None:
        """Discard everything written."""
        self._run(self._writer.abort())

    def __enter__(self) -> BlockingWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._writer.closed:
            self.close()

    def __del__(self) -> None:
        if not self._writer.closed:
            # best effort (the interpreter may be shutting down): nothing is ever committed
            with contextlib.suppress(Exception):
                self._abort_later(self._writer.abort())


_OPEN_WRITERS: weakref.WeakSet[BlockingWriter] = weakref.WeakSet()
EXIT_ABORT_SECONDS = 5.0


def _abort_open_writers() -> None:
    """At interpreter exit, abort writers never closed: no partial object, no open upload."""
    deadline = time.monotonic() + EXIT_ABORT_SECONDS
    for writer in list(_OPEN_WRITERS):
        if writer.closed or time.monotonic() >= deadline:
            continue
        with contextlib.suppress(BaseException):
            writer.abort()


io_loop.on_exit(_abort_open_writers)  # before the loop closes its sessions


class BlockingIterator(Iterator[T]):
    """A blocking iterator over an async iterator (one loop hop per item)."""

    def __init__(self, source: AsyncIterator[T], run: Runner) -> None:
        self._source = source
        self._run = run
        self._done = False

    def __iter__(self) -> BlockingIterator[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        try:
            item: T = self._run(anext(self._source))  # type: ignore[arg-type]
        except StopAsyncIteration:
            self._done = True
            raise StopIteration from None
        return item

    def close(self) -> None:
        """Stop early and release what the iterator holds."""
        if not self._done:
            self._done = True
            aclose = getattr(self._source, "aclose", None)
            if aclose is not None:
                self._run(aclose())


class BlockingStream:
    """A streamed read: ``with store.stream(p) as s: for chunk in s: ...``."""

    def __init__(self, stream: ObjectStream, run: Runner) -> None:
        self._stream = stream
        self._run = run
        self._chunks: BlockingIterator[bytes] | None = None

    @property
    def meta(self) -> ObjectMeta:
        """The object's metadata."""
        return self._stream.meta

    @property
    def attributes(self) -> dict[str, str]:
        """The object's attributes."""
        return self._stream.attributes

    @property
    def range(self) -> tuple[int, int]:
        """The bytes ``[start, end)`` being streamed."""
        return self._stream.range

    def __enter__(self) -> BlockingStream:
        self._run(self._stream.open())
        return self

    def __iter__(self) -> Iterator[bytes]:
        if self._chunks is None:
            self._chunks = BlockingIterator(aiter(self._stream), self._run)
        return self._chunks

    def read_all(self) -> bytes:
        """Return the rest of the payload."""
        data: bytes = self._run(self._stream.read_all())
        return data

    def close(self) -> None:
        """Release the connection or file."""
        if self._chunks is not None:
            self._chunks.close()
        self._run(self._stream.aclose())

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
