"""A seekable reader with read-ahead, pinned to the ETag of the object it opened."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING

from objstore._errors import (
    ConcurrentModificationError,
    InvalidRequestError,
    PreconditionFailedError,
)
from objstore._inline import inline_active
from objstore._types import ObjectMeta

if TYPE_CHECKING:
    import asyncio

__all__ = ["Reader"]

FetchRange = Callable[[int, int, str | None], Awaitable[bytes]]


class Reader:
    """Random-access reads of one object version (``async with await store.open_reader(p)``).

    Reads go through blocks of ``block_size`` bytes; after a sequential read the next
    ``read_ahead`` blocks are fetched in the background. Every fetch carries the ETag seen at
    open, so a concurrent overwrite raises :class:`ConcurrentModificationError` instead of
    returning a spliced file.
    """

    def __init__(
        self,
        meta: ObjectMeta,
        fetch: FetchRange,
        *,
        block_size: int = 4 * 1024 * 1024,
        read_ahead: int = 2,
    ) -> None:
        if block_size <= 0 or read_ahead < 0:
            raise InvalidRequestError("block_size must be positive and read_ahead non-negative")
        self.meta = meta
        self._fetch = fetch
        self._block = block_size
        self._ahead = read_ahead
        self._pos = 0
        self._blocks: OrderedDict[int, asyncio.Future[bytes] | bytes] = OrderedDict()
        self._closed = False

    @property
    def size(self) -> int:
        """The object's size in bytes."""
        return self.meta.size

    @property
    def closed(self) -> bool:
        """Say whether the reader was closed."""
        return self._closed

    def tell(self) -> int:
        """Return the current position."""
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the position (``SEEK_SET``, ``SEEK_CUR``, ``SEEK_END``); return it."""
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self.size}.get(whence)
        if base is None or base + offset < 0:
            raise InvalidRequestError(f"invalid seek({offset}, {whence})")
        self._pos = base + offset
        return self._pos

    async def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (all that is left when negative) from the position."""
        self._check()
        end = self.size if size < 0 else min(self.size, self._pos + size)
        data = await self.read_range(self._pos, end)
        self._pos += len(data)
        return data

    async def read_range(self, start: int, end: int) -> bytes:
        """Read bytes ``[start, end)`` (clamped to the object) without moving the position."""
        self._check()
        end = min(end, self.size)
        if start >= end:
            return b""
        first, last = start // self._block, (end - 1) // self._block
        if last - first > self._ahead + 1:
            return await self._fetch_pinned(start, end)
        pieces = [await self._get_block(i) for i in range(first, last + 1)]
        self._prefetch(last + 1)
        joined = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        offset = start - first * self._block
        return joined[offset : offset + end - start]

    async def read_exact(self, start: int, end: int) -> bytes:
        """Read bytes ``[start, end)`` (clamped) with one request, past the blocks and read-ahead.

        For callers that plan their own ranges (Parquet readers coalesce theirs).
        """
        self._check()
        end = min(end, self.size)
        if start >= end:
            return b""
        return await self._fetch_pinned(start, end)

    async def _fetch_pinned(self, start: int, end: int) -> bytes:
        try:
            return await self._fetch(start, end, self.meta.e_tag)
        except PreconditionFailedError as exc:
            if isinstance(exc, ConcurrentModificationError):
                raise
            raise ConcurrentModificationError(
                f"{self.meta.location!r} changed while it was being read",
                path=self.meta.location,
                operation="read",
            ) from exc

    async def _get_block(self, index: int) -> bytes:
        entry = self._blocks.get(index)
        if entry is None:
            start = index * self._block
            data = await self._fetch_pinned(start, min(self.size, start + self._block))
            self._remember(index, data)
            return data
        if isinstance(entry, bytes):
            self._blocks.move_to_end(index)
            return entry
        data = await entry
        self._remember(index, data)
        return data

    def _remember(self, index: int, data: bytes | asyncio.Future[bytes]) -> None:
        self._blocks[index] = data
        self._blocks.move_to_end(index)
        while len(self._blocks) > self._ahead + 2:
            _, old = self._blocks.popitem(last=False)
            if not isinstance(old, bytes):
                old.cancel()

    def _prefetch(self, first: int) -> None:
        if inline_active() or self._ahead == 0:
            return
        import asyncio

        for index in range(first, first + self._ahead):
            start = index * self._block
            if start >= self.size or index in self._blocks:
                continue
            fut = asyncio.ensure_future(
                self._fetch_pinned(start, min(self.size, start + self._block))
            )
            fut.add_done_callback(_consume_exception)
            self._remember(index, fut)

    def _check(self) -> None:
        if self._closed:
            raise InvalidRequestError(f"reader for {self.meta.location!r} is closed")

    async def aclose(self) -> None:
        """Cancel read-ahead and release the blocks."""
        self._closed = True
        pending = [f for f in self._blocks.values() if not isinstance(f, bytes)]
        for fut in pending:
            fut.cancel()
        self._blocks.clear()
        if pending:
            import asyncio

            await asyncio.gather(*pending, return_exceptions=True)

    async def __aenter__(self) -> Reader:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _consume_exception(fut: asyncio.Future[bytes]) -> None:
    if not fut.cancelled():
        fut.exception()
