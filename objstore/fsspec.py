"""fsspec filesystems over objstore stores (``pip install "objstore[fsspec]"``).

- :class:`ObjstoreFileSystem` wraps one store: ``ObjstoreFileSystem("s3://bucket/prefix", opts)``;
  paths are keys of that store.
- :class:`S3FileSystem`, :class:`GCSFileSystem` and :class:`AzureBlobFileSystem` take
  ``bucket/key`` paths like s3fs, gcsfs and adlfs, with objstore options as storage options.
- :func:`register` installs them for the schemes you choose, so
  ``pandas.read_parquet("s3://bucket/x.parquet", storage_options={...})`` and dask go through
  objstore.

Written files commit only on ``close()``; an exception inside ``with fs.open(p, "wb")`` or a
file dropped without ``close()`` discards the upload (fsspec's default would commit it).
Pickled filesystems carry no secret unless ``allow_pickle_secrets`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import pathlib
import weakref
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from fsspec.asyn import AsyncFileSystem, sync
from fsspec.callbacks import DEFAULT_CALLBACK, Callback
from fsspec.spec import AbstractBufferedFile

from objstore._config import parse_bool
from objstore._errors import (
    AlreadyExistsError,
    BucketNotFoundError,
    ConcurrentModificationError,
    InvalidRangeError,
    InvalidRequestError,
    NotFoundError,
    NotSupportedError,
    PreconditionFailedError,
)
from objstore._inline import gather_bounded
from objstore._multipart import Writer
from objstore._path import parents_below
from objstore._registry import SCHEMES, from_url, load_backend
from objstore._store import ObjectStore, has_objects_under
from objstore._types import ByteRange, ObjectMeta, ObjectVersion, OffsetRange, SuffixRange

__all__ = [
    "AzureBlobFileSystem",
    "GCSFileSystem",
    "ObjstoreFileSystem",
    "S3FileSystem",
    "register",
]

MiB = 1024 * 1024
RELEASE_TIMEOUT = 2.0
"""Seconds a collected filesystem waits for its stores to close (see ``_release``)."""
CONCURRENCY = 16
CHUNK = 4 * MiB


class ObjstoreFileSystem(AsyncFileSystem):  # type: ignore[misc]  # untyped base
    """An fsspec ``AsyncFileSystem`` over one objstore store; paths are its keys.

    Args:
        store: an :class:`objstore.ObjectStore`, or a URL to build one from.
        options: the store's options when ``store`` is a URL.
    """

    protocol: ClassVar[str | tuple[str, ...]] = "objstore"
    root_marker = ""
    cachable = False  # two stores with one URL (two memory stores) must not share an instance
    async_impl = True

    def __init__(
        self,
        store: ObjectStore | str,
        options: Mapping[str, Any] | None = None,
        *,
        asynchronous: bool = False,
        loop: Any = None,
        block_size: int | None = None,
    ) -> None:
        super().__init__(asynchronous=asynchronous, loop=loop)
        self.store = store if isinstance(store, ObjectStore) else from_url(store, options)
        self.blocksize = block_size or CHUNK
        self._owns_store = not isinstance(store, ObjectStore)  # a given store is the caller's
        if self._owns_store:
            self._close_when_collected({"": self.store})

    def __reduce__(self) -> tuple[Any, ...]:
        state = {"blocksize": self.blocksize, "_owns_store": self._owns_store}
        return (type(self), (self.store,), state)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self._owns_store:  # the unpickled store is this filesystem's copy
            self._close_when_collected({"": self.store})

    def _close_when_collected(self, stores: dict[str, ObjectStore]) -> None:
        """Have ``stores`` (filled in later, for a bucket filesystem) closed once this
        filesystem is collected or the interpreter exits (see ``_release``)."""
        weakref.finalize(self, _release, self.loop, stores, os.getpid())

    # ---- paths -------------------------------------------------------------------------------

    def _locate(self, path: str) -> tuple[ObjectStore, str, str]:
        """Return the store, the key in it and the prefix that turns keys back into paths."""
        return self.store, _clean(self._strip_protocol(path)), ""

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        text = str(path)
        for protocol in [cls.protocol] if isinstance(cls.protocol, str) else cls.protocol:
            if text.startswith(f"{protocol}://"):
                text = text[len(protocol) + 3 :]
        return text.strip("/")

    # ---- metadata ----------------------------------------------------------------------------

    async def _info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        store, key, base = self._locate(path)
        name = _join(base, key)
        if not key:  # a bucket's root: there when the bucket is (BucketNotFoundError if not)
            await has_objects_under(store, "")
            return _dir_entry(name)
        version = _version(kwargs)
        if version is not None:  # that version's metadata (NotFoundError if it has none)
            return _file_entry(name, await store.head(key, version=version))
        try:
            return _file_entry(name, await store.head(key))
        except NotFoundError:
            pass
        if await has_objects_under(store, key):
            return _dir_entry(name)
        raise FileNotFoundError(f"no such file or directory: {path!r}")

    async def _ls(
        self, path: str, detail: bool = True, versions: bool = False, **kwargs: Any
    ) -> list[Any]:
        """The entries directly under ``path``; with ``versions`` (s3fs, gcsfs, adlfs), one
        entry per version of each file, newest first, with its ``version_id``."""
        store, key, base = self._locate(path)
        level = await store.list_with_delimiter(key or None)
        entries = [_dir_entry(_join(base, p)) for p in level.common_prefixes]
        if versions:
            entries += await self._version_entries(store, base, key, None)
        else:
            entries += [_file_entry(_join(base, m.location), m) for m in level.objects]
        if not entries and key:
            if versions:  # a file's, even one deleted since
                entries = await self._version_entries(store, base, key.rpartition("/")[0], key)
            entries = entries or [await self._info(path)]  # a file lists as itself
        entries.sort(key=lambda e: e["name"])  # stable: a file's versions stay newest first
        return entries if detail else [e["name"] for e in entries]

    async def _version_entries(
        self, store: ObjectStore, base: str, directory: str, only: str | None
    ) -> list[dict[str, Any]]:
        """An entry for each version of the files directly in ``directory`` (or of ``only``),
        those deleted since included; S3's delete markers are left out, as s3fs does. The
        versions of the whole subtree are listed to find them."""
        entries = []
        async for version in store.list_versions_iter(directory or None):
            name = version.location
            wanted = name == only if only else name.rpartition("/")[0] == directory
            if wanted and not version.deleted:
                entries.append(_version_entry(_join(base, name), version))
        return entries

    async def _find(
        self,
        path: str,
        maxdepth: int | None = None,
        withdirs: bool = False,
        detail: bool = False,
        **kwargs: Any,
    ) -> Any:
        if maxdepth is not None:
            return await super()._find(
                path, maxdepth=maxdepth, withdirs=withdirs, detail=detail, **kwargs
            )
        store, key, base = self._locate(path)
        found: dict[str, dict[str, Any]] = {}
        async for meta in store.list_iter(key or None):
            if withdirs:
                for directory in parents_below(meta.location, key):
                    name = _join(base, directory)
                    found.setdefault(name, _dir_entry(name))
            name = _join(base, meta.location)
            found[name] = _file_entry(name, meta)
        if key:
            with contextlib.suppress(FileNotFoundError):
                info = await self._info(path)
                if info["type"] == "file" or (withdirs and found):
                    found[info["name"]] = info
        names = sorted(found)
        return {n: found[n] for n in names} if detail else names

    async def _modified(self, path: str) -> datetime:
        store, key, _ = self._locate(path)
        return (await store.head(key)).last_modified

    def modified(self, path: str) -> datetime:
        """The object's last-modified time (timezone-aware, UTC)."""
        result: datetime = sync(self.loop, self._modified, path)
        return result

    # ---- reads and writes --------------------------------------------------------------------

    async def _cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        store, key, _ = self._locate(path)
        version = _version(kwargs)
        if start is None and end is None:
            if version is not None:
                return (await store.get_result(key, version=version)).data
            return await store.get(key)
        start = start or 0
        if (end is not None and end < 0) or (start < 0 and end is not None):
            size = (await store.head(key)).size
            start = max(0, size + start) if start < 0 else start
            end = size + end if end < 0 else end
        if start < 0:
            request: ByteRange | OffsetRange | SuffixRange = SuffixRange(-start)
        elif end is None:
            request = OffsetRange(start)
        elif end <= start:
            return b""
        else:
            request = ByteRange(start, end)
        try:
            return (await store.get_result(key, range=request, version=version)).data
        except InvalidRangeError:
            return b""  # fsspec reads past the end as empty

    async def _pipe_file(
        self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any
    ) -> None:
        store, key, _ = self._locate(path)
        await store.put(key, value, mode="create" if mode == "create" else "overwrite")

    async def _put_file(
        self,
        lpath: str,
        rpath: str,
        callback: Callback = DEFAULT_CALLBACK,
        mode: str = "overwrite",
        **kwargs: Any,
    ) -> None:
        if os.path.isdir(lpath):
            return  # directories are implied by keys
        store, key, _ = self._locate(rpath)
        size = os.path.getsize(lpath)
        callback.set_size(size)
        await store.put(
            key,
            pathlib.Path(lpath),
            mode="create" if mode == "create" else "overwrite",
            progress=lambda done, _total: callback.absolute_update(done),
        )
        callback.absolute_update(size)

    async def _get_file(
        self, rpath: str, lpath: str, callback: Callback = DEFAULT_CALLBACK, **kwargs: Any
    ) -> None:
        if os.path.isdir(lpath):
            return
        store, key, _ = self._locate(rpath)
        partial = f"{lpath}.objstore-partial"
        try:
            async with store.stream(key, chunk_size=CHUNK) as stream:
                callback.set_size(stream.meta.size)
                with open(partial, "wb") as handle:
                    async for chunk in stream:
                        handle.write(chunk)
                        callback.relative_update(len(chunk))
            os.replace(partial, lpath)  # the local file appears whole or not at all
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)

    async def _cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copy one object (with ``version_id``, that version of it); a directory (which
        fsspec's recursive ``copy`` and ``mv`` pass along with its files) has nothing to
        copy: directories are implied by keys."""
        source, src, _ = self._locate(path1)
        target, dst, _ = self._locate(path2)
        version = _version(kwargs)
        try:
            if source is target:
                await source.copy(src, dst, version=version)
            else:  # another bucket: streamed through, never whole in memory
                async with source.stream(src, chunk_size=8 * MiB, version=version) as chunks:
                    await target.put(dst, chunks)
        except NotFoundError:
            if not await has_objects_under(source, src):
                raise

    def touch(self, path: str, truncate: bool = True, **kwargs: Any) -> None:
        """Create an empty object (``truncate``: replace one that exists). Without
        ``truncate`` an existing object is an error: an object's modification time cannot
        change without rewriting it."""
        if not truncate and self.exists(path):
            raise NotSupportedError(
                f"cannot touch {path!r} without truncating it: an object's modification time "
                "changes only when it is rewritten",
                path=path,
            )
        super().touch(path, truncate=True, **kwargs)

    async def _rm_file(self, path: str, **kwargs: Any) -> None:
        """Delete a file, or with ``version_id`` (``generation``) that one version of it."""
        store, key, _ = self._locate(path)
        await store.delete(key, version=_version(kwargs))

    async def _rm(
        self,
        path: str | list[str],
        recursive: bool = False,
        maxdepth: int | None = None,
        **kwargs: Any,
    ) -> None:
        version = _version(kwargs)
        if version is not None:
            if recursive or not isinstance(path, str):
                raise InvalidRequestError(
                    f"a version belongs to one file: give one path without recursive, not {path!r}"
                )
            await self._rm_file(path, version_id=version)
            return
        paths = await self._expand_path(path, recursive=recursive, maxdepth=maxdepth)
        groups: dict[int, tuple[ObjectStore, list[str]]] = {}
        for each in paths:
            store, key, _ = self._locate(each)
            if key:
                groups.setdefault(id(store), (store, []))[1].append(key)
        await gather_bounded([s.delete_many(keys) for s, keys in groups.values()], CONCURRENCY)

    async def _makedirs(self, path: str, exist_ok: bool = False) -> None:
        """Nothing to do: directories are implied by keys (a bucket must exist already)."""
        await self._mkdir(path)

    async def _mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """Nothing to do: directories are implied by keys. A bucket is not created: one that
        does not exist is ``NotSupportedError`` rather than a silent no-op."""
        store, key, _ = self._locate(path)
        if key:
            return
        try:
            await has_objects_under(store, "")
        except BucketNotFoundError:
            raise NotSupportedError(
                f"{path!r} does not exist, and objstore does not create buckets: create it "
                "with your cloud's tools",
                path=path,
            ) from None

    async def _rmdir(self, path: str) -> None:
        """Nothing to do: a directory goes when its last object does."""

    async def _sign(self, path: str, expiration: int = 100, **kwargs: Any) -> str:
        store, key, _ = self._locate(path)
        return await store.sign(kwargs.get("method", "GET"), key, expires_in=expiration)

    def sign(self, path: str, expiration: int = 100, **kwargs: Any) -> str:
        """A pre-signed URL for ``path`` (``method="PUT"`` for uploads)."""
        url: str = sync(self.loop, self._sign, path, expiration, **kwargs)
        return url

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> ObjstoreFile:
        return ObjstoreFile(
            self, path, mode, block_size=block_size or self.blocksize,
            autocommit=autocommit, cache_options=cache_options, **kwargs,
        )  # fmt: skip

    async def _aclose(self) -> None:
        await self.store.aclose()

    def close(self) -> None:
        """Release the store's clients and connections."""
        sync(self.loop, self._aclose)


class _BucketFileSystem(ObjstoreFileSystem):
    """``bucket/key`` paths over one objstore store per bucket, built from storage options."""

    cachable = True
    scheme: ClassVar[str] = ""
    _dropped_secrets: tuple[str, ...] = ()
    """The storage options this filesystem was pickled without."""

    def __init__(
        self,
        *,
        asynchronous: bool = False,
        loop: Any = None,
        block_size: int | None = None,
        **storage_options: Any,
    ) -> None:
        AsyncFileSystem.__init__(self, asynchronous=asynchronous, loop=loop)
        table = load_backend(SCHEMES[self.scheme]).config_table
        self._table_keys = {name: table.lookup(name) for name in storage_options}  # typos fail
        self._options = dict(storage_options)
        self._stores: dict[str, ObjectStore] = {}
        self.blocksize = block_size or CHUNK
        self._close_when_collected(self._stores)

    def __reduce__(self) -> tuple[Any, ...]:
        keys = self._table_keys
        allowed = [v for n, v in self._options.items() if keys[n].name == "allow_pickle_secrets"]
        keep = bool(allowed) and parse_bool(allowed[0])
        secret = {n for n, k in keys.items() if k.secret or k.credential}
        options = {n: v for n, v in self._options.items() if keep or n not in secret}
        dropped = tuple(sorted(set(self._options) - set(options)))
        return (_rebuild_bucket_fs, (type(self), self.blocksize, options, dropped))

    def __repr__(self) -> str:
        return f"objstore.fsspec.{type(self).__name__}()"

    def _locate(self, path: str) -> tuple[ObjectStore, str, str]:
        bucket, _, key = self._strip_protocol(path).partition("/")
        if not bucket:
            raise InvalidRequestError(
                f"{path!r} names no bucket: objstore's {self.scheme} filesystem does not list "
                "buckets; use '<bucket>/<key>' paths"
            )
        store = self._stores.get(bucket)
        if store is None:
            made = from_url(f"{self.scheme}://{bucket}", self._options)
            made._dropped_secrets = self._dropped_secrets  # its errors say what was left out
            store = self._stores.setdefault(bucket, made)
        return store, _clean(key), bucket

    async def _aclose(self) -> None:
        stores = list(self._stores.values())
        self._stores.clear()
        for store in stores:
            await store.aclose()


class S3FileSystem(_BucketFileSystem):
    """s3fs's paths (``bucket/key``) over objstore's S3 store."""

    protocol = ("s3", "s3a")
    scheme = "s3"


class GCSFileSystem(_BucketFileSystem):
    """gcsfs's paths (``bucket/key``) over objstore's GCS store."""

    protocol = ("gs", "gcs")
    scheme = "gs"


class AzureBlobFileSystem(_BucketFileSystem):
    """adlfs's paths (``container/key``) over objstore's Azure store."""

    protocol = ("az", "abfs", "abfss")
    scheme = "az"


_BY_SCHEME: dict[str, type[ObjstoreFileSystem]] = {
    scheme: cls
    for cls in (S3FileSystem, GCSFileSystem, AzureBlobFileSystem)
    for scheme in cls.protocol
}


def register(*schemes: str, clobber: bool = True) -> None:
    """Make fsspec (and pandas, dask, xarray...) use objstore for ``schemes``.

    ``register("s3")``; with no argument, every scheme objstore serves (s3, s3a, gs, gcs, az,
    abfs, abfss).

    Raises:
        InvalidRequestError: a scheme objstore does not serve.
    """
    import fsspec

    for scheme in schemes or tuple(_BY_SCHEME):
        cls = _BY_SCHEME.get(scheme)
        if cls is None:
            raise InvalidRequestError(
                f"objstore has no fsspec filesystem for {scheme!r}; choose from "
                f"{sorted(_BY_SCHEME)}"
            )
        fsspec.register_implementation(scheme, cls, clobber=clobber)


class ObjstoreFile(AbstractBufferedFile):  # type: ignore[misc]  # untyped base
    """A buffered fsspec file: reads pinned to the ETag seen at open, writes through a
    multipart writer that commits on ``close()`` and aborts on error or when dropped."""

    fs: ObjstoreFileSystem
    closed: bool

    def __init__(self, fs: ObjstoreFileSystem, path: str, mode: str = "rb", **kwargs: Any):
        if mode not in ("rb", "wb", "xb"):
            raise InvalidRequestError(f"objstore files open as 'rb', 'wb' or 'xb', not {mode!r}")
        self._writer: Writer | None = None
        self._create = mode == "xb"
        self._version = _version(kwargs)
        if self._version is not None:
            if mode != "rb":
                raise InvalidRequestError(f"a version is read, not written: open {path!r} 'rb'")
            self._details = fs.info(path, version_id=self._version)
        if self._create and fs.exists(path):  # checked again, atomically, on commit
            raise AlreadyExistsError(f"{path!r} exists", path=path, operation="open")
        super().__init__(fs, path, "wb" if mode == "xb" else mode, **kwargs)

    def _fetch_range(self, start: int, end: int) -> bytes:
        store, key, _ = self.fs._locate(self.path)
        e_tag = self.details.get("ETag")

        async def fetch() -> bytes:
            if start >= end:
                return b""
            try:
                result = await store.get_result(
                    key, range=ByteRange(start, end), if_match=e_tag, version=self._version
                )
            except PreconditionFailedError as exc:
                raise ConcurrentModificationError(
                    f"{self.path!r} changed while it was being read",
                    path=self.path,
                    operation="read",
                ) from exc
            return result.data

        data: bytes = sync(self.fs.loop, fetch)
        return data

    def _initiate_upload(self) -> None:
        store, key, _ = self.fs._locate(self.path)
        self._writer = store.open_writer(key, mode="create" if self._create else "overwrite")

    def _upload_chunk(self, final: bool = False) -> bool:
        if self._writer is None:
            self._initiate_upload()
        assert self._writer is not None
        writer = self._writer
        data = self.buffer.getvalue()

        async def upload() -> None:
            if data:
                await writer.write(data)
            if final:
                await writer.close()

        sync(self.fs.loop, upload)
        return True

    def discard(self) -> None:
        """Drop everything written: the object is left as it was."""
        writer, self._writer = self._writer, None
        self.buffer = io.BytesIO()
        if writer is not None and not writer.closed:
            sync(self.fs.loop, writer.abort)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None and self.mode == "wb" and not self.closed:
            self.discard()
            self.closed = True
            return
        self.close()

    def __del__(self) -> None:
        if not self.closed and self.mode == "wb":
            with contextlib.suppress(Exception):  # best effort; never commit from a finalizer
                self.discard()
            self.closed = True


_closing: set[asyncio.Task[None]] = set()
"""Closes begun by ``_release`` on the loop's own thread (held until they end)."""


def _release(
    loop: asyncio.AbstractEventLoop | None, stores: dict[str, ObjectStore], pid: int
) -> None:
    """Close the stores a filesystem made, once it is collected or the interpreter exits.

    fsspec's event loop never shuts down, so the sessions the stores opened on it would be
    left to the garbage collector, which has aiohttp print "Unclosed client session" at the
    end of every script. An asynchronous filesystem (``loop`` ``None``: the caller's loop),
    or one on a loop that no longer runs, leaves them to that loop's own shutdown
    (``asyncio.run`` closes them), and a forked child, where the loop's thread does not
    exist, leaves them to the parent (``pid``: the process that made them).
    """
    owned = list(stores.values())
    stores.clear()
    if os.getpid() != pid or not owned or loop is None or not loop.is_running():
        return

    async def close_all() -> None:
        for store in owned:
            await store.aclose()

    try:
        on_loop = asyncio.get_running_loop() is loop
    except RuntimeError:
        on_loop = False
    if on_loop:  # collected by the loop's own thread: it cannot wait for itself
        task = loop.create_task(close_all())
        _closing.add(task)
        task.add_done_callback(_closing.discard)
        return
    with contextlib.suppress(Exception):  # at exit, a slow server must not hold the process
        asyncio.run_coroutine_threadsafe(close_all(), loop).result(timeout=RELEASE_TIMEOUT)


def _rebuild_bucket_fs(
    cls: type[_BucketFileSystem],
    block_size: int,
    options: dict[str, Any],
    dropped: tuple[str, ...] = (),
) -> _BucketFileSystem:
    fs = cls(block_size=block_size, **options)
    fs._dropped_secrets = dropped
    return fs


def _clean(key: str) -> str:
    return key.strip("/")


def _join(base: str, key: str) -> str:
    return f"{base}/{key}" if base and key else base or key


def _dir_entry(name: str) -> dict[str, Any]:
    return {"name": name, "size": 0, "type": "directory"}


def _version(kwargs: Mapping[str, Any]) -> str | None:
    """The object version a call asks for: s3fs's and adlfs's ``version_id``, gcsfs's
    ``generation`` (taken, never silently ignored: the current object is not that version)."""
    for name in ("version_id", "generation"):
        value = kwargs.get(name)
        if value is not None:
            return str(value)
    return None


def _version_entry(name: str, version: ObjectVersion) -> dict[str, Any]:
    """A file entry of one version, with s3fs's and adlfs's names for its id."""
    return {**_file_entry(name, version), "version_id": version.version,
            "VersionId": version.version, "is_latest": version.is_latest}  # fmt: skip


def _file_entry(name: str, meta: ObjectMeta | ObjectVersion) -> dict[str, Any]:
    return {
        "name": name,
        "size": meta.size,
        "type": "file",
        "mtime": meta.last_modified.timestamp(),
        "LastModified": meta.last_modified,
        "ETag": meta.e_tag,
        "version": meta.version,
    }
