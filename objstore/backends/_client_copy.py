"""Copies the service cannot make itself, made by reading the source and writing it."""

from __future__ import annotations

from objstore._errors import ConcurrentModificationError
from objstore._path import Path
from objstore._store import ObjectStore, ObjectStream
from objstore._types import GetOptions, PutOptions
from objstore.backends._reconcile import source_changed

__all__ = ["ATTEMPTS", "copy_through_client"]

ATTEMPTS = 5
"""How many times a copy starts again when its source changed while it was being read."""

_CHUNK = 1024 * 1024


async def copy_through_client(
    store: ObjectStore, src: Path, dst: Path, *, create: bool, version: str | None = None
) -> None:
    """Copy ``src`` (its ``version``) to ``dst`` by reading it and writing it with the store's
    own writer, with its attributes and tags: in bounded memory, and in create mode
    reconciled as any create. For copies a service cannot make: S3-compatible servers that
    refuse UploadPartCopy with a customer key, and Azure's Copy Blob, which cannot take a
    customer-provided key.

    The attributes come with the bytes, in the reply to one GET, so they belong together
    as in a service's copy. A read cut short resumes pinned to the ETag it started with; if
    the source changed meanwhile, nothing is written and the copy starts again from a fresh
    GET, up to :data:`ATTEMPTS` times (then :class:`~objstore.ConcurrentModificationError`).
    A missing source raises the read's :class:`~objstore.NotFoundError`."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            async with ObjectStream(store, src, GetOptions(version=version), _CHUNK, None) as read:
                tags = await store._tags_to_copy(src, version)
                options = PutOptions(mode="create" if create else "overwrite",
                                     attributes=read.attributes, tags=tags)  # fmt: skip
                start, end = read.range
                await store._write_stream(dst, options, aiter(read), total=end - start)
            return
        except ConcurrentModificationError as exc:
            if attempt == ATTEMPTS:
                raise source_changed(src, exc) from None
