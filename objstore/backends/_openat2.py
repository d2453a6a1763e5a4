"""Open a path only if no component of it is a symbolic link: Linux ``openat2(2)``.

The local store proves that every file it opens lies under its root. Without this it opens,
then reads the descriptor's real path back from ``/proc/self/fd`` (two syscalls). With
``RESOLVE_NO_SYMLINKS`` one syscall does both: the kernel refuses the open (``ELOOP``) if any
component is a link, and a link-free path made of validated segments under a link-free root
cannot leave that root. Where the call is missing (Linux < 5.6, other systems, seccomp
filters) or a link is met, callers fall back to the verified open.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Any

__all__ = ["open_without_links"]

_SYS_OPENAT2 = 437  # one number on every Linux architecture but alpha (unified syscall table)
_RESOLVE_NO_SYMLINKS = 0x04
_AT_FDCWD = -100


class _Kernel:
    """The ``syscall`` entry point and one prepared ``struct open_how`` per flag set."""

    def __init__(self) -> None:
        import ctypes

        class OpenHow(ctypes.Structure):
            _fields_ = (
                ("flags", ctypes.c_uint64),
                ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64),
            )

        self._ctypes = ctypes
        self._how_type = OpenHow
        libc = ctypes.CDLL(None, use_errno=True)
        self._syscall = libc.syscall
        self._syscall.restype = ctypes.c_long
        self._number = ctypes.c_long(_SYS_OPENAT2)
        self._cwd = ctypes.c_int(_AT_FDCWD)
        self._size = ctypes.c_size_t(ctypes.sizeof(OpenHow))
        self._hows: dict[tuple[int, int], Any] = {}

    def how(self, flags: int, mode: int) -> Any:
        """The (shared, never written) ``open_how`` for these flags."""
        how = self._hows.get((flags, mode))
        if how is None:
            how = self._ctypes.byref(self._how_type(flags, mode, _RESOLVE_NO_SYMLINKS))
            self._hows[flags, mode] = how
        return how

    def open(self, path: str, flags: int, mode: int) -> int:
        """``openat2(AT_FDCWD, path, {flags, mode, RESOLVE_NO_SYMLINKS})``; -errno on failure."""
        fd: int = self._syscall(
            self._number, self._cwd, os.fsencode(path), self.how(flags, mode), self._size
        )
        return fd if fd >= 0 else -self._ctypes.get_errno()


_kernel: list[_Kernel | None] = []


def _load() -> _Kernel | None:
    kernel: _Kernel | None = None
    if sys.platform == "linux" and os.uname().machine != "alpha":
        try:
            kernel = _Kernel()
            probe = kernel.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, 0)
        except (OSError, AttributeError):
            kernel = None
        else:
            if probe >= 0:
                os.close(probe)
            else:
                kernel = None
    _kernel.append(kernel)
    return kernel


def open_without_links(path: str, flags: int, mode: int = 0) -> int | None:
    """Open ``path`` if none of its components is a symbolic link.

    Returns the descriptor, or ``None`` when a link is on the path or the system cannot
    check (the caller then opens and verifies the usual way). Other failures raise the
    ``OSError`` that ``os.open`` would.
    """
    kernel = _kernel[0] if _kernel else _load()
    if kernel is None:
        return None
    fd = kernel.open(path, flags, mode)
    if fd >= 0:
        return fd
    code = -fd
    if code in (errno.ELOOP, errno.ENOSYS):
        return None
    raise OSError(code, os.strerror(code), path)
