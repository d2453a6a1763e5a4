"""Run the async conformance suite through the blocking facade.

:class:`FacadeAsAsync` presents ``objstore_sync.ObjectStore`` with the async API by calling
each blocking method in a worker thread, so every test also exercises the facade exactly as
a threaded user (pyarrow, a web server's thread pool) would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

from objstore import Capabilities, ObjectMeta, ObjectVersion

__all__ = ["FacadeAsAsync"]


class FacadeAsAsync:
    """The async API over a blocking store (each call runs in a worker thread)."""

    def __init__(self, sync_store: Any) -> None:
        self._sync = sync_store

    @property
    def capabilities(self) -> Capabilities:
        caps: Capabilities = self._sync.async_store.capabilities
        return caps

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._sync, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(method, *args, **kwargs)

        return call

    async def list_iter(self, prefix: str | None = None, **kw: Any) -> AsyncIterator[ObjectMeta]:
        pages = await asyncio.to_thread(lambda: list(self._sync.list_pages(prefix, **kw)))
        for page in pages:
            for meta in page:
                yield meta

    async def list_versions_iter(self, prefix: str | None = None) -> AsyncIterator[ObjectVersion]:
        versions = await asyncio.to_thread(lambda: list(self._sync.list_versions_iter(prefix)))
        for version in versions:
            yield version

    async def delete_many(self, paths: Any, **kw: Any) -> int:
        if hasattr(paths, "__aiter__"):
            paths = [item async for item in paths]
        return int(await asyncio.to_thread(self._sync.delete_many, paths, **kw))

    def open_writer(self, path: str, **kw: Any) -> _Writer:
        return _Writer(self._sync, path, kw)

    def stream(self, path: str, **kw: Any) -> _Stream:
        return _Stream(self._sync.stream(path, **kw))

    async def open_reader(self, path: str, **kw: Any) -> _Reader:
        return _Reader(await asyncio.to_thread(self._sync.open_reader, path, **kw))


class _Writer:
    def __init__(self, sync: Any, path: str, kw: dict[str, Any]) -> None:
        self._writer = sync.open_writer(path, **kw)

    async def write(self, data: bytes) -> int:
        return int(await asyncio.to_thread(self._writer.write, data))

    async def close(self) -> Any:
        return await asyncio.to_thread(self._writer.close)

    async def abort(self) -> None:
        await asyncio.to_thread(self._writer.abort)

    async def __aenter__(self) -> _Writer:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self._writer.__exit__, et, e, tb)


class _Stream:
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    async def __aenter__(self) -> _Stream:
        await asyncio.to_thread(self._stream.__enter__)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self._stream.__exit__, et, e, tb)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        iterator = iter(self._stream)
        while True:
            chunk = await asyncio.to_thread(next, iterator, None)
            if chunk is None:
                return
            yield chunk

    async def read_all(self) -> bytes:
        return bytes(await asyncio.to_thread(self._stream.read_all))


class _Reader:
    def __init__(self, reader: Any) -> None:
        self._reader = reader

    @property
    def size(self) -> int:
        return int(self._reader.size)

    def tell(self) -> int:
        return int(self._reader.tell())

    def seek(self, offset: int, whence: int = 0) -> int:
        return int(self._reader.seek(offset, whence))

    async def read(self, size: int = -1) -> bytes:
        return bytes(await asyncio.to_thread(self._reader.read, size))

    async def read_range(self, start: int, end: int) -> bytes:
        return bytes(await asyncio.to_thread(self._reader.read_range, start, end))

    async def __aenter__(self) -> _Reader:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self._reader.close)
