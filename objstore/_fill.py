"""A ``bytes`` object of known size, filled in place as a body arrives.

A large GET ends as one ``bytes`` the caller owns. Building it costs more than the network
here: 256 MiB of fresh memory is 65,536 page faults at 4 KiB (≈0.2 s on the reference
machine, a quarter of the transfer), plus the zeroing ``BytesIO`` does when presized. On
CPython the object is allocated uninitialised (``PyBytes_FromStringAndSize(NULL, n)``, what C
code does to build a bytes), its interior is offered to the kernel as transparent huge pages
(``madvise(MADV_HUGEPAGE)``: 2 MiB per fault, where the system allows it), and the chunks are
copied straight into it. Nobody else holds the object until :meth:`Fill.value` hands it over,
so writing into it is safe. Elsewhere (other interpreters, no ``ctypes``) a presized
``BytesIO`` does the same job a little slower.
"""

from __future__ import annotations

import io
import sys
from typing import Any

__all__ = ["Fill", "HUGE_PAGE"]

HUGE_PAGE = 2 * 1024 * 1024
_MADV_HUGEPAGE = 14


class _Native:
    """The ctypes entry points, loaded on the first large body."""

    def __init__(self) -> None:
        import ctypes

        new = ctypes.pythonapi.PyBytes_FromStringAndSize
        new.restype = ctypes.py_object
        new.argtypes = (ctypes.c_char_p, ctypes.c_ssize_t)
        self.new_bytes = new
        self.data_offset = bytes.__basicsize__ - 1  # PyBytesObject.ob_sval
        self.char_array = ctypes.c_char
        self.madvise: Any = None
        if sys.platform == "linux":
            libc = ctypes.CDLL(None, use_errno=True)
            madvise = libc.madvise
            madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
            madvise.restype = ctypes.c_int
            self.madvise = madvise

    def allocate(self, size: int) -> tuple[bytes, memoryview]:
        """An uninitialised ``bytes`` of ``size`` and a writable view of its contents."""
        value: bytes = self.new_bytes(None, size)
        address = id(value) + self.data_offset
        if self.madvise is not None and size >= 2 * HUGE_PAGE:
            start = -(-address // HUGE_PAGE) * HUGE_PAGE
            length = (address + size - start) // HUGE_PAGE * HUGE_PAGE
            self.madvise(start, length, _MADV_HUGEPAGE)  # advice only: a refusal changes nothing
        view = memoryview((self.char_array * size).from_address(address)).cast("B")
        return value, view


_native: list[_Native | None] = []


def _load() -> _Native | None:
    native: _Native | None = None
    if sys.implementation.name == "cpython":
        try:
            native = _Native()
        except (ImportError, AttributeError, OSError):
            native = None
    _native.append(native)
    return native


class Fill:
    """Collect exactly ``size`` bytes written in order; :meth:`value` returns them as ``bytes``."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.filled = 0
        native = _native[0] if _native else _load()
        self._value: bytes | None = None
        self._view: memoryview | None = None
        self._fallback: io.BytesIO | None = None
        if size == 0:
            self._value = b""
        elif native is not None:
            self._value, self._view = native.allocate(size)
        else:
            self._fallback = io.BytesIO()
            self._fallback.seek(size - 1)
            self._fallback.write(b"\0")
            self._fallback.seek(0)

    def write(self, chunk: bytes | bytearray | memoryview) -> None:
        """Append ``chunk``; ``OverflowError`` if it would pass ``size``."""
        end = self.filled + len(chunk)
        if end > self.size:
            raise OverflowError(f"{end} bytes arrived for a body of {self.size}")
        if self._view is not None:
            self._view[self.filled : end] = chunk
        else:
            assert self._fallback is not None
            self._fallback.write(chunk)
        self.filled = end

    def value(self) -> bytes:
        """The filled ``bytes`` (the object stops being writable here)."""
        if self.filled != self.size:
            raise ValueError(f"{self.filled} of {self.size} bytes were written")
        if self._view is not None:
            self._view.release()
            self._view = None
        value = self._value if self._fallback is None else self._fallback.getvalue()
        self._value = self._fallback = None
        if value is None:
            raise ValueError("the value was already taken")
        return value
