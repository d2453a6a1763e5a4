"""The local store: keys map 1:1 to files under a root directory.

Guarantees:

- Containment: every file and directory opened is checked, through the descriptor actually
  opened (``/proc/self/fd``), to lie under the root; directories are created one level at a
  time relative to verified descriptors, so no read, write, list or delete leaves the root,
  symbolic links included (:class:`SymlinkEscapeError`).
- Atomic writes: a write goes to a staging file beside the target and is committed with
  ``rename`` (overwrite), ``link`` (create: exactly one racer wins) or ``rename`` under an
  ``flock`` of the current file (update by ETag). Readers see the old or the new content,
  never a torn file. Staging names begin with ``\\x01``, which no valid key can contain, so
  they never appear in listings.
- Attributes and tags live in extended attributes of the file, written before the commit.
- File I/O runs in worker threads (or inline under the blocking facade).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import secrets
import stat as stat_mod
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import SplitResult, unquote

from objstore._config import COMMON_KEYS, ConfigKey, ConfigTable, parse_bool
from objstore._errors import (
    AlreadyExistsError,
    InsufficientStorageError,
    IntegrityError,
    InvalidPathError,
    InvalidURLError,
    KeyConflictError,
    NotFoundError,
    NotSupportedError,
    ObjstoreError,
    PermissionDeniedError,
    SymlinkEscapeError,
)
from objstore._inline import offload
from objstore._multipart import MultipartUpload
from objstore._path import Path, prefix_in_url
from objstore._store import Capabilities, ObjectStore, source_file_error
from objstore._types import (
    BytesBody,
    GetOptions,
    GetResponse,
    IncompleteUpload,
    ObjectMeta,
    PutOptions,
    PutResult,
    UpdateVersion,
    make_meta,
    make_put_result,
    resolve_range,
)
from objstore.backends._conditions import (
    check_read_conditions,
    check_write_mode,
    etag_matches,
    missing_version,
    update_refused,
)
from objstore.backends._openat2 import open_without_links

__all__ = ["LocalStore"]

STAGING_MARK = "\x01objstore-"
NAME_MAX = 255
"""Bytes in a file name (Linux filesystems)."""
SHORT_NAME = 50
"""Characters of a name that fit beside a staging prefix (< 50 bytes) however encoded."""
ATTRS_XATTR = "user.objstore.attributes"
TAGS_XATTR = "user.objstore.tags"
INLINE_READ = 8 * 1024 * 1024
PAGE = 1000
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK
_PROC_FD = os.path.isdir("/proc/self/fd")

_TABLE = ConfigTable(
    "local",
    (
        *COMMON_KEYS,
        ConfigKey(
            "fsync",
            aliases=("local_fsync",),
            parse=parse_bool,
            default=False,
            doc="fsync each file and its directory before a write returns.",
        ),
        ConfigKey(
            "automatic_cleanup",
            aliases=("local_automatic_cleanup",),
            parse=parse_bool,
            default=True,
            doc="Remove directories a delete or rename leaves empty.",
        ),
    ),
)


def translate_os_error(exc: OSError, key: str, *, writing: bool = False) -> ObjstoreError:
    """Map an ``OSError`` to the objstore error for ``key`` (the one translation point)."""
    if isinstance(exc, ObjstoreError):
        return exc
    code = exc.errno
    reason = exc.strerror or type(exc).__name__
    if code in (errno.ENOENT, errno.ENOTDIR) and not writing:
        return NotFoundError(f"object {key!r} not found", path=key)
    if code == errno.EISDIR:
        if writing:
            return KeyConflictError(f"{key!r} is a prefix of other objects", path=key)
        return NotFoundError(f"object {key!r} not found (it is a prefix)", path=key)
    if code in (errno.ENOTDIR, errno.EEXIST) and writing:
        return KeyConflictError(f"a prefix of {key!r} is an object", path=key)
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PermissionDeniedError(f"permission denied for {key!r}: {reason}", path=key)
    if code in (errno.ENOSPC, errno.EDQUOT):
        return InsufficientStorageError(f"no space left to write {key!r}", path=key)
    if code == errno.ENAMETOOLONG:
        return InvalidPathError(f"invalid path {key!r}: a segment is too long here", path=key)
    if code == errno.ELOOP:
        return SymlinkEscapeError(f"{key!r} goes through a symbolic link loop", path=key)
    if code in (errno.ENOTSUP, errno.EOPNOTSUPP):
        return NotSupportedError(f"the filesystem cannot do this for {key!r}: {reason}", path=key)
    return ObjstoreError(f"I/O error on {key!r}: {reason}", path=key)


def _e_tag(st: os.stat_result) -> str:
    return f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"


def _meta(key: str, st: os.stat_result) -> ObjectMeta:
    modified = datetime.fromtimestamp(st.st_mtime_ns / 1e9, UTC)
    return make_meta(key, st.st_size, modified, _e_tag(st), None)


def _read_json_xattr(fd: int, name: str) -> dict[str, str]:
    try:
        return dict(json.loads(os.getxattr(fd, name)))
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        raise


def _pread_all(fd: int, start: int, end: int) -> bytes:
    if end <= start:
        return b""
    data = os.pread(fd, end - start, start)
    if len(data) == end - start:
        return data
    parts = [data]
    pos = start + len(data)
    while pos < end:
        chunk = os.pread(fd, end - pos, pos)
        if not chunk:
            break
        parts.append(chunk)
        pos += len(chunk)
    return b"".join(parts)


def _write_all(fd: int, data: bytes | memoryview, offset: int | None = None) -> None:
    view = memoryview(data)
    pos = 0
    while pos < len(view):
        if offset is None:
            pos += os.write(fd, view[pos:])
        else:
            pos += os.pwrite(fd, view[pos:], offset + pos)


class _FileBody:
    """A byte range of an open file, read in chunks in worker threads."""

    def __init__(self, fd: int, start: int, end: int) -> None:
        self._fd = fd
        self._start = start
        self._end = end

    async def chunks(self, chunk_size: int) -> AsyncIterator[bytes]:
        pos = self._start
        while pos < self._end and self._fd >= 0:
            chunk = await offload(_pread_all, self._fd, pos, min(self._end, pos + chunk_size))
            if not chunk:
                return
            pos += len(chunk)
            yield chunk
            del chunk

    async def read_all(self) -> bytes:
        return await offload(_pread_all, self._fd, self._start, self._end)

    async def aclose(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)


class LocalStore(ObjectStore):
    """Objects as files under ``root`` (``file:///abs/dir`` or a plain path).

    Options: ``fsync`` (durable writes), ``automatic_cleanup`` (remove emptied directories).
    """

    backend: ClassVar[str] = "local"
    config_table: ClassVar[ConfigTable] = _TABLE
    capabilities: Capabilities = Capabilities(object_and_prefix=False, incomplete_uploads=True)
    inline_capable: ClassVar[bool] = True
    single_put_limit: ClassVar[int] = 1 << 62
    part_concurrency: ClassVar[int] = 1

    def __init__(
        self, root: str | os.PathLike[str], options: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        config = self.config_table.resolve({**(options or {}), **kwargs})
        path = os.fspath(root)
        if not path:
            raise InvalidURLError("the local store needs a root directory")
        self._root = os.path.abspath(path)
        # its URL reads back as this root: what a URL would read differently is escaped
        super().__init__(url="file://" + prefix_in_url(self._root), config=config)
        self._fsync: bool = config["fsync"]
        self._cleanup: bool = config["automatic_cleanup"]
        self._real_root = os.path.realpath(self._root)
        self._root_without_links = self._real_root == self._root

    @classmethod
    def _from_url(
        cls, url: SplitResult, options: Mapping[str, Any] | None, environ: Mapping[str, str]
    ) -> LocalStore:
        if url.scheme == "":
            return cls(url.path, options)
        if url.netloc not in ("", "localhost"):
            raise InvalidURLError(
                f"file URLs need an absolute path (file:///dir), got host {url.netloc!r}"
            )
        if not url.path.startswith("/"):
            raise InvalidURLError("file URLs need an absolute path, as in file:///dir")
        return cls(unquote(url.path), options)

    @property
    def root(self) -> str:
        """The absolute root directory."""
        return self._root

    def __reduce__(self) -> tuple[Any, ...]:
        return (LocalStore, (self._root, self.config.explicit_options(with_secrets=False)))

    # ---- containment ----------------------------------------------------------------------

    def _fs(self, key: str) -> str:
        return f"{self._root}/{key}" if key else self._root

    def _inside(self, real: str) -> bool:
        root = self._real_root
        return real == root or real.startswith(root + "/")

    def _verify(self, fd: int, key: str) -> None:
        real = os.readlink(f"/proc/self/fd/{fd}") if _PROC_FD else os.path.realpath(self._fs(key))
        if self._inside(real):
            return
        refreshed = os.path.realpath(self._root)
        if refreshed != self._real_root:
            self._real_root = refreshed
            self._root_without_links = refreshed == self._root
            if self._inside(real):
                return
        os.close(fd)
        raise SymlinkEscapeError(f"{key!r} resolves outside the store's root", path=key)

    def _open_inside(self, key: str, flags: int) -> int:
        """Open what ``key`` (a file, or a directory when it is a parent) names, proven inside.

        One ``openat2(RESOLVE_NO_SYMLINKS)`` when the root has no links: validated segments
        with no link among them cannot leave the root. Else, or when a link is on the way,
        open and check the descriptor's real path.
        """
        path = self._fs(key)
        if self._root_without_links:
            fd = open_without_links(path, flags)
            if fd is not None:
                return fd
        fd = os.open(path, flags)
        self._verify(fd, key)
        return fd

    def _open_file(self, key: str) -> tuple[int, os.stat_result]:
        fd = self._open_inside(key, _READ_FLAGS)
        st = os.fstat(fd)
        if not stat_mod.S_ISREG(st.st_mode):
            os.close(fd)
            raise NotFoundError(f"object {key!r} not found (not a regular file)", path=key)
        return fd, st

    def _open_dir(self, key: str, *, create: bool) -> int:
        """Open the directory that holds ``key``, creating it inside the root if asked."""
        parent = key.rpartition("/")[0]
        try:
            return self._open_inside(parent, _DIR_FLAGS)
        except FileNotFoundError:
            if not create:
                raise
            return self._make_dirs(parent, key)
        except NotADirectoryError:
            raise KeyConflictError(f"a prefix of {key!r} is an object", path=key) from None

    def _make_dirs(self, parent: str, key: str) -> int:
        os.makedirs(self._root, exist_ok=True)
        fd = os.open(self._root, _DIR_FLAGS)
        self._verify(fd, key)
        for segment in parent.split("/") if parent else ():
            try:
                os.mkdir(segment, dir_fd=fd)
            except FileExistsError:
                pass
            except OSError:
                os.close(fd)
                raise
            try:
                child = os.open(segment, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    os.close(fd)
                    raise
                try:
                    child = os.open(segment, _DIR_FLAGS, dir_fd=fd)
                except NotADirectoryError:
                    os.close(fd)
                    raise KeyConflictError(f"a prefix of {key!r} is an object", path=key) from None
                self._verify(child, key)
            os.close(fd)
            fd = child
        return fd

    # ---- reads ----------------------------------------------------------------------------

    def _read_sync(self, key: Path, options: GetOptions, attributes: bool) -> GetResponse:
        try:
            fd, st = self._open_file(key)
        except OSError as exc:
            raise translate_os_error(exc, key) from None
        keep_open = False
        try:
            meta = _meta(key, st)
            check_read_conditions(meta, options)
            attrs = _read_json_xattr(fd, ATTRS_XATTR) if attributes else {}
            size = st.st_size
            if options.head:
                return GetResponse(meta=meta, range=(0, size), attributes=attrs, body=None)
            start, end = (0, size) if options.range is None else resolve_range(options.range, size)
            if end - start <= INLINE_READ:
                data = _pread_all(fd, start, end)
                return GetResponse(
                    meta=meta,
                    range=(start, len(data) + start),
                    attributes=attrs,
                    body=BytesBody(data),
                )
            keep_open = True
            return GetResponse(
                meta=meta, range=(start, end), attributes=attrs, body=_FileBody(fd, start, end)
            )
        except OSError as exc:
            raise translate_os_error(exc, key) from None
        finally:
            if not keep_open:
                os.close(fd)

    def _get_bytes_sync(self, key: Path) -> bytes:
        try:
            fd, st = self._open_file(key)
            try:
                return _pread_all(fd, 0, st.st_size)
            finally:
                os.close(fd)
        except OSError as exc:
            raise translate_os_error(exc, key) from None

    def _head_sync(self, key: Path) -> ObjectMeta:
        try:
            fd, st = self._open_file(key)
        except OSError as exc:
            raise translate_os_error(exc, key) from None
        os.close(fd)
        return _meta(key, st)

    async def _get(self, key: Path, options: GetOptions) -> GetResponse:
        return await offload(self._read_sync, key, options, True)

    async def _get_bytes(self, key: Path) -> bytes:
        return await offload(self._get_bytes_sync, key)

    async def _head(self, key: Path) -> ObjectMeta:
        return await offload(self._head_sync, key)

    def _get_tags_sync(self, key: Path) -> dict[str, str]:
        try:
            fd, _ = self._open_file(key)
            try:
                return _read_json_xattr(fd, TAGS_XATTR)
            finally:
                os.close(fd)
        except OSError as exc:
            raise translate_os_error(exc, key) from None

    async def _get_tags(self, key: Path, version: str | None = None) -> dict[str, str]:
        return await offload(self._get_tags_sync, key)

    # ---- listing --------------------------------------------------------------------------

    def _listed_directory(self, prefix: str) -> str | None:
        """The directory a listing of ``prefix`` walks, proven inside the root (``None``:
        there is none)."""
        directory = self._fs(prefix)
        try:
            fd = os.open(directory, _DIR_FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise translate_os_error(exc, prefix) from None
        self._verify(fd, prefix or ".")
        os.close(fd)
        return directory

    def _walk(self, prefix: str, offset: str | None) -> Generator[ObjectMeta, None, None]:
        directory = self._listed_directory(prefix)
        if directory is not None:
            yield from self._walk_dir(directory, prefix, offset)

    def _walk_dir(
        self, directory: str, key_prefix: str, offset: str | None
    ) -> Iterator[ObjectMeta]:
        try:
            with os.scandir(directory) as entries:
                listed = list(entries)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise translate_os_error(exc, key_prefix) from None
        items: list[tuple[str, str, os.DirEntry[str], bool]] = []
        for entry in listed:
            name = entry.name
            if not name.isprintable() and _has_control(name):
                continue
            try:
                name.encode("utf-8")
                is_dir = entry.is_dir()
            except (UnicodeEncodeError, OSError):
                continue
            key = f"{key_prefix}/{name}" if key_prefix else name
            items.append((key + "/" if is_dir else key, key, entry, is_dir))
        items.sort(key=lambda item: item[0])
        for sort_key, key, entry, is_dir in items:
            skipped = offset is not None and sort_key <= offset
            if skipped and (not is_dir or not offset.startswith(sort_key)):  # type: ignore[union-attr]
                continue
            if entry.is_symlink() and not self._inside(os.path.realpath(entry.path)):
                continue
            if is_dir:
                yield from self._walk_dir(entry.path, key, offset)
                continue
            try:
                st = entry.stat()
            except OSError:
                continue
            if stat_mod.S_ISREG(st.st_mode):
                yield _meta(key, st)

    async def _list(
        self, prefix: Path, offset: Path | None
    ) -> AsyncGenerator[list[ObjectMeta], None]:
        walker = self._walk(prefix, offset)
        try:
            while True:
                page = await offload(_take, walker, PAGE)
                if page:
                    yield page
                if len(page) < PAGE:
                    return
        finally:
            walker.close()

    # ---- writes ---------------------------------------------------------------------------

    def _stage(self, key: Path, options: PutOptions) -> _Staged:
        return _Staged(self, key, options)

    def _put_sync(self, key: Path, data: bytes, options: PutOptions) -> PutResult:
        staged = self._stage(key, options)
        try:
            staged.write(data)
            return staged.commit()
        finally:
            staged.discard()

    async def _put(self, key: Path, data: bytes, options: PutOptions) -> PutResult:
        return await offload(self._put_sync, key, data, options)

    def _put_file_sync(self, key: Path, source: str, options: PutOptions) -> PutResult:
        try:
            handle = open(source, "rb")  # noqa: SIM115
        except OSError as exc:
            raise source_file_error(exc, source, key) from None
        with handle:
            staged = self._stage(key, options)
            try:
                staged.copy_from(handle.fileno(), os.fstat(handle.fileno()).st_size)
                return staged.commit()
            finally:
                staged.discard()

    async def _put_file(
        self, key: Path, source: Any, options: PutOptions, writer_args: dict[str, Any]
    ) -> PutResult:
        result = await offload(self._put_file_sync, key, os.fspath(source), options)
        progress = writer_args.get("progress")
        if progress is not None:
            size = os.stat(source).st_size
            progress(size, size)
        return result

    def _copy_sync(self, src: Path, dst: Path, overwrite: bool) -> None:
        try:
            fd, st = self._open_file(src)
        except OSError as exc:
            raise translate_os_error(exc, src) from None
        try:
            attrs = _read_json_xattr(fd, ATTRS_XATTR)
            tags = _read_json_xattr(fd, TAGS_XATTR)
            staged = self._stage(
                dst,
                PutOptions(
                    mode="overwrite" if overwrite else "create", attributes=attrs, tags=tags
                ),
            )
            try:
                staged.copy_from(fd, st.st_size)
                staged.commit()
            finally:
                staged.discard()
        except OSError as exc:
            raise translate_os_error(exc, dst, writing=True) from None
        finally:
            os.close(fd)

    async def _copy(
        self, src: Path, dst: Path, overwrite: bool, version: str | None = None
    ) -> None:
        if version is not None:  # files carry no versions
            raise missing_version(src, version)
        await offload(self._copy_sync, src, dst, overwrite)

    def _rename_sync(self, src: Path, dst: Path, overwrite: bool) -> None:
        try:
            src_dir = self._open_dir(src, create=False)
        except OSError as exc:
            raise translate_os_error(exc, src) from None
        try:
            src_name = src.rpartition("/")[2]
            st = os.stat(src_name, dir_fd=src_dir, follow_symlinks=False)
            if not stat_mod.S_ISREG(st.st_mode):
                raise NotFoundError(f"object {src!r} not found", path=src)
            dst_dir = self._open_dir(dst, create=True)
            try:
                dst_name = dst.rpartition("/")[2]
                if overwrite:
                    os.replace(src_name, dst_name, src_dir_fd=src_dir, dst_dir_fd=dst_dir)
                else:
                    try:
                        os.link(
                            src_name,
                            dst_name,
                            src_dir_fd=src_dir,
                            dst_dir_fd=dst_dir,
                            follow_symlinks=False,
                        )
                    except FileExistsError:
                        raise AlreadyExistsError(f"{dst!r} already exists", path=dst) from None
                    if src != dst:
                        os.unlink(src_name, dir_fd=src_dir)
                if self._fsync:
                    os.fsync(dst_dir)
            finally:
                os.close(dst_dir)
        except FileNotFoundError as exc:
            raise translate_os_error(exc, src) from None
        except OSError as exc:
            raise translate_os_error(exc, dst, writing=True) from None
        finally:
            os.close(src_dir)
        self._remove_empty_parents(src)

    async def _rename(self, src: Path, dst: Path, overwrite: bool) -> None:
        await offload(self._rename_sync, src, dst, overwrite)

    def _delete_sync(self, keys: Sequence[Path]) -> dict[Path, ObjstoreError]:
        failures: dict[Path, ObjstoreError] = {}
        for key in keys:
            try:
                fd = self._open_dir(key, create=False)
            except (FileNotFoundError, NotADirectoryError, KeyConflictError):
                continue
            except ObjstoreError as exc:
                failures[key] = exc
                continue
            except OSError as exc:
                failures[key] = translate_os_error(exc, key)
                continue
            try:
                os.unlink(key.rpartition("/")[2], dir_fd=fd)
            except (FileNotFoundError, IsADirectoryError):
                continue
            except OSError as exc:
                if exc.errno == errno.EPERM and os.path.isdir(self._fs(key)):
                    continue
                failures[key] = translate_os_error(exc, key)
                continue
            finally:
                os.close(fd)
            self._remove_empty_parents(key)
        return failures

    async def _delete(self, keys: Sequence[Path]) -> dict[Path, ObjstoreError]:
        return await offload(self._delete_sync, keys)

    def _remove_empty_parents(self, key: str) -> None:
        if not self._cleanup:
            return
        parent = key.rpartition("/")[0]
        while parent:
            try:
                os.rmdir(self._fs(parent))
            except OSError:
                return
            parent = parent.rpartition("/")[0]

    async def _create_multipart(self, key: Path, options: PutOptions) -> MultipartUpload:
        return _LocalUpload(await offload(self._stage, key, options))

    # ---- staging files left by writers that died --------------------------------------------

    def _staging_under(self, prefix: str) -> list[IncompleteUpload]:
        """The staging files in ``prefix``'s directory and below (links are not followed)."""
        directory = self._listed_directory(prefix)
        if directory is None:
            return []
        found: list[IncompleteUpload] = []
        for current, _, files in os.walk(directory):
            directory_key = current[len(self._root) + 1 :]
            for name in files:
                if not name.startswith(STAGING_MARK):
                    continue
                target = _staged_target(name)
                location = "/".join(p for p in (directory_key, target) if p)
                with contextlib.suppress(OSError):  # gone since it was listed
                    st = os.lstat(os.path.join(current, name))
                    found.append(IncompleteUpload(
                        location=location, upload_id=name,
                        initiated=datetime.fromtimestamp(st.st_mtime, UTC),
                    ))  # fmt: skip
        return found

    async def _list_incomplete(
        self, prefix: Path
    ) -> AsyncGenerator[tuple[list[IncompleteUpload], float], None]:
        found = await offload(self._staging_under, prefix)
        yield found, time.time()

    def _discard_staging(self, upload: IncompleteUpload) -> bool:
        name, location = upload.upload_id, upload.location
        target = _staged_target(name)
        directory, _, last = location.rpartition("/") if target else (location, "", "")
        if not name.startswith(STAGING_MARK) or "/" in name or last != target:
            raise NotFoundError(f"{name!r} is not a staging file of {location!r}", path=location)
        try:
            fd = self._open_dir(f"{directory}/{name}".lstrip("/"), create=False)
        except (FileNotFoundError, NotADirectoryError):
            return False
        try:
            os.unlink(name, dir_fd=fd)
        except FileNotFoundError:
            return False
        finally:
            os.close(fd)
        return True

    async def _discard_incomplete(self, upload: IncompleteUpload) -> bool:
        return await offload(self._discard_staging, upload)

    def sweep_staging(self, older_than: float = 3600.0) -> int:
        """Remove staging files last written more than ``older_than`` seconds ago anywhere
        under the root; return how many. Blocking: ``cleanup_incomplete`` is the coroutine."""
        cutoff = time.time() - older_than
        stale = [u for u in self._staging_under("") if u.initiated.timestamp() < cutoff]
        return sum(self._discard_staging(u) for u in stale)


class _Staged:
    """A staging file beside its target, committed by rename or link, or discarded."""

    def __init__(self, store: LocalStore, key: Path, options: PutOptions) -> None:
        self.store = store
        self.key = key
        self.options = options
        self.name = key.rpartition("/")[2]
        self.staging = _staging_name(self.name)
        self.fd = -1
        self.dir_fd = -1
        try:
            self.dir_fd = store._open_dir(key, create=True)
            self.fd = os.open(
                self.staging,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                0o666,
                dir_fd=self.dir_fd,
            )
            if options.attributes:
                os.setxattr(self.fd, ATTRS_XATTR, json.dumps(options.attributes).encode())
            if options.tags:
                os.setxattr(self.fd, TAGS_XATTR, json.dumps(options.tags).encode())
        except OSError as exc:
            self.discard()
            raise translate_os_error(exc, key, writing=True) from None
        except BaseException:
            self.discard()
            raise

    def write(self, data: bytes, offset: int | None = None) -> None:
        """Write ``data`` to the staging file (at ``offset``, or where the last write ended)."""
        try:
            _write_all(self.fd, data, offset)
        except OSError as exc:
            raise translate_os_error(exc, self.key, writing=True) from None

    def copy_from(self, source_fd: int, size: int) -> None:
        """Fill the staging file with ``size`` bytes of another file, in the kernel."""
        try:
            copied = _copy_fd(source_fd, self.fd, size)
        except OSError as exc:
            raise translate_os_error(exc, self.key, writing=True) from None
        if copied < size:
            raise IntegrityError(
                f"the source of {self.key!r} shrank while it was copied: {size} bytes when "
                f"the copy began, {copied} there",
                path=self.key,
            )

    def commit(self) -> PutResult:
        """Make the staged file the object, as the write mode allows."""
        key, mode = self.key, self.options.mode
        try:
            if self.store._fsync:
                os.fsync(self.fd)
            st = os.fstat(self.fd)
            os.close(self.fd)
            self.fd = -1
            if mode == "overwrite":
                os.replace(self.staging, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
            elif mode == "create":
                try:
                    os.link(
                        self.staging,
                        self.name,
                        src_dir_fd=self.dir_fd,
                        dst_dir_fd=self.dir_fd,
                        follow_symlinks=False,
                    )
                except FileExistsError:
                    if os.path.isdir(self.store._fs(key)):
                        raise KeyConflictError(
                            f"{key!r} is a prefix of other objects", path=key
                        ) from None
                    raise AlreadyExistsError(f"{key!r} already exists", path=key) from None
                os.unlink(self.staging, dir_fd=self.dir_fd)
            else:
                assert isinstance(mode, UpdateVersion)
                self._compare_and_swap(mode)
            self.staging = ""
            if self.store._fsync:
                os.fsync(self.dir_fd)
        except OSError as exc:
            raise translate_os_error(exc, key, writing=True) from None
        return make_put_result(_e_tag(st), None)

    def _compare_and_swap(self, mode: UpdateVersion) -> None:
        import fcntl

        while True:
            try:
                current = os.open(self.name, _READ_FLAGS | os.O_NOFOLLOW, dir_fd=self.dir_fd)
            except (FileNotFoundError, OSError) as exc:
                if isinstance(exc, FileNotFoundError) or exc.errno == errno.ELOOP:
                    check_write_mode(self.key, mode, None)
                raise
            try:
                fcntl.flock(current, fcntl.LOCK_EX)
                held = os.fstat(current)
                try:
                    now = os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)
                except FileNotFoundError:
                    check_write_mode(self.key, mode, None)
                    raise
                if now.st_ino != held.st_ino:
                    continue
                if mode.e_tag is None or not etag_matches(mode.e_tag, _e_tag(now)):
                    raise update_refused(self.key, mode)
                os.replace(self.staging, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
                return
            finally:
                os.close(current)

    def discard(self) -> None:
        """Close and remove whatever was not committed (safe to call twice)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.dir_fd >= 0:
            if self.staging:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.staging, dir_fd=self.dir_fd)
                self.staging = ""
            os.close(self.dir_fd)
            self.dir_fd = -1


class _LocalUpload(MultipartUpload):
    buffered: ClassVar[bool] = False

    def __init__(self, staged: _Staged) -> None:
        self._staged = staged

    async def put_part(self, index: int, offset: int, data: bytes) -> None:
        await offload(self._staged.write, data, offset)

    def _complete_sync(self) -> PutResult:
        try:
            return self._staged.commit()
        finally:
            self._staged.discard()

    async def complete(self) -> PutResult:
        return await offload(self._complete_sync)

    async def abort(self) -> None:
        await offload(self._staged.discard)


class _StagingNames:
    """Unique staging names without a syscall per write: pid, a random tag, a counter."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.prefix = f"{STAGING_MARK}{os.getpid()}-{secrets.token_hex(4)}-"
        self.counter = itertools.count()

    def __call__(self, target: str) -> str:
        """A new staging name; it ends with ``target``'s name when that fits (for
        ``list_incomplete`` to report), else with ``-``."""
        name = f"{self.prefix}{next(self.counter)}-"
        if len(target) <= SHORT_NAME or len(name.encode()) + len(target.encode()) <= NAME_MAX:
            name += target
        return name


def _staged_target(name: str) -> str:
    """The target name a staging name records ('' when it did not fit)."""
    fields = name[len(STAGING_MARK) :].split("-", 3)
    return fields[3] if len(fields) == 4 else ""


_staging_name = _StagingNames()
os.register_at_fork(after_in_child=_staging_name.reset)


def _has_control(name: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in name)


def _take(iterator: Iterator[ObjectMeta], count: int) -> list[ObjectMeta]:
    out: list[ObjectMeta] = []
    for item in iterator:
        out.append(item)
        if len(out) >= count:
            break
    return out


def _copy_fd(src: int, dst: int, size: int) -> int:
    """Copy the first ``size`` bytes of ``src`` into ``dst``; return how many there were."""
    copy: Callable[..., int] | None = getattr(os, "copy_file_range", None)
    offset = 0
    try:
        while offset < size and copy is not None:
            done = copy(src, dst, size - offset, offset, offset)
            if done == 0:
                break
            offset += done
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    while offset < size:
        chunk = os.pread(src, min(8 * 1024 * 1024, size - offset), offset)
        if not chunk:
            break
        _write_all(dst, chunk, offset)
        offset += len(chunk)
    return offset
