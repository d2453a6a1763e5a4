"""Any objstore store as a pyarrow filesystem: ``PyFileSystem(ArrowFileSystemHandler(url))``.

Directories are implied by keys: ``a/b`` is a directory while some object lies under it, and
``create_dir`` has nothing to do. Calls that need several requests (batched file infos,
directory deletes and moves) run as one task on the store's event loop. The handler is
thread-safe (pyarrow calls it from its I/O threads) and pickles (dataset scans in worker
processes); secrets travel only when the store allows it (``allow_pickle_secrets``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.fs as pafs

from objstore import NotFoundError, NotSupportedError, ObjectMeta
from objstore._errors import InvalidRequestError
from objstore._inline import gather_bounded
from objstore._path import parents_below, parse_prefix
from objstore._store import ObjectStore as AsyncObjectStore
from objstore._store import has_objects_under
from objstore.backends.memory import MemoryStore
from objstore_sync._arrow_files import InputFile, OutputFile, touch
from objstore_sync._store import ObjectStore

__all__ = ["ArrowFileSystemHandler"]

T = TypeVar("T")
MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB
CONCURRENCY = 16


class ArrowFileSystemHandler(pafs.FileSystemHandler):  # type: ignore[misc]  # untyped base
    """A ``pyarrow.fs.FileSystemHandler`` over an objstore store.

    Args:
        root: a store URL (``s3://bucket/prefix``, ``memory://``, ``file:///data``), a plain
            local directory, or a blocking or async :class:`ObjectStore`.
        options: configuration keys for the store, as for ``objstore.from_url``.
        block_size: the read-ahead block of ``open_input_stream``.
        part_size: the part size of ``open_output_stream`` (at least 5 MiB).

    Paths are relative to ``root`` (a leading ``/`` is ignored), so ``pq.write_table(t,
    "data/x.parquet", filesystem=fs.PyFileSystem(handler))`` writes ``root/data/x.parquet``.
    """

    def __init__(
        self,
        root: str | ObjectStore | AsyncObjectStore,
        options: Mapping[str, Any] | None = None,
        *,
        block_size: int = 4 * MiB,
        part_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(root, ObjectStore):
            self._sync = root
        else:
            self._sync = ObjectStore(root, options, **kwargs)
        self._store = self._sync.async_store
        self._block_size = block_size
        self._part_size = max(MIN_PART_SIZE, part_size or self._store.part_size)

    @property
    def store(self) -> ObjectStore:
        """The blocking store behind this handler."""
        return self._sync

    def __repr__(self) -> str:
        return f"ArrowFileSystemHandler({self._store.url!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self._sync, self._block_size, self._part_size))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ArrowFileSystemHandler):
            return NotImplemented
        mine, theirs = self._store, other._store
        if mine is theirs:
            return True
        return (
            type(mine) is type(theirs)
            and not isinstance(mine, MemoryStore)  # two memory stores never share objects
            and mine.url == theirs.url
            and mine.config.explicit_options(with_secrets=True)
            == theirs.config.explicit_options(with_secrets=True)
        )

    def __hash__(self) -> int:
        return hash((type(self._store), self._store.url))

    def equals(self, other: object) -> bool:
        """Say whether ``other`` reaches the same objects the same way."""
        return self == other

    def _run(self, coro: Awaitable[T]) -> T:
        touch()
        return self._sync._run(coro)  # type: ignore[arg-type]

    # ---- names -----------------------------------------------------------------------------

    def get_type_name(self) -> str:
        """``objstore+<scheme>``, e.g. ``objstore+s3``."""
        scheme = self._store.url.partition("://")[0] if "://" in self._store.url else "file"
        return f"objstore+{scheme}"

    def normalize_path(self, path: str) -> str:
        """Strip leading and trailing ``/``; reject an invalid key (``InvalidPathError``)."""
        return _key(path)

    # ---- file infos --------------------------------------------------------------------------

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        """Describe each path: a File (size, mtime), a Directory (a key prefix) or NotFound."""

        async def describe_all() -> list[pafs.FileInfo]:
            return await gather_bounded([self._describe(p) for p in paths], CONCURRENCY)

        return self._run(describe_all())

    async def _describe(self, path: str) -> pafs.FileInfo:
        key = _key(path)
        if not key:  # the root: a directory while its bucket exists (BucketNotFoundError if not)
            await has_objects_under(self._store, "")
            return pafs.FileInfo(path, pafs.FileType.Directory)
        try:
            return _file_info(path, await self._store.head(key))
        except NotFoundError:
            pass
        if await has_objects_under(self._store, key):
            return pafs.FileInfo(path, pafs.FileType.Directory)
        return pafs.FileInfo(path, pafs.FileType.NotFound)

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        """List ``selector.base_dir`` with one listing (recursive or one level).

        Raises:
            FileNotFoundError: nothing lies under the directory and ``allow_not_found`` is off.
            NotADirectoryError: the base is a file.
        """
        base = _key(selector.base_dir)
        recursive = bool(selector.recursive)
        infos = self._run(self._select(base, recursive))
        if infos or not base:
            return infos
        if self._run(self._is_file(base)):
            raise NotADirectoryError(f"{selector.base_dir!r} is a file, not a directory")
        if selector.allow_not_found:
            return []
        raise NotFoundError(f"no directory {selector.base_dir!r}", path=base, operation="list")

    async def _select(self, base: str, recursive: bool) -> list[pafs.FileInfo]:
        if not recursive:
            level = await self._store.list_with_delimiter(base or None)
            dirs = [pafs.FileInfo(p, pafs.FileType.Directory) for p in level.common_prefixes]
            return dirs + [_file_info(m.location, m) for m in level.objects]
        infos: list[pafs.FileInfo] = []
        seen: set[str] = set()
        async for meta in self._store.list_iter(base or None):
            for directory in parents_below(meta.location, base):
                if directory not in seen:
                    seen.add(directory)
                    infos.append(pafs.FileInfo(directory, pafs.FileType.Directory))
            infos.append(_file_info(meta.location, meta))
        return infos

    async def _is_file(self, key: str) -> bool:
        try:
            await self._store.head(key)
        except NotFoundError:
            return False
        return True

    # ---- directories -------------------------------------------------------------------------

    def create_dir(self, path: str, recursive: bool = True) -> None:
        """Do nothing but check the path: directories exist while objects lie under them."""
        _key(path)

    def delete_dir(self, path: str) -> None:
        """Delete every object under ``path``.

        Raises:
            FileNotFoundError: nothing lies under ``path``.  NotADirectoryError: it is a file.
        """
        key = _key(path)
        if not key:
            raise InvalidRequestError(
                "delete_dir('') would delete the whole store; call delete_root_dir_contents()"
            )
        self._run(self._delete_under(key, path, missing_ok=False))

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        """Delete every object under ``path`` (never the root: see ``delete_root_dir_contents``)."""
        key = _key(path)
        if not key:
            raise InvalidRequestError(
                f"delete_dir_contents({path!r}) would empty the whole store; "
                "call delete_root_dir_contents() to mean it"
            )
        self._run(self._delete_under(key, path, missing_ok=missing_dir_ok))

    def delete_root_dir_contents(self) -> None:
        """Delete every object of the store."""
        self._run(self._delete_under("", "", missing_ok=True))

    async def _delete_under(self, key: str, path: str, *, missing_ok: bool) -> None:
        count = await self._store.delete_many(self._store.list_iter(key or None))
        if count or missing_ok:
            return
        if await self._is_file(key):
            raise NotADirectoryError(f"{path!r} is a file, not a directory")
        raise NotFoundError(f"no directory {path!r}", path=key, operation="delete_dir")

    # ---- files -------------------------------------------------------------------------------

    def delete_file(self, path: str) -> None:
        """Delete one object.

        Raises:
            FileNotFoundError: no such object.  IsADirectoryError: ``path`` is a directory.
        """
        self._run(self._delete_file(_key(path), path))

    async def _delete_file(self, key: str, path: str) -> None:
        await self._require_file(key, path)
        await self._store.delete(key)

    async def _require_file(self, key: str, path: str) -> ObjectMeta:
        try:
            return await self._store.head(_file_key(key, path))
        except NotFoundError:
            if await has_objects_under(self._store, key):
                raise IsADirectoryError(f"{path!r} is a directory") from None
            raise

    def move(self, src: str, dest: str) -> None:
        """Move a file, or every object under a directory (copy then delete, not atomic)."""
        self._run(self._move(_key(src), _key(dest), src))

    async def _move(self, src: str, dest: str, path: str) -> None:
        if src and await self._is_file(src):
            await self._store.rename(src, dest)
            return
        metas = await self._store.list(src or None)
        if not metas:
            raise NotFoundError(f"nothing to move at {path!r}", path=src, operation="move")
        cut = len(src) + 1 if src else 0
        target = f"{dest}/" if dest else ""
        await gather_bounded(
            [self._store.rename(m.location, target + m.location[cut:]) for m in metas],
            CONCURRENCY,
        )

    def copy_file(self, src: str, dest: str) -> None:
        """Copy one object (server-side where the backend can).

        Raises:
            FileNotFoundError: no such object.  IsADirectoryError: ``src`` is a directory.
        """
        self._run(self._copy_file(_key(src), _key(dest), src))

    async def _copy_file(self, src: str, dest: str, path: str) -> None:
        try:
            await self._store.copy(_file_key(src, path), _file_key(dest, dest))
        except NotFoundError:
            await self._require_file(src, path)
            raise

    # ---- streams -----------------------------------------------------------------------------

    def open_input_stream(self, path: str) -> pa.NativeFile:
        """Open an object for sequential reads (blocks of ``block_size``, read ahead)."""
        reader = self._run(self._open_reader(path, self._block_size, read_ahead=2))
        return pa.PythonFile(InputFile(reader, self._run, sequential=True), mode="r")

    def open_input_file(self, path: str) -> pa.NativeFile:
        """Open an object for random access: each read fetches the range asked for (at least
        64 KiB), every fetch pinned to the ETag seen at open."""
        reader = self._run(self._open_reader(path, self._block_size, read_ahead=0))
        return pa.PythonFile(InputFile(reader, self._run, sequential=False), mode="r")

    async def _open_reader(self, path: str, block_size: int, *, read_ahead: int) -> Any:
        key = _file_key(_key(path), path)
        try:
            return await self._store.open_reader(key, block_size=block_size, read_ahead=read_ahead)
        except NotFoundError:
            if await has_objects_under(self._store, key):
                raise IsADirectoryError(f"{path!r} is a directory") from None
            raise

    def open_output_stream(
        self, path: str, metadata: Mapping[str, Any] | pa.KeyValueMetadata | None = None
    ) -> pa.NativeFile:
        """Open a writer: buffered into parts of at least 5 MiB, visible only once closed; a
        failed write aborts it. ``metadata`` keys such as ``Content-Type`` become attributes."""
        key = _file_key(_key(path), path)
        writer = self._sync.open_writer(
            key, attributes=_attributes(metadata), part_size=self._part_size
        )
        raw = pa.PythonFile(OutputFile(writer), mode="w")
        return pa.BufferedOutputStream(raw, buffer_size=self._part_size)

    def open_append_stream(
        self, path: str, metadata: Mapping[str, Any] | pa.KeyValueMetadata | None = None
    ) -> pa.NativeFile:
        """Object stores cannot append: always ``NotSupportedError``."""
        raise NotSupportedError(
            f"cannot append to {path!r}: {self._store.url} does not support appends; "
            "write a new object instead",
            path=str(path),
            operation="open_append_stream",
        )


def _key(path: str) -> str:
    if not isinstance(path, str):
        raise InvalidRequestError(f"a path must be a str, not {type(path).__name__}")
    stripped = path.strip("/")
    return str(parse_prefix(stripped)) if stripped else ""


def _file_key(key: str, path: str) -> str:
    if not key:
        raise IsADirectoryError(f"{path!r} is the root directory, not a file")
    return key


def _file_info(path: str, meta: ObjectMeta) -> pafs.FileInfo:
    return pafs.FileInfo(path, pafs.FileType.File, size=meta.size, mtime=meta.last_modified)


def _attributes(metadata: Mapping[str, Any] | pa.KeyValueMetadata | None) -> dict[str, str]:
    """pyarrow's output-stream metadata as objstore attributes (which take HTTP names such as
    ``Content-Type`` for the standard ones)."""
    if not metadata:
        return {}
    out: dict[str, str] = {}
    for raw_key, raw_value in metadata.items():
        key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
        out[key] = raw_value.decode() if isinstance(raw_value, bytes) else str(raw_value)
    return out


def _rebuild(store: ObjectStore, block_size: int, part_size: int) -> ArrowFileSystemHandler:
    return ArrowFileSystemHandler(store, block_size=block_size, part_size=part_size)
