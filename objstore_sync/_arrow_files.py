"""The Python file objects the pyarrow handler wraps in ``pyarrow.PythonFile``."""

from __future__ import annotations

import atexit
import os
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from objstore import Reader
from objstore_sync._io import BlockingWriter

__all__ = ["InputFile", "OutputFile", "touch"]

MIN_FETCH = 64 * 1024
"""A random-access read smaller than this fetches this much and serves the rest from memory
(Parquet readers ask for a footer's few bytes, then for whole column chunks)."""

Runner = Callable[[Awaitable[Any]], Any]

EXIT_SETTLE_SECONDS = 0.25
EXIT_RELEASE_SECONDS = 1.0
_last_used = [0.0]
_live: weakref.WeakSet[InputFile | OutputFile] = weakref.WeakSet()


def touch() -> None:
    """Record that pyarrow just used a handler or one of its files (see ``_settle_at_exit``)."""
    _last_used[0] = time.monotonic()


@atexit.register
def _settle_at_exit() -> None:
    """Give pyarrow's worker threads a moment to drop their last references before exit.

    pyarrow releases a finished dataset operation's state (its files, the ``PyFileSystem``
    holding our handler) from its own threads, shortly after the call returns. A thread that
    must take the GIL for that while the interpreter finalizes is ended by ``pthread_exit``
    inside C++ code, and the process aborts ("terminate called without an active exception";
    apache/arrow#34314, #39162, #50482). Waiting here, before finalization, lets those threads
    finish: up to a second while files pyarrow opened are still alive, and a quarter second
    after the last use. It costs nothing when no handler was used just before exit.
    """
    deadline = time.monotonic() + EXIT_RELEASE_SECONDS
    while _live and time.monotonic() < deadline:
        time.sleep(0.005)
    remaining = EXIT_SETTLE_SECONDS - (time.monotonic() - _last_used[0])
    if remaining > 0:
        time.sleep(remaining)


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
        _live.add(self)

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
        touch()
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
            touch()

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")


class OutputFile:
    """A write-only file over a :class:`BlockingWriter`.

    The handler puts a ``pyarrow.BufferedOutputStream`` of one part in front of it: pyarrow's
    many small writes (page headers, footers) gather in C++, without the GIL, and reach Python
    one part at a time.
    """

    def __init__(self, writer: BlockingWriter) -> None:
        self._writer = writer
        _live.add(self)

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
        return self._writer.tell()

    def write(self, data: Any) -> int:
        if self._writer.closed:
            raise ValueError("I/O operation on closed file")
        return self._writer.write(data)  # a failed write aborts: close() cannot commit

    def flush(self) -> None:
        """Do nothing: the object becomes visible only on ``close()``."""

    def close(self) -> None:
        """Upload what is left and commit the object (once)."""
        if not self._writer.closed:
            self._writer.close()
            touch()
