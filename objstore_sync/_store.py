"""The blocking store: every async method's twin, one line each."""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
)
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import objstore
from objstore import (
    Attributes,
    BulkDeleteError,
    ObjectMeta,
    ObjectVersion,
    ObjstoreError,
    ProgressCallback,
    PutMode,
)
from objstore._inline import run_inline
from objstore._store import ObjectStore as AsyncObjectStore
from objstore._types import RangeRequest
from objstore_sync._io import BlockingIterator, BlockingReader, BlockingStream, BlockingWriter
from objstore_sync._loop import io_loop
from objstore_sync._wrap import blocking

__all__ = ["ObjectStore"]

T = TypeVar("T")
_DIRECT = ("get", "head", "put")
MiB = 1024 * 1024
A = AsyncObjectStore


class ObjectStore:
    """A blocking object store: ``ObjectStore("s3://bucket/prefix", {"aws_region": ...})``.

    Args:
        url: the store URL, a plain local path, or an async :class:`objstore.ObjectStore`.
        options: configuration keys; keyword arguments add more.
        call_timeout: seconds a blocking call may take before its task is cancelled
            (network backends; memory and local calls run on the calling thread).
        inline: run memory and local stores on the calling thread (default) or, with
            ``False``, through the IO loop thread like the network backends.
    """

    def __init__(
        self,
        url: str | AsyncObjectStore,
        options: Mapping[str, Any] | None = None,
        *,
        call_timeout: float | None = None,
        inline: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(url, AsyncObjectStore):
            self._store = url
        else:
            self._store = objstore.from_url(url, options, **kwargs)
        self._inline = (
            self._store.inline_capable
            if inline is None
            else (inline and self._store.inline_capable)
        )
        self.call_timeout = call_timeout
        if self._inline:
            # Memory and local stores serve these on the calling thread with no wrapper at all.
            for name in _DIRECT:
                self.__dict__[name] = getattr(self._store, f"_blocking_{name}")

    @property
    def async_store(self) -> AsyncObjectStore:
        """The async store behind this one."""
        return self._store

    @property
    def url(self) -> str:
        """The store's URL, without credentials."""
        return self._store.url

    @property
    def config(self) -> objstore.Config:
        """The effective configuration, secrets masked."""
        return self._store.config

    def __repr__(self) -> str:
        return f"objstore_sync.ObjectStore({self._store.url!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self._store, self.call_timeout))

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._inline:
            return run_inline(coro)
        return io_loop.run(coro, self.call_timeout)

    def _run_later(self, coro: Coroutine[Any, Any, Any]) -> None:
        if self._inline:
            run_inline(coro)
        else:
            io_loop.submit(coro)

    put = blocking(A.put)
    get = blocking(A.get)
    get_result = blocking(A.get_result)
    get_range = blocking(A.get_range)
    get_ranges = blocking(A.get_ranges)
    head = blocking(A.head)
    exists = blocking(A.exists)
    get_tags = blocking(A.get_tags)
    list = blocking(A.list)
    list_with_delimiter = blocking(A.list_with_delimiter)
    delete = blocking(A.delete)
    copy = blocking(A.copy)
    copy_if_not_exists = blocking(A.copy_if_not_exists)
    rename = blocking(A.rename)
    rename_if_not_exists = blocking(A.rename_if_not_exists)
    sign = blocking(A.sign)
    list_versions = blocking(A.list_versions)
    list_incomplete = blocking(A.list_incomplete)
    cleanup_incomplete = blocking(A.cleanup_incomplete)

    def delete_many(
        self,
        paths: Iterable[str | ObjectMeta] | AsyncIterable[str | ObjectMeta],
        *,
        max_concurrency: int = 4,
    ) -> int:
        """Delete many objects in batches; return how many paths were processed.

        The paths are consumed on the calling thread (so ``store.list_iter()`` works here)
        and deleted in groups of ``max_concurrency`` concurrent batches.

        Raises:
            BulkDeleteError: some deletes failed; ``.errors`` maps each path to its error.
        """
        if isinstance(paths, AsyncIterable):
            return self._run(self._store.delete_many(paths, max_concurrency=max_concurrency))
        group = self._store.delete_batch * max(1, max_concurrency)
        failures: dict[str, ObjstoreError] = {}
        count = 0
        for chunk in _chunks(paths, group):
            try:
                count += self._run(self._store.delete_many(chunk, max_concurrency=max_concurrency))
            except BulkDeleteError as exc:
                failures.update(exc.errors)
                count += len(chunk)
        if failures:
            raise BulkDeleteError.from_failures(failures, self.url)
        return count

    def list_iter(
        self, prefix: str | None = None, *, offset: str | None = None
    ) -> Iterator[ObjectMeta]:
        """Yield the objects under ``prefix`` one by one (one request per page)."""
        for page in self.list_pages(prefix, offset=offset):
            yield from page

    def list_versions_iter(self, prefix: str | None = None) -> Iterator[ObjectVersion]:
        """Yield every version of the objects under ``prefix`` one by one (fetched from the
        loop a thousand at a time)."""
        batches = BlockingIterator(_batched(self._store.list_versions_iter(prefix)), self._run)
        try:
            for batch in batches:
                yield from batch
        finally:
            batches.close()

    def list_pages(
        self, prefix: str | None = None, *, offset: str | None = None
    ) -> BlockingIterator[builtins.list[ObjectMeta]]:
        """Yield pages of the objects under ``prefix``, in key order."""
        return BlockingIterator(self._store.list_pages(prefix, offset=offset), self._run)

    def stream(
        self,
        path: str,
        *,
        chunk_size: int = MiB,
        range: RangeRequest | None = None,
        if_match: str | None = None,
        if_none_match: str | None = None,
        if_modified_since: datetime | None = None,
        if_unmodified_since: datetime | None = None,
        version: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> BlockingStream:
        """Stream an object in chunks: ``with store.stream(p) as s: for chunk in s: ...``."""
        stream = self._store.stream(
            path,
            chunk_size=chunk_size,
            range=range,
            if_match=if_match,
            if_none_match=if_none_match,
            if_modified_since=if_modified_since,
            if_unmodified_since=if_unmodified_since,
            version=version,
            progress=progress,
        )
        return BlockingStream(stream, self._run)

    def open_reader(
        self,
        path: str,
        *,
        block_size: int = 4 * MiB,
        read_ahead: int = 2,
        version: str | None = None,
    ) -> BlockingReader:
        """Open a seekable binary file pinned to the object's current ETag."""
        reader = self._run(
            self._store.open_reader(
                path, block_size=block_size, read_ahead=read_ahead, version=version
            )
        )
        return BlockingReader(reader, self._run)

    def open_writer(
        self,
        path: str,
        *,
        mode: PutMode = "overwrite",
        attributes: Attributes | None = None,
        tags: Mapping[str, str] | None = None,
        part_size: int | None = None,
        max_concurrency: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> BlockingWriter:
        """Return a writer: ``with store.open_writer(p) as w: w.write(b)`` (commits on close)."""
        writer = self._store.open_writer(
            path,
            mode=mode,
            attributes=attributes,
            tags=tags,
            part_size=part_size,
            max_concurrency=max_concurrency,
            progress=progress,
        )
        return BlockingWriter(writer, self._run, self._run_later)

    def close(self) -> None:
        """Release clients and connections."""
        self._run(self._store.aclose())

    def __enter__(self) -> ObjectStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _chunks(items: Iterable[T], size: int) -> Iterator[builtins.list[T]]:
    chunk: builtins.list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _rebuild(store: AsyncObjectStore, call_timeout: float | None) -> ObjectStore:
    return ObjectStore(store, call_timeout=call_timeout)


async def _batched(
    items: AsyncGenerator[T, None], size: int = 1000
) -> AsyncGenerator[builtins.list[T], None]:
    """``items`` in lists of up to ``size``: one trip through the loop thread per list (closed
    with the lists)."""
    batch: builtins.list[T] = []
    async with contextlib.aclosing(items):
        async for item in items:
            batch.append(item)
            if len(batch) == size:
                yield batch
                batch = []
    if batch:
        yield batch
