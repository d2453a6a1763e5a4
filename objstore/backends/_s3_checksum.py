"""S3 additional checksums (``aws_checksum_algorithm``): what a write carries so the server
verifies the bytes it stores.

``sha256`` is a composite checksum on multipart uploads (one per part, S3 checks each part and
keeps a checksum of the part checksums). ``crc64nvme`` is a full-object checksum: each part
carries its own CRC and S3 combines them into the object's. CRC64-NVME comes from ``awscrt``
(botocore's ``crt`` extra, installed with ``objstore[s3]``), which computes it at memory speed.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

from objstore._errors import ConfigError

__all__ = ["Checksum", "checksum_for"]


class Checksum:
    """One checksum algorithm: its name on the wire and how to compute it."""

    def __init__(self, name: str, kind: str, compute: Callable[[bytes], bytes]) -> None:
        self.name = name
        """The algorithm as S3 names it (``SHA256``, ``CRC64NVME``)."""
        self.header = f"x-amz-checksum-{name.lower()}"
        """The header a PUT or UploadPart carries its checksum in."""
        self.element = f"Checksum{name}"
        """The element of a part in CompleteMultipartUpload."""
        self.kind = kind
        """``COMPOSITE`` or ``FULL_OBJECT``: how S3 checksums a multipart object."""
        self._compute = compute

    def __repr__(self) -> str:
        return f"Checksum({self.name})"

    def value(self, data: bytes) -> str:
        """The checksum of ``data``, base64 as S3 wants it."""
        return base64.b64encode(self._compute(data)).decode()

    def upload_headers(self) -> dict[str, str]:
        """The headers of CreateMultipartUpload."""
        return {"x-amz-checksum-algorithm": self.name, "x-amz-checksum-type": self.kind}


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _crc64nvme() -> Callable[[bytes], bytes]:
    try:
        from awscrt import checksums
    except ImportError:
        raise ConfigError(
            "aws_checksum_algorithm 'crc64nvme' needs the awscrt package "
            "(pip install 'objstore[s3]' installs it)"
        ) from None

    def compute(data: bytes) -> bytes:
        return int(checksums.crc64nvme(data)).to_bytes(8, "big")

    return compute


def checksum_for(algorithm: str | None) -> Checksum | None:
    """The checksum an ``aws_checksum_algorithm`` value asks for (already validated)."""
    if algorithm is None:
        return None
    if algorithm == "sha256":
        return Checksum("SHA256", "COMPOSITE", _sha256)
    return Checksum("CRC64NVME", "FULL_OBJECT", _crc64nvme())
