"""The Python file objects the pyarrow handler wraps in ``pyarrow.PythonFile``."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

from objstore import Reader
from objstore_sync._io import BlockingWriter

__all__ = ["InputFile", "OutputFile"]

MIN_FETCH = 64 * 1024
"""A random-access read smaller than this fetches this much and serves the rest from memory
(Parquet readers ask for a footer's few bytes, then for whole column chunks)."""

Runner = Callable[[Awaitable[Any]], Any]


class InputFile:
    """A readable, seekable file over a pinned :class:`objstore.Reader`.

    ``sequential`` reads go through the reader's blocks and read-ahead; random-access reads
    fetch the range asked for (at least ``MIN_FETCH`` bytes), one request each.
    """

    def __init__(self, reader: Reader, run: Runner, *, sequential: bool) -> None:
        self._reader = reader
        self._run = run
        self._sequential = sequential
        self._pos = 0
        self._window_start = 0
        self._window = b""
        self.closed = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def size(self) -> int:
        """The object's size in bytes."""
        return self._reader.size

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._check_open()
        self._pos = self._reader.seek(offset, whence)
        return self._pos

    def read(self, nbytes: int | None = -1) -> bytes:
        self._check_open()
        size = self._reader.size
        end = size if nbytes is None or nbytes < 0 else min(size, self._pos + nbytes)
        data = self.read_at(end - self._pos, self._pos) if end > self._pos else b""
        self._pos += len(data)
        return data

    def read_at(self, nbytes: int, offset: int) -> bytes:
        """Read up to ``nbytes`` from ``offset`` without moving the position."""
        self._check_open()
        end = min(self._reader.size, offset + nbytes)
        if offset >= end:
            return b""
        window_end = self._window_start + len(self._window)
        if self._window_start <= offset and end <= window_end:
            cut = offset - self._window_start
            return self._window[cut : cut + end - offset]
        if self._sequential:
            data: bytes = self._run(self._reader.read_range(offset, end))
            return data
        if end - offset >= MIN_FETCH:
            exact: bytes = self._run(self._reader.read_exact(offset, end))
            return exact
        self._window_start = offset
        self._window = self._run(self._reader.read_exact(offset, offset + MIN_FETCH))
        return self._window[: end - offset]

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._window = b""
            self._run(self._reader.aclose())

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")


class OutputFile:
    """A write-only file over a :class:`BlockingWriter`, gathering small writes into parts.

    Pyarrow's writers emit many small pieces; they cross to the event loop one part at a time.
    """

    def __init__(self, writer: BlockingWriter, part_size: int) -> None:
        self._writer = writer
        self._part_size = part_size
        self._pending = bytearray()
        self._written = 0

    @property
    def closed(self) -> bool:
        return self._writer.closed

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._written

    def write(self, data: Any) -> int:
        size = len(data) if isinstance(data, bytes | bytearray) else memoryview(data).nbytes
        if self._writer.closed:
            raise ValueError("I/O operation on closed file")
        self._pending += data
        self._written += size
        if len(self._pending) >= self._part_size:
            self._flush_pending()
        return size

    def _flush_pending(self) -> None:
        pending, self._pending = self._pending, bytearray()
        self._writer.write(pending)  # a failed write aborts the upload: close() cannot commit

    def flush(self) -> None:
        """Do nothing: the object becomes visible only on ``close()``."""

    def close(self) -> None:
        """Upload what is left and commit the object (once)."""
        if self._writer.closed:
            return
        if self._pending:
            self._flush_pending()
        self._writer.close()

    def abort(self) -> None:
        """Discard everything written."""
        self._pending = bytearray()
        self._writer.abort()
