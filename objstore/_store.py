"""ObjectStore: the public coroutines, written once, over a few backend primitives.

A backend implements ``_get``, ``_put``, ``_list``, ``_delete``, ``_copy`` and
``_create_multipart`` (and may override ``_head``, ``_get_bytes``, ``_list_with_delimiter``,
``_rename``, ``_put_file`` and ``_put_file_of_size`` where it has a faster native call). The
public methods validate paths, apply the store's prefix, build the options, annotate errors and
call them.
"""

from __future__ import annotations

import abc
import builtins
import contextlib
import io
import operator
import os
import re
import stat
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Iterable,
    Mapping,
    Sequence,
)
from datetime import datetime, timedelta
from types import MappingProxyType, TracebackType
from typing import Any, ClassVar, Self, cast

from objstore._concurrency import coalesce_ranges
from objstore._config import Config, ConfigTable
from objstore._errors import (
    AlreadyExistsError,
    BucketNotFoundError,
    BulkDeleteError,
    ChecksumMismatchError,
    ConcurrentModificationError,
    IntegrityError,
    InvalidRangeError,
    InvalidRequestError,
    NotFoundError,
    NotSupportedError,
    ObjstoreError,
    PermissionDeniedError,
    PreconditionFailedError,
    TransientError,
    UnauthenticatedError,
)
from objstore._inline import gather_bounded, offload, run_inline
from objstore._multipart import GROWTH_STEPS, MultipartUpload, Writer
from objstore._path import DELIMITER, Path, join, parse_path, parse_prefix, strip_prefix
from objstore._reader import Reader
from objstore._record import record, replace
from objstore._types import (
    DEFAULT_GET,
    DEFAULT_PUT,
    Attributes,
    ByteRange,
    GetOptions,
    GetResponse,
    GetResult,
    IncompleteUpload,
    ListResult,
    ObjectMeta,
    ObjectVersion,
    OffsetRange,
    ProgressCallback,
    PutMode,
    PutOptions,
    PutResult,
    RangeRequest,
    SuffixRange,
    UpdateVersion,
    byte_view,
    requested_part,
    validate_attributes,
    validate_tags,
)

__all__ = ["Capabilities", "ObjectStore", "ObjectStream"]

MiB = 1024 * 1024
Payload = (
    bytes
    | bytearray
    | memoryview
    | os.PathLike[str]
    | io.IOBase
    | Iterable[bytes]
    | AsyncIterable[bytes]
    | Any
)


@record
class Capabilities:
    """What a backend can do beyond the core operations."""

    attributes: bool = True
    tags: bool = True
    create_mode: bool = True
    """Writes in ``"create"`` mode (and what rests on them)."""
    update_mode: bool = True
    versions: bool = False
    sign: bool = False
    object_and_prefix: bool = True
    """A key can be an object and the prefix of other objects at once (not on a filesystem)."""
    text_metadata: bool = True
    """User metadata values may be any text, not only ASCII (not on Azure, whose metadata are
    HTTP headers it keeps as sent)."""
    incomplete_uploads: bool = False
    """A writer that dies leaves its upload behind, which ``list_incomplete`` finds and
    ``cleanup_incomplete`` removes (S3, Azure, local). Memory leaves nothing; GCS cannot list
    its resumable sessions, which the service drops a week after they begin."""


class ObjectStore(abc.ABC):
    """An object store: every public method is a coroutine (``objstore_sync`` blocks instead).

    Paths are ``/``-delimited keys relative to the store's root (its URL's path); the root
    never appears in returned locations.
    """

    backend: ClassVar[str]
    config_table: ClassVar[ConfigTable]
    capabilities: Capabilities = Capabilities()
    """What the backend can do, as this store is configured (a key may turn some off)."""
    _switched_off: Mapping[str, str] = MappingProxyType({})
    """Capabilities the configuration turned off, each with the key that did."""
    inline_capable: ClassVar[bool] = False
    """The backend never needs an event loop: the blocking facade drives it inline and calls
    its ``_*_sync`` primitives directly."""
    nonblocking_sync: ClassVar[bool] = False
    """The ``_*_sync`` primitives never block (memory), so coroutines may call them directly."""
    single_put_limit: ClassVar[int] = 8 * MiB
    """Payloads of known size up to this go in one request; larger ones through a writer."""
    part_size: ClassVar[int] = 8 * MiB
    part_granularity: ClassVar[int] = 1
    """Parts are rounded up to a multiple of this (the service keeps no less)."""
    part_concurrency: ClassVar[int] = 8
    max_parts: ClassVar[int | None] = None
    """The most parts a multipart upload may have (S3 10,000, Azure 50,000 blocks): a write
    of known size gets parts large enough; one of unknown size doubles its part size every
    tenth of them, up to ``max_part_size``."""
    max_part_size: ClassVar[int | None] = None
    delete_batch: ClassVar[int] = 1000
    _dropped_secrets: tuple[str, ...] = ()
    """The options a pickled copy of this store was sent without (``allow_pickle_secrets``)."""
    content_keys: ClassVar[frozenset[str]] = frozenset()
    """The configuration keys holding a key that objects are encrypted with (S3 SSE-C, Azure
    customer-provided keys): without it their reads are refused as malformed."""

    def __init__(self, *, url: str, config: Config, prefix: str = "") -> None:
        self._url = url
        self.config = config
        self._prefix = parse_prefix(prefix) if prefix else Path("")
        self._key_cache: dict[str, Path] = {}

    # ---- identity -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The store's URL, without credentials."""
        return self._url

    @property
    def prefix(self) -> str:
        """The key prefix every path of this store lives under ('' for the root)."""
        return str(self._prefix)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._url!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        with_secrets = bool(self.config.get("allow_pickle_secrets", False))
        options = self.config.explicit_options(with_secrets=with_secrets)
        dropped = sorted(set(self.config.explicit_options(with_secrets=True)) - set(options))
        return (_unpickled, (self._url, options, tuple(dropped)))

    async def aclose(self) -> None:  # noqa: B027  (backends without clients have nothing to do)
        """Release clients and connections (the store stays usable and reopens them lazily)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ---- backend primitives ---------------------------------------------------------------

    @abc.abstractmethod
    async def _get(self, key: Path, options: GetOptions) -> GetResponse:
        """Read an object (or only its metadata when ``options.head``)."""

    @abc.abstractmethod
    async def _put(self, key: Path, data: bytes, options: PutOptions) -> PutResult:
        """Write an object in one request, honouring the mode."""

    @abc.abstractmethod
    def _list(self, prefix: Path, offset: Path | None) -> AsyncGenerator[list[ObjectMeta], None]:
        """Yield pages of the objects strictly under ``prefix``, in key order, after ``offset``."""

    @abc.abstractmethod
    async def _delete(self, keys: Sequence[Path]) -> dict[Path, ObjstoreError]:
        """Delete keys (a missing key is no failure); return the failures."""

    @abc.abstractmethod
    async def _copy(
        self, src: Path, dst: Path, overwrite: bool, version: str | None = None
    ) -> None:
        """Copy an object within the store (with ``version``, that version of it:
        ``NotFoundError`` if it has none such)."""

    @abc.abstractmethod
    async def _create_multipart(self, key: Path, options: PutOptions) -> MultipartUpload:
        """Start a multipart upload."""

    # ---- derived primitives (override where the service is faster) -------------------------

    async def _head(self, key: Path) -> ObjectMeta:
        return (await self._get(key, GetOptions(head=True))).meta

    async def _get_bytes(self, key: Path) -> bytes:
        return await _read_body(await self._get(key, DEFAULT_GET))

    async def _get_buffered(self, key: Path, options: GetOptions) -> tuple[GetResponse, bytes]:
        """Read an object (or a range) whole; a network backend reads the body inside its
        retries, so a truncated body is fetched again rather than raised."""
        response = await self._get(key, options)
        return response, await _read_body(response)

    async def _get_part(self, key: Path, options: GetOptions) -> tuple[GetResponse, bytes]:
        """``_get_buffered`` of a ranged read, its bytes cut to ``options.range`` where a
        server ignored ``Range`` and sent the whole object."""
        request = options.range
        assert isinstance(request, ByteRange | OffsetRange)
        response, data = await self._get_buffered(key, options)
        return response, requested_part(data, response.range[0], request, response.meta.size)

    async def _get_range_bytes(self, key: Path, request: ByteRange | OffsetRange) -> bytes:
        """The bytes of one range, nothing else (``get_range``'s primitive; a network backend
        may skip parsing the metadata and attributes that ``_get_buffered`` builds)."""
        return (await self._get_part(key, GetOptions(range=request)))[1]

    async def _list_with_delimiter(self, prefix: Path) -> ListResult:
        prefixes: list[str] = []
        objects: list[ObjectMeta] = []
        skip = len(prefix) + 1 if prefix else 0
        async with contextlib.aclosing(self._list(prefix, None)) as pages:
            async for page in pages:
                for meta in page:
                    rest = meta.location[skip:]
                    head, sep, _ = rest.partition(DELIMITER)
                    if not sep:
                        objects.append(meta)
                    elif not prefixes or prefixes[-1] != head:
                        prefixes.append(head)
        return ListResult(common_prefixes=[join(prefix, p) for p in prefixes], objects=objects)

    async def _rename(self, src: Path, dst: Path, overwrite: bool) -> None:
        await self._copy(src, dst, overwrite)
        failures = await self._delete([src])
        if failures:
            raise failures[src]

    async def _put_file(
        self, key: Path, source: os.PathLike[str], options: PutOptions, writer_args: dict[str, Any]
    ) -> PutResult:
        try:
            found = await offload(os.stat, source)
        except OSError as exc:
            raise source_file_error(exc, source, key) from None
        if not stat.S_ISREG(found.st_mode):
            raise InvalidRequestError(f"cannot upload {os.fspath(source)!r}: not a regular file")
        return await self._put_file_of_size(key, source, found.st_size, options, writer_args)

    async def _put_file_of_size(
        self,
        key: Path,
        source: os.PathLike[str],
        size: int,
        options: PutOptions,
        writer_args: dict[str, Any],
    ) -> PutResult:
        """Upload a local file of a known size: one put when small, else the multipart writer
        (a backend with a better way for large files overrides this)."""
        if size <= self.single_put_limit:
            data = await offload(_read_file, source, size)
            result = await self._put(key, data, options)
            if writer_args.get("progress") is not None:
                writer_args["progress"](len(data), len(data))
            return result
        handle = await offload(open, source, "rb")
        try:
            part = self._fitted_part_size(writer_args.get("part_size"), size)
            chunks = _file_part_chunks(handle, part, size, source)
            return await self._write_stream(key, options, chunks, total=size, **writer_args)
        finally:
            await offload(handle.close)

    # ---- synchronous primitives (inline-capable backends) -----------------------------------

    def _get_bytes_sync(self, key: Path) -> bytes:
        raise NotImplementedError

    def _put_sync(self, key: Path, data: bytes, options: PutOptions) -> PutResult:
        raise NotImplementedError

    def _head_sync(self, key: Path) -> ObjectMeta:
        raise NotImplementedError

    # ---- blocking entry points for the facade (inline-capable backends only) ----------------

    def _blocking_get(self, path: str) -> bytes:
        try:
            return self._get_bytes_sync(self._key(path))
        except ObjstoreError as exc:
            self._annotate(exc, "get")
            raise

    def _blocking_head(self, path: str, *, version: str | None = None) -> ObjectMeta:
        if version is not None:
            return run_inline(self.head(path, version=version))
        try:
            return self._rel_meta(self._head_sync(self._key(path)))
        except ObjstoreError as exc:
            self._annotate(exc, "head")
            raise

    def _blocking_put(
        self,
        path: str,
        data: Payload,
        *,
        mode: PutMode = "overwrite",
        attributes: Attributes | None = None,
        tags: Mapping[str, str] | None = None,
        part_size: int | None = None,
        max_concurrency: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> PutResult:
        if (
            type(data) is not bytes
            or progress is not None
            or len(data) > self.single_put_limit
            or part_size is not None
            or max_concurrency is not None
        ):
            return run_inline(
                self.put(
                    path,
                    data,
                    mode=mode,
                    attributes=attributes,
                    tags=tags,
                    part_size=part_size,
                    max_concurrency=max_concurrency,
                    progress=progress,
                )
            )
        try:
            key = (self._key_cache.get(path) if type(path) is str else None) or self._key(path)
            if mode == "overwrite" and attributes is None and tags is None:
                return self._put_sync(key, data, DEFAULT_PUT)
            return self._put_sync(key, data, self._put_options(mode, attributes, tags))
        except ObjstoreError as exc:
            self._annotate(exc, "put")
            raise

    # ---- helpers ---------------------------------------------------------------------------

    def _key(self, path: object) -> Path:
        if type(path) is str:
            key = self._key_cache.get(path)
            if key is not None:
                return key
        key = join(self._prefix, parse_path(path))
        if type(path) is str and len(self._key_cache) < 65536:
            self._key_cache[path] = key
        return key

    def _key_prefix(self, prefix: str | None) -> Path:
        """A caller's listing prefix (validated), under the store's own."""
        return join(self._prefix, parse_prefix(prefix)) if prefix else self._prefix

    def _rel(self, key: str) -> str:
        return strip_prefix(self._prefix, key)

    def _rel_meta(self, meta: ObjectMeta) -> ObjectMeta:
        if not self._prefix:
            return meta
        return replace(meta, location=strip_prefix(self._prefix, meta.location))

    def _annotate(self, exc: ObjstoreError, operation: str) -> None:
        if exc.operation is None:
            exc.operation = operation
        if self._dropped_secrets and (
            isinstance(exc, UnauthenticatedError | PermissionDeniedError)
            or (  # an object encrypted with a key this store no longer has
                isinstance(exc, InvalidRequestError)
                and exc.status in (400, 409)
                and not self.content_keys.isdisjoint(self._dropped_secrets)
            )
        ):
            note = (
                f"this store was unpickled without its secrets ({', '.join(self._dropped_secrets)}"
                "): give the process credentials of its own, or set allow_pickle_secrets=true "
                "to send them (to trusted processes only)"
            )
            if note not in getattr(exc, "__notes__", ()):
                exc.add_note(note)
        if exc.store is None:
            exc.store = self._url
        if exc.path is not None and self._prefix and exc.path.startswith(self._prefix + "/"):
            exc.path = self._rel(exc.path)
        if self._prefix:  # the message names keys as the caller does: relative to the store
            quoted = repr(f"{self._prefix}/.")[:-2]  # an opening quote, the prefix and "/"
            exc.message = exc.message.replace(quoted, quoted[0])

    def _switch_off(self, features: Mapping[str, str]) -> None:
        """Turn capabilities off for this store: ``features`` maps each to the configuration
        key that turned it off, which the refusals then name."""
        self.capabilities = replace(self.capabilities, **dict.fromkeys(features, False))
        self._switched_off = MappingProxyType(dict(features))

    def _unsupported(
        self, what: str, feature: str, *, operation: str | None = None
    ) -> NotSupportedError:
        """The refusal of a capability this store lacks (naming the key that turned it off)."""
        key = self._switched_off.get(feature)
        why = f": turned off by {key!r}" if key else ""
        return NotSupportedError(
            f"the {self.backend} store cannot {what}{why}", operation=operation, store=self._url
        )

    def _put_options(
        self,
        mode: PutMode,
        attributes: Attributes | None,
        tags: Mapping[str, str] | None,
    ) -> PutOptions:
        if mode == "overwrite" and not attributes and not tags:
            return DEFAULT_PUT
        if not (mode in ("overwrite", "create") or isinstance(mode, UpdateVersion)):
            raise InvalidRequestError(
                f"invalid put mode {mode!r}: use 'overwrite', 'create' or UpdateVersion(...)"
            )
        if isinstance(mode, UpdateVersion):
            if not self.capabilities.update_mode:
                raise self._unsupported("update by ETag", "update_mode")
            mode = _one_version(mode)
        if mode == "create" and not self.capabilities.create_mode:
            raise self._unsupported("write in create mode", "create_mode")
        if attributes and not self.capabilities.attributes:
            raise self._unsupported("store attributes", "attributes")
        if tags and not self.capabilities.tags:
            if "tags" not in self._switched_off:
                raise self._unsupported("store tags", "tags")
            tags = None  # turned off by configuration: dropped (object_store's "ignore tags")
        return PutOptions(
            mode=mode, attributes=validate_attributes(attributes), tags=validate_tags(tags)
        )

    def _writer(
        self,
        key: Path,
        options: PutOptions,
        *,
        part_size: int | None,
        max_concurrency: int | None,
        progress: ProgressCallback | None,
        total: int | None = None,
    ) -> Writer:
        _tuning(part_size, max_concurrency)
        size = self._fitted_part_size(part_size, total)

        async def single_put(data: bytes) -> PutResult:
            return await self._put(key, data, options)

        async def create_upload() -> MultipartUpload:
            return await self._create_multipart(key, options)

        return Writer(
            path=self._rel(key),
            create_upload=create_upload,
            single_put=single_put,
            part_size=size,
            max_concurrency=self.part_concurrency if max_concurrency is None else max_concurrency,
            progress=progress,
            total=total,
            grow_every=self.max_parts // GROWTH_STEPS if self.max_parts and total is None else 0,
            max_part_size=self.max_part_size,
        )

    def _fitted_part_size(self, part_size: int | None, total: int | None) -> int:
        """The part size of a write: as asked (or the backend's), made large enough for a
        ``total`` known in advance to fit in ``max_parts`` parts, in whole granules."""
        size = self.part_size if part_size is None else part_size
        if self.max_parts is not None and total is not None:
            size = max(size, -(-total // self.max_parts))
        return -(-size // self.part_granularity) * self.part_granularity

    async def _write_stream(
        self,
        key: Path,
        options: PutOptions,
        chunks: AsyncIterator[bytes],
        *,
        total: int | None = None,
        part_size: int | None = None,
        max_concurrency: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> PutResult:
        writer = self._writer(
            key,
            options,
            part_size=part_size,
            max_concurrency=max_concurrency,
            progress=progress,
            total=total,
        )
        async with writer:
            async for chunk in chunks:
                await writer.write(chunk)
        assert writer.result is not None
        return writer.result

    # ---- writes ----------------------------------------------------------------------------

    async def put(
        self,
        path: str,
        data: Payload,
        *,
        mode: PutMode = "overwrite",
        attributes: Attributes | None = None,
        tags: Mapping[str, str] | None = None,
        part_size: int | None = None,
        max_concurrency: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> PutResult:
        """Write an object.

        Args:
            path: the key.
            data: bytes-like (``bytes``, or anything with the buffer protocol: ``bytearray``,
                ``memoryview``, NumPy arrays, ``array.array``, pyarrow buffers, ``mmap``),
                a local file path (any ``os.PathLike``) to upload, a binary file object, or
                an (async) iterable of bytes-like chunks. Large or streamed payloads go
                through a multipart writer.
            mode: ``"overwrite"``, ``"create"`` (fail if present) or ``UpdateVersion(e_tag=...)``
                (replace only that version).
            attributes: content_type, cache_control, ... and user metadata.
            tags: object tags, where the backend keeps them.
            part_size, max_concurrency: multipart tuning.
            progress: called with ``(bytes_done, bytes_total_or_None)``.

        Raises:
            AlreadyExistsError: ``mode="create"`` and the object exists.
            PreconditionFailedError: ``UpdateVersion`` and the object changed (or is gone).
            InvalidPathError, InvalidRequestError, NotSupportedError.
        """
        try:
            key = (self._key_cache.get(path) if type(path) is str else None) or self._key(path)
            if part_size is not None or max_concurrency is not None:
                _tuning(part_size, max_concurrency)
            if mode == "overwrite" and attributes is None and tags is None:
                if self.nonblocking_sync and type(data) is bytes and progress is None:
                    return self._put_sync(key, data, DEFAULT_PUT)
                options = DEFAULT_PUT
            else:
                options = self._put_options(mode, attributes, tags)
            if type(data) is not bytes:
                view = byte_view(data)
                data = data if view is None else view  # an empty view is falsy: no ``or``
            if type(data) is bytes or isinstance(data, memoryview):
                size = len(data)
                if size <= self.single_put_limit:
                    payload = data if type(data) is bytes else bytes(data)
                    if self.nonblocking_sync:
                        result = self._put_sync(key, payload, options)
                    else:
                        result = await self._put(key, payload, options)
                    if progress is not None:
                        progress(size, size)
                    return result
                return await self._write_stream(
                    key,
                    options,
                    _memory_chunks(data, self._fitted_part_size(part_size, size)),
                    total=size,
                    part_size=part_size,
                    max_concurrency=max_concurrency,
                    progress=progress,
                )
            writer_args: dict[str, Any] = {
                "part_size": part_size,
                "max_concurrency": max_concurrency,
                "progress": progress,
            }
            if isinstance(data, os.PathLike):
                return await self._put_file(key, data, options, writer_args)
            if isinstance(data, str):
                raise InvalidRequestError("put() takes bytes, not str: encode the text first")
            return await self._write_stream(key, options, _as_chunks(data), **writer_args)
        except ObjstoreError as exc:
            self._annotate(exc, "put")
            raise

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
    ) -> Writer:
        """Return a streaming writer: ``async with store.open_writer(p) as w: await w.write(b)``.

        Nothing is visible until the writer closes; an exception inside the block aborts it.
        """
        key = self._key(path)
        options = self._put_options(mode, attributes, tags)
        return self._writer(
            key, options, part_size=part_size, max_concurrency=max_concurrency, progress=progress
        )

    # ---- reads -----------------------------------------------------------------------------

    async def get(self, path: str) -> bytes:
        """Return an object's bytes.

        Raises:
            NotFoundError: no such object.
        """
        try:
            if self.nonblocking_sync:
                return self._get_bytes_sync(self._key(path))
            return await self._get_bytes(self._key(path))
        except ObjstoreError as exc:
            self._annotate(exc, "get")
            raise

    async def get_result(
        self,
        path: str,
        *,
        range: RangeRequest | None = None,
        if_match: str | None = None,
        if_none_match: str | None = None,
        if_modified_since: datetime | None = None,
        if_unmodified_since: datetime | None = None,
        version: str | None = None,
    ) -> GetResult:
        """Read an object with conditions; return its bytes, metadata, attributes and range.

        Raises:
            NotFoundError, PreconditionFailedError (``if_match``, ``if_unmodified_since``),
            NotModifiedError (``if_none_match``, ``if_modified_since``), InvalidRangeError.
        """
        try:
            options = _get_options(
                range,
                if_match=if_match,
                if_none_match=if_none_match,
                if_modified_since=if_modified_since,
                if_unmodified_since=if_unmodified_since,
                version=version,
            )
            response, data = await self._get_buffered(self._key(path), options)
            return GetResult(
                data=data,
                meta=self._rel_meta(response.meta),
                attributes=response.attributes,
                range=response.range,
            )
        except ObjstoreError as exc:
            self._annotate(exc, "get")
            raise

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
    ) -> ObjectStream:
        """Stream an object in chunks: ``async with store.stream(p) as s: async for c in s``.

        The connection or file is released when the block ends, or when iteration finishes.
        """
        options = _get_options(
            range,
            if_match=if_match,
            if_none_match=if_none_match,
            if_modified_since=if_modified_since,
            if_unmodified_since=if_unmodified_since,
            version=version,
        )
        if chunk_size <= 0:
            raise InvalidRequestError(f"chunk_size must be positive, got {chunk_size}")
        return ObjectStream(self, self._key(path), options, chunk_size, progress)

    async def get_range(
        self, path: str, start: int, end: int | None = None, *, length: int | None = None
    ) -> bytes:
        """Return bytes ``[start, end)`` or ``[start, start + length)``; to the end if neither.

        An end past the object is clamped.

        Raises:
            InvalidRangeError: ``start`` is at or past the end, or the range is malformed.
        """
        try:
            return await self._get_range_bytes(self._key(path), _range_request(start, end, length))
        except ObjstoreError as exc:
            self._annotate(exc, "get_range")
            raise

    async def get_ranges(
        self,
        path: str,
        ranges: Sequence[tuple[int, int]],
        *,
        coalesce: int = MiB,
        max_concurrency: int = 10,
        progress: ProgressCallback | None = None,
    ) -> list[bytes]:
        """Return the bytes of several ``(start, end)`` ranges of one object.

        Ranges closer than ``coalesce`` bytes are fetched together; fetches run concurrently.
        All of them must see the same object version.

        Raises:
            InvalidRangeError: a range is malformed or starts past the end.
            ConcurrentModificationError: the object changed between fetches.
        """
        try:
            _at_least("coalesce", coalesce, 0)
            _at_least("max_concurrency", max_concurrency, 1)
            ranges = [_pair(each) for each in ranges]
            key = self._key(path)
            fetches, slices = coalesce_ranges(ranges, coalesce)
            total = sum(e - s for s, e in fetches)
            done = 0

            async def fetch(start: int, end: int) -> tuple[bytes, ObjectMeta]:
                nonlocal done
                options = GetOptions(range=ByteRange(start, end))
                response, part = await self._get_part(key, options)
                done += end - start
                if progress is not None:
                    progress(done, total)
                return part, response.meta

            fetched = await gather_bounded((fetch(s, e) for s, e in fetches), max_concurrency)
            if len({meta.e_tag for _, meta in fetched}) > 1:
                raise ConcurrentModificationError(
                    f"{path!r} changed while its ranges were read", path=key
                )
            bodies = [data for data, _ in fetched]
            size = fetched[0][1].size if fetched else 0
            out: list[bytes] = []
            for (start, _), (index, offset, length) in zip(ranges, slices, strict=True):
                if start >= size and not (start == 0 and size == 0):
                    raise InvalidRangeError(
                        f"range starts at {start}, past the end of a {size}-byte object",
                        path=key,
                    )
                out.append(bodies[index][offset : offset + length])
            return out
        except ObjstoreError as exc:
            self._annotate(exc, "get_ranges")
            raise

    async def open_reader(
        self,
        path: str,
        *,
        block_size: int = 4 * MiB,
        read_ahead: int = 2,
        version: str | None = None,
    ) -> Reader:
        """Open a seekable reader pinned to the object's current ETag (or ``version``)."""
        try:
            key = self._key(path)
            meta = (await self._get(key, _head_of(version))).meta
        except ObjstoreError as exc:
            self._annotate(exc, "open_reader")
            raise

        async def fetch(start: int, end: int, e_tag: str | None) -> bytes:
            options = GetOptions(range=ByteRange(start, end), if_match=e_tag, version=version)
            return (await self._get_part(key, options))[1]

        return Reader(self._rel_meta(meta), fetch, block_size=block_size, read_ahead=read_ahead)

    async def head(self, path: str, *, version: str | None = None) -> ObjectMeta:
        """Return an object's metadata (with ``version``, that version's).

        Raises:
            NotFoundError: no such object, or no such version of it.
        """
        try:
            key = self._key(path)
            if version is None:
                return self._rel_meta(await self._head(key))
            return self._rel_meta((await self._get(key, _head_of(version))).meta)
        except ObjstoreError as exc:
            self._annotate(exc, "head")
            raise

    async def exists(self, path: str) -> bool:
        """Say whether an object exists.

        Raises:
            BucketNotFoundError: the bucket or container itself is missing, where the service
                says so (a misspelt name is not an object that does not exist).
        """
        try:
            await self._head(self._key(path))
        except BucketNotFoundError as exc:
            self._annotate(exc, "exists")
            raise
        except NotFoundError:
            return False
        except ObjstoreError as exc:
            self._annotate(exc, "exists")
            raise
        return True

    async def get_tags(self, path: str) -> dict[str, str]:
        """Return the tags an object was written with (``{}`` if none).

        Raises:
            NotFoundError: no such object.
            NotSupportedError: the backend keeps no tags (GCS), or tagging is turned off.
        """
        if not self.capabilities.tags:
            raise self._unsupported("keep tags", "tags", operation="get_tags")
        try:
            return await self._get_tags(self._key(path))
        except ObjstoreError as exc:
            self._annotate(exc, "get_tags")
            raise

    async def _get_tags(self, key: Path, version: str | None = None) -> dict[str, str]:
        """The tags of ``key`` (of its ``version``, where the store keeps older ones)."""
        raise NotSupportedError(f"the {self.backend} store keeps no tags")

    async def _tags_to_copy(self, src: Path, version: str | None = None) -> dict[str, str]:
        """The tags a copy of ``src`` is written with where the service does not carry them
        itself: the source's, or none where tagging is off or the credentials may not read
        tags (an S3 policy without GetObjectTagging, an Azure SAS without ``t``), so that
        such a copy works as it did before tags were copied."""
        try:
            return await self._get_tags(src, version)
        except (NotSupportedError, PermissionDeniedError):
            return {}

    # ---- listings --------------------------------------------------------------------------

    async def list_pages(
        self, prefix: str | None = None, *, offset: str | None = None
    ) -> AsyncGenerator[list[ObjectMeta], None]:
        """Yield pages of the objects under ``prefix`` (whole segments), in key order."""
        try:
            full = self._key_prefix(prefix)
            after = self._key(offset) if offset is not None else None
            async with contextlib.aclosing(self._list(full, after)) as pages:
                async for page in pages:
                    yield [self._rel_meta(m) for m in page] if self._prefix else page
        except ObjstoreError as exc:
            self._annotate(exc, "list")
            raise

    async def list_iter(
        self, prefix: str | None = None, *, offset: str | None = None
    ) -> AsyncGenerator[ObjectMeta, None]:
        """Yield the objects under ``prefix`` one by one, for listings too large to hold."""
        async with contextlib.aclosing(self.list_pages(prefix, offset=offset)) as pages:
            async for page in pages:
                for meta in page:
                    yield meta

    async def list(
        self, prefix: str | None = None, *, offset: str | None = None
    ) -> list[ObjectMeta]:
        """Return every object under ``prefix`` (whole segments: ``a/b`` excludes ``a/bc``),
        in key order; with ``offset``, only keys after it."""
        out: list[ObjectMeta] = []
        async with contextlib.aclosing(self.list_pages(prefix, offset=offset)) as pages:
            async for page in pages:
                out.extend(page)
        return out

    async def list_with_delimiter(self, prefix: str | None = None) -> ListResult:
        """Return the objects directly under ``prefix`` and the sub-prefixes below it."""
        try:
            full = self._key_prefix(prefix)
            result = await self._list_with_delimiter(full)
            # in the order a listing has them: each with its "/" ("a/b-y/" < "a/b/")
            prefixes = sorted(result.common_prefixes, key=lambda p: p + "/")
            if not self._prefix:
                return ListResult(common_prefixes=prefixes, objects=result.objects)
            return ListResult(
                common_prefixes=[self._rel(p) for p in prefixes],
                objects=[self._rel_meta(m) for m in result.objects],
            )
        except ObjstoreError as exc:
            self._annotate(exc, "list_with_delimiter")
            raise

    async def list_versions_iter(
        self, prefix: str | None = None
    ) -> AsyncGenerator[ObjectVersion, None]:
        """Yield every version of the objects under ``prefix`` (whole segments) one by one:
        in key order and, for each key, newest first, S3's delete markers among them.

        A store or bucket that keeps no history (memory, local, an unversioned bucket) lists
        each object as it is now, as its one and latest version.
        """
        try:
            full = self._key_prefix(prefix)
            run: builtins.list[ObjectVersion] = []  # one key's versions, which pages may split
            async with contextlib.aclosing(self._list_versions(full)) as pages:
                async for page in pages:
                    for version in page:
                        if run and version.location != run[0].location:
                            for each in self._newest_first(run):
                                yield self._rel_version(each)
                            run = []
                        run.append(version)
            for each in self._newest_first(run):
                yield self._rel_version(each)
        except ObjstoreError as exc:
            self._annotate(exc, "list_versions")
            raise

    async def list_versions(self, prefix: str | None = None) -> builtins.list[ObjectVersion]:
        """Return every version of the objects under ``prefix``: see :meth:`list_versions_iter`."""
        async with contextlib.aclosing(self.list_versions_iter(prefix)) as versions:
            return [version async for version in versions]

    async def _list_versions(
        self, prefix: Path
    ) -> AsyncGenerator[builtins.list[ObjectVersion], None]:
        """Yield pages of the versions under ``prefix`` in key order (a key's in any order).
        By default, the objects as they are, each its own latest version."""
        async with contextlib.aclosing(self._list(prefix, None)) as pages:
            async for page in pages:
                yield [_as_version(meta) for meta in page]

    def _newest_first(self, versions: builtins.list[ObjectVersion]) -> Iterable[ObjectVersion]:
        """One key's versions, newest first. By default the latest, then the others in the
        order listed (S3 lists them newest first; timestamps cannot order them: SeaweedFS's
        are whole seconds)."""
        return sorted(versions, key=lambda v: not v.is_latest)

    def _rel_version(self, version: ObjectVersion) -> ObjectVersion:
        if not self._prefix:
            return version
        return replace(version, location=strip_prefix(self._prefix, version.location))

    # ---- deletes, copies, renames -----------------------------------------------------------

    async def delete(self, path: str, *, version: str | None = None) -> None:
        """Delete an object; deleting a missing object is not an error.

        With ``version`` (an id :meth:`list_versions` gives), remove that one version for
        good instead: removing an S3 delete marker brings the object back, removing the
        latest version leaves the one before it current on S3 and no current one on GCS. A
        version the object does not have is not an error either; a store that keeps no
        history removes the object only when it is that version.
        """
        try:
            key = self._key(path)
            version = _checked_text("version", version)
            if version is not None:
                await self._delete_version(key, version)
                return
            failures = await self._delete([key])
            if failures:
                raise failures[key]
        except ObjstoreError as exc:
            self._annotate(exc, "delete")
            raise

    async def _delete_version(self, key: Path, version: str) -> None:  # noqa: B027
        """Remove one version of ``key`` for good. By default nothing: a store whose objects
        carry no version (local) has none of that id."""

    async def delete_many(
        self,
        paths: Iterable[str | ObjectMeta] | AsyncIterable[str | ObjectMeta],
        *,
        max_concurrency: int = 4,
    ) -> int:
        """Delete many objects in batches; return how many paths were processed.

        Raises:
            BulkDeleteError: some deletes failed; ``.errors`` maps each path to its error.
        """
        batches: list[list[Path]] = [[]]
        try:
            _at_least("max_concurrency", max_concurrency, 1)
            async for item in _aiter(paths):
                location = item.location if isinstance(item, ObjectMeta) else item
                if len(batches[-1]) >= self.delete_batch:
                    batches.append([])
                batches[-1].append(self._key(location))
            results = await gather_bounded((self._delete(b) for b in batches if b), max_concurrency)
        except ObjstoreError as exc:
            self._annotate(exc, "delete_many")
            raise
        failures = {self._rel(k): e for r in results for k, e in r.items()}
        for error in failures.values():
            if isinstance(error, BucketNotFoundError):  # not one path's failure: every one's
                self._annotate(error, "delete_many")
                raise error
        if failures:
            raise BulkDeleteError.from_failures(failures, self._url)
        return sum(len(b) for b in batches)

    async def copy(
        self, src: str, dst: str, *, overwrite: bool = True, version: str | None = None
    ) -> None:
        """Copy an object; with ``overwrite=False`` fail if ``dst`` exists. With ``version``
        (an id :meth:`list_versions` gives), copy that version of ``src``: ``copy(p, p,
        version=v)`` makes an older version current again.

        Raises:
            NotFoundError: ``src`` is missing, or has no such version.
            AlreadyExistsError: see ``overwrite``.
        """
        try:
            source, target = self._key(src), self._key(dst)
            version = _checked_text("version", version)
            if version is not None:
                await self._copy(source, target, overwrite, version)
            elif source == target:
                await self._onto_itself(source, overwrite)
            else:
                await self._copy(source, target, overwrite)
        except ObjstoreError as exc:
            self._annotate(exc, "copy")
            raise

    async def copy_if_not_exists(self, src: str, dst: str) -> None:
        """Copy an object unless ``dst`` exists (``AlreadyExistsError``)."""
        await self.copy(src, dst, overwrite=False)

    async def rename(self, src: str, dst: str, *, overwrite: bool = True) -> None:
        """Move an object; with ``overwrite=False`` fail if ``dst`` exists."""
        try:
            source, target = self._key(src), self._key(dst)
            if source == target:
                await self._onto_itself(source, overwrite)
            else:
                await self._rename(source, target, overwrite)
        except ObjstoreError as exc:
            self._annotate(exc, "rename")
            raise

    async def rename_if_not_exists(self, src: str, dst: str) -> None:
        """Move an object unless ``dst`` exists (``AlreadyExistsError``)."""
        await self.rename(src, dst, overwrite=False)

    async def _onto_itself(self, key: Path, overwrite: bool) -> None:
        """A copy or rename of ``key`` onto itself: nothing to do once the object is found.

        Never sent to a backend: a cloud rename is a copy and a delete, and a service that
        copies an object onto itself (GCS, Azure) would then delete the only copy.
        """
        await self._head(key)
        if not overwrite:
            raise AlreadyExistsError(f"{self._rel(key)!r} already exists", path=key, status=412)

    async def sign(self, method: str, path: str, *, expires_in: float = 3600) -> str:
        """Return a pre-signed URL for ``method`` on ``path``, valid ``expires_in`` seconds.

        Raises:
            NotSupportedError: the backend has no signed URLs (memory, local).
        """
        if not self.capabilities.sign:
            raise NotSupportedError(
                f"the {self.backend} store has no signed URLs", operation="sign", store=self._url
            )
        verb = method.upper() if isinstance(method, str) else ""
        if verb not in ("GET", "PUT", "HEAD", "DELETE"):
            raise InvalidRequestError(f"cannot sign {method!r}: use GET, PUT, HEAD or DELETE")
        if not 1 <= expires_in <= 7 * 24 * 3600:
            raise InvalidRequestError(f"expires_in must be 1 s to 7 days, got {expires_in}")
        try:
            return await self._sign(self._key(path), verb, int(expires_in))
        except ObjstoreError as exc:
            self._annotate(exc, "sign")
            raise

    async def _sign(self, key: Path, method: str, expires_in: int) -> str:
        raise NotSupportedError(f"the {self.backend} store has no signed URLs")

    # ---- uploads left by writers that died -----------------------------------------------------

    async def list_incomplete(self, prefix: str | None = None) -> builtins.list[IncompleteUpload]:
        """Return the multipart writes under ``prefix`` that were begun and never completed
        or aborted: their writers died (a killed process, a lost machine).

        They hold storage but no visible object: S3 multipart uploads, Azure uncommitted
        blobs, local staging files. A store without them (``capabilities.incomplete_uploads``
        false) returns none.
        """
        out: builtins.list[IncompleteUpload] = []
        try:
            full = self._key_prefix(prefix)
            async with contextlib.aclosing(self._list_incomplete(full)) as pages:
                async for page, _ in pages:
                    out.extend(self._rel_upload(u) for u in page)
        except ObjstoreError as exc:
            self._annotate(exc, "list_incomplete")
            raise
        return out

    async def cleanup_incomplete(
        self, prefix: str | None = None, *, older_than: float | timedelta
    ) -> int:
        """Discard the incomplete uploads under ``prefix`` begun more than ``older_than``
        (seconds, or a ``timedelta``) ago by the store's clock; return how many were removed.

        An upload begun before the cutoff is removed even if its writer is still sending
        (that writer then fails with a typed error; nothing partial becomes visible), so choose
        ``older_than`` above your longest write, as S3's ``AbortIncompleteMultipartUpload``
        lifecycle rule does. Committed objects are never touched.
        """
        age = _seconds("older_than", older_than)
        removed = 0
        try:
            full = self._key_prefix(prefix)
            async with contextlib.aclosing(self._list_incomplete(full)) as pages:
                async for page, now in pages:
                    stale = [u for u in page if u.initiated.timestamp() <= now - age]
                    done = await gather_bounded(
                        [self._discard_incomplete(u) for u in stale], CLEANUP_CONCURRENCY
                    )
                    removed += sum(done)
        except ObjstoreError as exc:
            self._annotate(exc, "cleanup_incomplete")
            raise
        return removed

    async def _list_incomplete(
        self, prefix: Path
    ) -> AsyncGenerator[tuple[builtins.list[IncompleteUpload], float], None]:
        """Yield pages of the incomplete uploads under ``prefix``, each with the store's time
        (seconds since the epoch) when it was listed: ages are measured against the clock that
        dated the uploads. None by default."""
        return
        yield  # an async generator that yields nothing

    async def _discard_incomplete(self, upload: IncompleteUpload) -> bool:
        """Remove one incomplete upload; say whether it was still there to remove."""
        raise NotSupportedError(f"the {self.backend} store leaves no incomplete uploads")

    def _rel_upload(self, upload: IncompleteUpload) -> IncompleteUpload:
        if not self._prefix:
            return upload
        return replace(upload, location=self._rel(upload.location))


CLEANUP_CONCURRENCY = 8
"""Incomplete uploads discarded at once by ``cleanup_incomplete``."""


def _seconds(name: str, value: object) -> float:
    """A non-negative duration given as seconds or a ``timedelta``, checked."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise InvalidRequestError(f"{name} must be seconds or a timedelta, got {value!r}")
    if not seconds >= 0:
        raise InvalidRequestError(f"{name} must be zero or more, got {value!r}")
    return seconds


MAX_STREAM_RESUMES = 5
"""A streamed body cut short (a dropped connection) is asked for again from where it stopped,
pinned to its ETag, this many times at most."""


class ObjectStream:
    """A streamed read: an async context manager and an async iterator of chunks.

    A body cut short is resumed from where it stopped (same ETag), up to
    ``MAX_STREAM_RESUMES`` times; a changed object raises ``ConcurrentModificationError``.
    """

    def __init__(
        self,
        store: ObjectStore,
        key: Path,
        options: GetOptions,
        chunk_size: int,
        progress: ProgressCallback | None,
    ) -> None:
        self._store = store
        self._key = key
        self._options = options
        self._chunk_size = chunk_size
        self._progress = progress
        self._response: GetResponse | None = None
        self._closed = False

    @property
    def meta(self) -> ObjectMeta:
        """The object's metadata (after the stream opened)."""
        return self._store._rel_meta(self._opened().meta)

    @property
    def attributes(self) -> dict[str, str]:
        """The object's attributes (after the stream opened)."""
        return self._opened().attributes

    @property
    def range(self) -> tuple[int, int]:
        """The bytes ``[start, end)`` being streamed (after the stream opened)."""
        return self._opened().range

    def _opened(self) -> GetResponse:
        if self._response is None:
            raise InvalidRequestError("the stream is not open yet: use 'async with'")
        return self._response

    async def open(self) -> ObjectStream:
        """Send the request (done by ``async with`` and iteration)."""
        if self._response is None:
            try:
                self._response = await self._store._get(self._key, self._options)
            except ObjstoreError as exc:
                self._store._annotate(exc, "stream")
                raise
        return self

    async def __aiter__(self) -> AsyncIterator[bytes]:
        await self.open()
        response = self._opened()
        if response.body is None:
            return
        start, end = response.range
        done, resumes = 0, 0
        checksum = response.checksum  # the whole object's, through resumes too
        try:
            while True:
                body = response.body
                assert body is not None
                try:
                    async for chunk in body.chunks(self._chunk_size):
                        done += len(chunk)
                        if checksum is not None:
                            checksum.update(chunk)
                        if self._progress is not None:
                            self._progress(done, end - start)
                        yield chunk
                        del chunk
                    break
                except TransientError:
                    if done >= end - start or resumes >= MAX_STREAM_RESUMES:
                        raise
                    resumes += 1
                    await body.aclose()
                    response = await self._resume(start + done, end, response.meta.e_tag)
        finally:
            await self.aclose()
        if checksum is not None and not checksum.matches():
            error = ChecksumMismatchError(
                f"the streamed body of {self._key!r} does not match the object's "
                f"{checksum.algorithm} checksum (corrupted in transfer; the chunks given "
                "out were wrong)",
                path=str(self._key),
            )
            self._store._annotate(error, "stream")
            raise error

    async def _resume(self, start: int, end: int, e_tag: str | None) -> GetResponse:
        """Ask for the rest of a body cut short, pinned to the version being read."""
        import asyncio

        options = GetOptions(range=ByteRange(start, end), if_match=e_tag,
                             version=self._options.version)  # fmt: skip
        await asyncio.sleep(0.05)
        try:
            self._response = await self._store._get(self._key, options)
        except PreconditionFailedError as exc:
            raise ConcurrentModificationError(
                f"{self._key!r} changed while it was being streamed",
                path=str(self._key),
                operation="stream",
            ) from exc
        return self._response

    async def read_all(self) -> bytes:
        """Return the rest of the payload."""
        return b"".join([chunk async for chunk in self])

    async def aclose(self) -> None:
        """Release the connection or file."""
        if not self._closed and self._response is not None and self._response.body is not None:
            self._closed = True
            await self._response.body.aclose()

    async def __aenter__(self) -> ObjectStream:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _as_version(meta: ObjectMeta) -> ObjectVersion:
    """An object as it is now, as its one and latest version."""
    return ObjectVersion(
        location=meta.location,
        version=meta.version,
        last_modified=meta.last_modified,
        size=meta.size,
        e_tag=meta.e_tag,
    )


async def lists_version(
    pages: AsyncGenerator[list[ObjectVersion], None],
    key: str,
    version: str,
    unnamed: str | None = None,
) -> bool:
    """Whether a version listing of the keys starting with ``key`` (in key order) shows
    ``key``'s version ``version``; a version listed as ``None`` is named ``unnamed`` (S3's
    ``null``), or none."""
    async with contextlib.aclosing(pages):
        async for page in pages:
            for listed in page:
                if listed.location > key:  # past it
                    return False
                named = unnamed if listed.version is None else listed.version
                if listed.location == key and named == version:
                    return True
    return False


async def has_objects_under(store: ObjectStore, prefix: str) -> bool:
    """Say whether any object lies under ``prefix`` (whole segments), from one listing page.

    What makes ``prefix`` a directory for the pyarrow and fsspec adapters.
    """
    async with contextlib.aclosing(store.list_pages(prefix)) as pages:
        async for page in pages:
            if page:
                return True
    return False


async def _read_body(response: GetResponse) -> bytes:
    if response.body is None:
        return b""
    try:
        return await response.body.read_all()
    finally:
        await response.body.aclose()


def _get_options(
    range_: RangeRequest | None,
    *,
    if_match: str | None,
    if_none_match: str | None,
    if_modified_since: datetime | None,
    if_unmodified_since: datetime | None,
    version: str | None,
) -> GetOptions:
    if range_ is not None and not isinstance(range_, ByteRange | OffsetRange | SuffixRange):
        raise InvalidRangeError(
            f"range must be ByteRange, OffsetRange or SuffixRange, not {type(range_).__name__}"
        )
    for name, value in (
        ("if_modified_since", if_modified_since),
        ("if_unmodified_since", if_unmodified_since),
    ):
        if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
            raise InvalidRequestError(f"{name} must be a timezone-aware datetime")
    for name, text in (("if_match", if_match), ("if_none_match", if_none_match),
                       ("version", version)):  # fmt: skip
        _checked_text(name, text)
    if (range_, if_match, if_none_match, if_modified_since, if_unmodified_since, version) == (
        None,
        None,
        None,
        None,
        None,
        None,
    ):
        return DEFAULT_GET
    return GetOptions(
        range=range_,
        if_match=if_match,
        if_none_match=if_none_match,
        if_modified_since=if_modified_since,
        if_unmodified_since=if_unmodified_since,
        version=version,
    )


def _range_request(start: int, end: int | None, length: int | None) -> ByteRange | OffsetRange:
    if end is not None and length is not None:
        raise InvalidRangeError("give end or length, not both")
    start = _offset("start", start)
    end = None if end is None else _offset("end", end)
    length = None if length is None else _offset("length", length)
    if length is not None:
        if length < 0:
            raise InvalidRangeError(f"invalid length {length}")
        return ByteRange(start, start + length)
    if end is None:
        return OffsetRange(start)
    return ByteRange(start, end)


def _at_least(name: str, value: object, minimum: int) -> int:
    """A tuning argument checked: an ``int`` (not ``bool``) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidRequestError(f"{name} must be an int of at least {minimum}, got {value!r}")
    return value


def _tuning(part_size: object, max_concurrency: object) -> None:
    """Check a write's ``part_size`` and ``max_concurrency`` (``None``: the store's own)."""
    if part_size is not None:
        _at_least("part_size", part_size, 1)
    if max_concurrency is not None:
        _at_least("max_concurrency", max_concurrency, 1)


def _offset(name: str, value: object) -> int:
    """``value`` as an int: ``int`` and integer types like NumPy's (``__index__``), not
    ``bool`` or ``float``."""
    if isinstance(value, bool):
        raise InvalidRangeError(f"{name} must be an int, not bool")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise InvalidRangeError(f"{name} must be an int, not {type(value).__name__}") from None


def _pair(each: object) -> tuple[int, int]:
    """One ``(start, end)`` of ``get_ranges``, checked."""
    try:
        start, end = cast("tuple[int, int]", each)
    except (TypeError, ValueError):
        raise InvalidRangeError(f"ranges are (start, end) pairs, not {each!r}") from None
    bounded = _range_request(start, end, None)
    if not isinstance(bounded, ByteRange):  # an end of None
        raise InvalidRangeError(f"ranges are (start, end) pairs, not {each!r}")
    return bounded.start, bounded.end


async def _aiter(items: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


async def _memory_chunks(data: bytes | bytearray | memoryview, size: int) -> AsyncIterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(view), size):
        yield bytes(view[start : start + size])


def _read_file(source: os.PathLike[str], size: int) -> bytes:
    """The first ``size`` bytes of a file (as long as it was when its upload began)."""
    with open(source, "rb") as handle:
        data = handle.read(size)
    if len(data) < size:
        raise source_shrank(source, size, len(data))
    return data


async def _file_chunks(handle: Any, size: int) -> AsyncIterator[bytes]:
    import inspect

    read = handle.read
    is_async = inspect.iscoroutinefunction(read)
    while True:
        chunk = await read(size) if is_async else await offload(read, size)
        if not chunk:
            return
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise InvalidRequestError(
                f"the file object returned {type(chunk).__name__}: open it in binary mode"
            )
        yield bytes(chunk)


def source_file_error(exc: OSError, source: os.PathLike[str] | str, key: str) -> ObjstoreError:
    """The error for a local file to upload that cannot be read: a missing one is
    ``NotFoundError`` (a ``FileNotFoundError`` too), a directory ``InvalidRequestError``, any
    other ``PermissionDeniedError``."""
    if isinstance(exc, IsADirectoryError):
        return InvalidRequestError(f"cannot upload {os.fspath(source)!r}: not a regular file")
    reason = exc.strerror or type(exc).__name__
    cls = NotFoundError if isinstance(exc, FileNotFoundError) else PermissionDeniedError
    return cls(f"cannot read source file {os.fspath(source)!r}: {reason}", path=key)


def source_shrank(source: os.PathLike[str] | str, size: int, read: int) -> IntegrityError:
    """The error for a local file that ended before the size it had when its upload began."""
    return IntegrityError(
        f"{os.fspath(source)!r} shrank while it was uploaded: {size} bytes when the upload "
        f"began, {read} read"
    )


async def _file_part_chunks(
    handle: Any, part: int, size: int, source: os.PathLike[str]
) -> AsyncIterator[bytes]:
    """The first ``size`` bytes of a local file, ``part`` at a time: the file as long as it
    was when its upload began (bytes appended meanwhile are left out).

    Raises:
        IntegrityError: the file shrank before ``size`` bytes were read (nothing is written).
    """
    done = 0
    while done < size:
        chunk = await offload(handle.read, min(part, size - done))
        if not chunk:
            raise source_shrank(source, size, done)
        done += len(chunk)
        yield chunk


async def _as_chunks(data: Any) -> AsyncIterator[bytes]:
    if hasattr(data, "read"):
        async for chunk in _file_chunks(data, MiB):
            yield chunk
        return
    if not isinstance(data, Iterable | AsyncIterable):
        raise InvalidRequestError(
            f"cannot write {type(data).__name__}: give bytes, a pathlib.Path, a binary file "
            "or an iterable of bytes"
        )
    async for chunk in _aiter(data):
        if type(chunk) is bytes:
            yield chunk
            continue
        view = byte_view(chunk)
        if view is None:
            raise InvalidRequestError(f"chunks must be bytes, not {type(chunk).__name__}")
        yield bytes(view)


_ONE_E_TAG = re.compile(r'"[^"]*"|[^",\s]+')
"""An ETag as ``head()`` and ``put()`` give it: quoted, or a bare token."""


def _checked_text(name: str, text: object) -> str | None:
    """An ETag condition or version id ``name`` as a call gives it (``None``: none).

    Raises:
        InvalidRequestError: not ``str``, or empty (a server may take it as no condition).
    """
    if text is None:
        return None
    if not isinstance(text, str):
        raise InvalidRequestError(f"{name} must be a str, not {type(text).__name__}")
    if not text.strip():
        wanted = "a version id" if name == "version" else "an ETag"
        raise InvalidRequestError(f"{name} is empty: give {wanted}, or None")
    return text


def _head_of(version: object) -> GetOptions:
    """The options of a HEAD of the object, or of its ``version`` (checked)."""
    return GetOptions(head=True, version=_checked_text("version", version))


def _one_version(mode: UpdateVersion) -> UpdateVersion:
    """``mode`` naming exactly one version: its ETag trimmed and made strong (every backend
    then answers alike: S3 took an empty one as no condition, GCS and Azure refused a padded
    one, S3, GCS and Azure a weak one).

    Raises:
        InvalidRequestError: no ETag and no version, or an ETag that is not one (empty, a
            list, ``*``), or not ``str``.
    """
    for name, value in (("e_tag", mode.e_tag), ("version", mode.version)):
        if value is not None and not isinstance(value, str):
            raise InvalidRequestError(
                f"UpdateVersion {name} must be a str, not {type(value).__name__}"
            )
    if mode.e_tag is None:
        if mode.version is None:
            raise InvalidRequestError(  # else an "update" would overwrite whatever is there
                "UpdateVersion() names no version: give the e_tag (and version) that "
                "head() or put() returned"
            )
        return mode
    e_tag = mode.e_tag.strip().removeprefix("W/")
    if e_tag == "*" or not _ONE_E_TAG.fullmatch(e_tag):
        raise InvalidRequestError(
            f"UpdateVersion(e_tag={mode.e_tag!r}) names no one version: give the ETag that "
            "head() or put() returned (use mode='overwrite' to replace whatever is there)"
        )
    return mode if e_tag == mode.e_tag else replace(mode, e_tag=e_tag)


def _unpickled(url: str, options: dict[str, Any], dropped: tuple[str, ...]) -> ObjectStore:
    """Rebuild a pickled store; ``dropped`` names the secrets it was sent without."""
    from objstore._registry import from_url

    store = from_url(url, options)
    store._dropped_secrets = dropped
    return store
