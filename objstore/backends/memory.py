"""The memory store: process-local objects with ETags, versions and every conditional mode.

Each store instance has its own objects. All state changes happen under one lock and never
await, so the store is safe from many threads and event loops at once, and the blocking
facade drives it inline (no event-loop hop).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeAlias
from urllib.parse import SplitResult

from objstore._config import COMMON_KEYS, ConfigTable
from objstore._errors import AlreadyExistsError, NotFoundError, ObjstoreError
from objstore._multipart import MultipartUpload
from objstore._path import Path, prefix_from_url, prefix_in_url
from objstore._store import Capabilities, ObjectStore
from objstore._types import (
    DEFAULT_PUT,
    BytesBody,
    GetOptions,
    GetResponse,
    ObjectMeta,
    PutOptions,
    PutResult,
    make_meta,
    resolve_range,
)
from objstore.backends._conditions import check_read_conditions, check_write_mode, missing_version

__all__ = ["MemoryStore"]

_versions = map(str, itertools.count(1))  # version ids as text, made in C
PAGE = 1000


# One stored object version: (data, attributes, tags, mtime, result). A plain tuple, built by
# a tuple display and read by unpacking: the put path is the store's hottest.
_Entry: TypeAlias = tuple[bytes, Mapping[str, str], Mapping[str, str], float, PutResult]

_new = object.__new__
_set_e_tag = PutResult.__dict__["e_tag"].__set__
_set_version = PutResult.__dict__["version"].__set__
_now = time.time


def _new_entry(data: bytes, attributes: Mapping[str, str], tags: Mapping[str, str]) -> _Entry:
    """A fresh version of an object (``make_put_result`` inlined: this is the hottest path)."""
    tag = next(_versions)
    result: PutResult = _new(PutResult)
    _set_e_tag(result, tag)
    _set_version(result, tag)
    return (data, attributes, tags, _now(), result)


def _meta(key: str, entry: _Entry) -> ObjectMeta:
    data, _, _, mtime, result = entry
    tag = result.e_tag
    return make_meta(key, len(data), datetime.fromtimestamp(mtime, UTC), tag, tag)


class MemoryStore(ObjectStore):
    """An in-memory store (``memory://``). Objects live as long as the store object.

    Pickling copies the objects (a snapshot); nothing is shared between processes.
    """

    backend: ClassVar[str] = "memory"
    config_table: ClassVar[ConfigTable] = ConfigTable("memory", COMMON_KEYS)
    capabilities: Capabilities = Capabilities()
    inline_capable: ClassVar[bool] = True
    nonblocking_sync: ClassVar[bool] = True
    single_put_limit: ClassVar[int] = 1 << 62

    def __init__(self, options: Mapping[str, Any] | None = None, *, prefix: str = "") -> None:
        config = self.config_table.resolve(options)
        url = f"memory:///{prefix_in_url(prefix)}" if prefix else "memory://"
        super().__init__(url=url, config=config, prefix=prefix)
        self._objects: dict[str, _Entry] = {}
        self._set_lock(threading.Lock())
        _LIVE.add(self)

    def with_prefix(self, prefix: str) -> MemoryStore:
        """Return a store over the same objects, rooted at ``prefix`` (relative to this root)."""
        view = MemoryStore(self.config.explicit_options(with_secrets=True),
                           prefix=f"{self.prefix}/{prefix}".strip("/"))  # fmt: skip
        view._objects = self._objects
        view._set_lock(self._lock)
        return view

    def _set_lock(self, lock: threading.Lock) -> None:
        self._lock = lock
        self._acquire = lock.acquire
        self._release = lock.release

    @classmethod
    def _from_url(
        cls, url: SplitResult, options: Mapping[str, Any] | None, environ: Mapping[str, str]
    ) -> MemoryStore:
        prefix = prefix_from_url(url.netloc + url.path)
        return cls(options, prefix=prefix)

    def __reduce__(self) -> tuple[Any, ...]:
        with self._lock:
            snapshot = {
                k: (data, dict(attributes), dict(tags))
                for k, (data, attributes, tags, _, _) in self._objects.items()
            }
        options = self.config.explicit_options(with_secrets=False)
        return (_restore, (options, self.prefix, snapshot))

    # ---- reads ----------------------------------------------------------------------------

    def _entry(self, key: Path) -> _Entry:
        entry = self._objects.get(key)
        if entry is None:
            raise NotFoundError(f"object {key!r} not found", path=key, status=404)
        return entry

    def _get_bytes_sync(self, key: Path) -> bytes:
        entry = self._objects.get(key)
        if entry is None:
            raise NotFoundError(f"object {key!r} not found", path=key, status=404)
        return entry[0]

    def _head_sync(self, key: Path) -> ObjectMeta:
        return _meta(key, self._entry(key))

    async def _get_bytes(self, key: Path) -> bytes:
        return self._get_bytes_sync(key)

    async def _head(self, key: Path) -> ObjectMeta:
        return self._head_sync(key)

    async def _get_tags(self, key: Path, version: str | None = None) -> dict[str, str]:
        return dict(self._entry(key)[2])

    async def _get(self, key: Path, options: GetOptions) -> GetResponse:
        entry = self._entry(key)
        meta = _meta(key, entry)
        check_read_conditions(meta, options)
        data, attributes, _, _, _ = entry
        size = meta.size
        if options.head:
            return GetResponse(meta=meta, range=(0, size), attributes=dict(attributes), body=None)
        start, end = (0, size) if options.range is None else resolve_range(options.range, size)
        if (start, end) != (0, size):
            data = data[start:end]
        return GetResponse(
            meta=meta, range=(start, end), attributes=dict(attributes), body=BytesBody(data)
        )

    async def _list(
        self, prefix: Path, offset: Path | None
    ) -> AsyncGenerator[list[ObjectMeta], None]:
        with self._lock:
            if prefix:
                start = prefix + "/"
                items = [(k, e) for k, e in self._objects.items() if k.startswith(start)]
            else:
                items = list(self._objects.items())
        items.sort(key=lambda item: item[0])
        if offset is not None:
            items = [(k, e) for k, e in items if k > offset]
        for first in range(0, len(items), PAGE):
            yield [_meta(k, e) for k, e in items[first : first + PAGE]]

    # ---- writes ---------------------------------------------------------------------------

    def _store(self, key: Path, entry: _Entry, options: PutOptions) -> PutResult:
        with self._lock:
            if options.mode != "overwrite":
                current = self._objects.get(key)
                check_write_mode(
                    key,
                    options.mode,
                    None if current is None else (current[4].e_tag, current[4].version),
                )
            self._objects[key] = entry
        return entry[4]

    def _put_sync(self, key: Path, data: bytes, options: PutOptions) -> PutResult:
        if options is not DEFAULT_PUT:
            return self._store(key, _new_entry(data, options.attributes, options.tags), options)
        tag = next(_versions)  # _new_entry(), inlined
        result: PutResult = _new(PutResult)
        _set_e_tag(result, tag)
        _set_version(result, tag)
        entry = (data, options.attributes, options.tags, _now(), result)
        self._acquire()  # no `with`: a dict store of a str key cannot raise
        self._objects[key] = entry
        self._release()
        return result

    async def _put(self, key: Path, data: bytes, options: PutOptions) -> PutResult:
        return self._put_sync(key, data, options)

    async def _delete(self, keys: Sequence[Path]) -> dict[Path, ObjstoreError]:
        with self._lock:
            for key in keys:
                self._objects.pop(key, None)
        return {}

    async def _delete_version(self, key: Path, version: str) -> None:
        with self._lock:  # it keeps only the current version
            entry = self._objects.get(key)
            if entry is not None and entry[4].version == version:
                del self._objects[key]

    async def _copy(
        self, src: Path, dst: Path, overwrite: bool, version: str | None = None
    ) -> None:
        with self._lock:
            data, attributes, tags, _, current = self._entry(src)
            if version is not None and current.version != version:  # only the current is kept
                raise missing_version(src, version)
            if not overwrite and dst in self._objects:
                raise AlreadyExistsError(f"{dst!r} already exists", path=dst, status=412)
            self._objects[dst] = _new_entry(data, dict(attributes), dict(tags))

    async def _rename(self, src: Path, dst: Path, overwrite: bool) -> None:
        with self._lock:
            source = self._entry(src)
            if not overwrite and dst in self._objects:
                raise AlreadyExistsError(f"{dst!r} already exists", path=dst, status=412)
            self._objects[dst] = source
            if dst != src:
                del self._objects[src]

    async def _create_multipart(self, key: Path, options: PutOptions) -> MultipartUpload:
        return _MemoryUpload(self, key, options)


class _MemoryUpload(MultipartUpload):
    buffered: ClassVar[bool] = False

    def __init__(self, store: MemoryStore, key: Path, options: PutOptions) -> None:
        self._store = store
        self._key = key
        self._options = options
        self._parts: list[bytes] = []

    async def put_part(self, index: int, offset: int, data: bytes) -> None:
        self._parts.append(data)

    async def complete(self) -> PutResult:
        data = b"".join(self._parts)
        self._parts = []
        entry = _new_entry(data, self._options.attributes, self._options.tags)
        return self._store._store(self._key, entry, self._options)

    async def abort(self) -> None:
        self._parts = []


_LIVE: weakref.WeakSet[MemoryStore] = weakref.WeakSet()


def _reset_locks_after_fork() -> None:
    """A child may inherit a lock held by a parent thread that no longer exists: renew them."""
    renewed: dict[int, threading.Lock] = {}
    for store in list(_LIVE):  # views that shared a lock share its replacement
        store._set_lock(renewed.setdefault(id(store._lock), threading.Lock()))


os.register_at_fork(after_in_child=_reset_locks_after_fork)


def _restore(
    options: dict[str, Any], prefix: str, snapshot: dict[str, tuple[bytes, Any, Any]]
) -> MemoryStore:
    store = MemoryStore(options, prefix=prefix)
    for key, (data, attributes, tags) in snapshot.items():
        store._objects[key] = _new_entry(data, attributes, tags)
    return store
