"""Checksums that replies announce for the whole object, verified on the bytes received.

A flipped byte of the same length passes every length check (RELIABILITY B4b). The services
say what the bytes should hash to: S3 sends ``x-amz-checksum-<algorithm>`` when the object was
written with one and the request asks (``x-amz-checksum-mode: ENABLED``; AWS gives new objects
a CRC64-NVME by default), GCS sends ``x-goog-hash`` (CRC32C and MD5) with every download, and
Azure sends ``Content-MD5`` for blobs written in one request. Such a value covers the whole
object, so only a reply that holds the whole object is checked (status 200), and only as
stored (not one GCS decompressed on the way). Composite S3 checksums (a checksum of the
parts' checksums, ``…-N``) cannot be checked against the bytes and are left alone; so are
algorithms without a fast implementation here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import zlib
from collections.abc import Callable, Mapping
from typing import Any

from objstore._inline import offload

__all__ = [
    "BodyChecksum",
    "RunningCrc32c",
    "azure_checksum",
    "content_md5",
    "gcs_checksum",
    "s3_checksum",
    "upload_checksum",
]

_Crc = Callable[[bytes | memoryview, int], int]


def _crc32c() -> _Crc | None:
    try:
        import google_crc32c  # the C build: ~8 GB/s

        if google_crc32c.implementation == "c":
            return lambda data, value: int(google_crc32c.extend(value, bytes(data)))
    except ImportError:
        pass
    try:
        from awscrt import checksums

        return lambda data, value: int(checksums.crc32c(data, value))
    except ImportError:
        return None


def _crc64nvme() -> _Crc | None:
    try:
        from awscrt import checksums
    except ImportError:
        return None
    return lambda data, value: int(checksums.crc64nvme(data, value))


_CRCS: dict[str, tuple[Callable[[], _Crc | None], int]] = {
    "crc32": (lambda: zlib.crc32, 4),
    "crc32c": (_crc32c, 4),
    "crc64nvme": (_crc64nvme, 8),
}
_DIGESTS = ("md5", "sha1", "sha256")
_loaded: dict[str, _Crc | None] = {}


def _crc(algorithm: str) -> _Crc | None:
    """The CRC function of ``algorithm``, if this machine has a fast one (loaded once)."""
    if algorithm not in _loaded:
        _loaded[algorithm] = _CRCS[algorithm][0]()
    return _loaded[algorithm]


class BodyChecksum:
    """The checksum a reply announces, computed over the bytes as they arrive."""

    __slots__ = ("_crc", "_digest", "_value", "algorithm", "expected")

    def __init__(self, algorithm: str, expected: bytes, crc: _Crc | None) -> None:
        self.algorithm = algorithm
        self.expected = expected
        self._crc = crc
        self._value = 0
        self._digest: Any = None if crc is not None else hashlib.new(algorithm)

    def update(self, data: bytes | memoryview) -> None:
        """Add the next bytes of the body."""
        if self._crc is not None:
            self._value = self._crc(data, self._value)
        else:
            self._digest.update(data)

    def matches(self) -> bool:
        """Whether the bytes added so far are the body the service announced."""
        if self._crc is not None:
            return self._value.to_bytes(_CRCS[self.algorithm][1], "big") == self.expected
        return bool(self._digest.digest() == self.expected)

    @classmethod
    def announced(cls, algorithm: str, encoded: str) -> BodyChecksum | None:
        """The check of a base64 value for ``algorithm``; ``None`` when it cannot be made
        here (an unknown algorithm, no fast CRC, a malformed value)."""
        try:
            expected = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        if algorithm in _DIGESTS:
            size = hashlib.new(algorithm).digest_size
            return cls(algorithm, expected, None) if len(expected) == size else None
        if algorithm not in _CRCS or len(expected) != _CRCS[algorithm][1]:
            return None
        crc = _crc(algorithm)
        return None if crc is None else cls(algorithm, expected, crc)


_S3_ALGORITHMS = ("crc64nvme", "crc32c", "crc32", "sha256", "sha1")


def s3_checksum(headers: Mapping[str, str]) -> BodyChecksum | None:
    """The full-object checksum of an S3 GET reply, if it has one that can be checked."""
    if headers.get("x-amz-checksum-type", "FULL_OBJECT").upper() != "FULL_OBJECT":
        return None  # COMPOSITE: a checksum of the parts' checksums
    for algorithm in _S3_ALGORITHMS:
        value = headers.get(f"x-amz-checksum-{algorithm}")
        if value and "-" not in value:
            return BodyChecksum.announced(algorithm, value)
    return None


def gcs_checksum(headers: Mapping[str, str]) -> BodyChecksum | None:
    """The checksum of a GCS download (CRC32C where it is fast here, else MD5), unless the
    service transcoded the object on the way (its hashes are of the stored bytes)."""
    stored = headers.get("x-goog-stored-content-encoding", "identity")
    if stored != headers.get("Content-Encoding", "identity"):
        return None
    values = dict(
        part.strip().partition("=")[::2] for part in headers.get("x-goog-hash", "").split(",")
    )
    for algorithm in ("crc32c", "md5"):
        if values.get(algorithm):
            check = BodyChecksum.announced(algorithm, values[algorithm])
            if check is not None:
                return check
    return None


def azure_checksum(headers: Mapping[str, str]) -> BodyChecksum | None:
    """The ``Content-MD5`` of an Azure blob download, where the blob has one."""
    value = headers.get("Content-MD5")
    return BodyChecksum.announced("md5", value) if value else None


OFFLOAD_FROM = 1024 * 1024
"""Bodies from this size are hashed in a worker thread (``hashlib`` releases the GIL), so an
upload's parts are hashed while others are on the wire."""
FILE_BLOCK = 1024 * 1024
"""A file is hashed this much per trip to a worker thread."""


async def content_md5(data: bytes | memoryview) -> str:
    """The ``Content-MD5`` of an upload's body: the service refuses a body that does not match
    (a byte corrupted on the way), so nothing corrupted is stored."""
    md5 = hashlib.md5(data) if len(data) < OFFLOAD_FROM else await offload(hashlib.md5, data)
    return base64.b64encode(md5.digest()).decode()


async def upload_checksum(data: bytes) -> dict[str, str]:
    """The checksum field a GCS upload declares in its object resource (``crc32c``, else
    ``md5Hash`` where no fast CRC32C is installed): GCS refuses a body that does not match."""
    crc = _crc("crc32c")
    if crc is None:
        return {"md5Hash": await content_md5(data)}
    return {"crc32c": base64.b64encode(crc(data, 0).to_bytes(4, "big")).decode()}


class RunningCrc32c:
    """The CRC32C of a resumable upload's chunks, given in order, declared with the last one
    (``x-goog-hash``): GCS refuses to finish an upload whose bytes do not match, so a chunk
    corrupted on the way never becomes part of an object."""

    __slots__ = ("_crc", "_value")

    def __init__(self) -> None:
        self._crc = _crc("crc32c")
        self._value = 0

    async def update(self, data: bytes) -> None:
        """Add the next chunk (off the event loop when large)."""
        if self._crc is None:
            return
        if len(data) < OFFLOAD_FROM:
            self._value = self._crc(data, self._value)
        else:
            self._value = await offload(self._crc, data, self._value)

    @property
    def fast(self) -> bool:
        """Whether this machine computes CRC32C (else nothing is declared)."""
        return self._crc is not None

    async def update_from_file(self, fd: int, size: int) -> int:
        """Add the first ``size`` bytes of the open file ``fd``, read in blocks off the event
        loop with ``pread`` (the file's own position stays the upload's); return how many
        there were (fewer when the file shrank)."""
        crc, done = self._crc, 0
        if crc is None:
            return size

        def block(offset: int, value: int) -> tuple[int, int]:
            data = os.pread(fd, min(FILE_BLOCK, size - offset), offset)
            return crc(data, value), len(data)

        while done < size:
            self._value, read = await offload(block, done, self._value)
            if not read:
                break
            done += read
        return done

    def header(self) -> dict[str, str]:
        """The ``x-goog-hash`` of everything added (none without a fast CRC32C here)."""
        if self._crc is None:
            return {}
        value = base64.b64encode(self._value.to_bytes(4, "big")).decode()
        return {"x-goog-hash": f"crc32c={value}"}
