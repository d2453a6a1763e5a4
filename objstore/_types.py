"""Results, options and small value types shared by every backend."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Literal, Protocol, TypeAlias

from objstore._errors import InvalidRangeError, InvalidRequestError
from objstore._record import record

__all__ = [
    "STANDARD_ATTRIBUTES",
    "Attributes",
    "Body",
    "BodyCheck",
    "BytesBody",
    "ByteRange",
    "GetOptions",
    "GetResult",
    "IncompleteUpload",
    "ListResult",
    "ObjectMeta",
    "OffsetRange",
    "ProgressCallback",
    "PutMode",
    "PutOptions",
    "PutResult",
    "RangeRequest",
    "SuffixRange",
    "UpdateVersion",
    "byte_view",
    "validate_attributes",
    "validate_tags",
]

ProgressCallback: TypeAlias = Callable[[int, int | None], None]
"""Called with ``(bytes_done, bytes_total_or_None)`` as a long transfer advances."""

Attributes: TypeAlias = Mapping[str, str]
"""Standard attributes by snake_case name (see ``STANDARD_ATTRIBUTES``; their HTTP spellings,
``Content-Type`` and so on in any case, name them too); any other key is user metadata
(letters, digits, ``-`` and ``_``; case-insensitive, kept in lower case)."""

STANDARD_ATTRIBUTES = frozenset(
    {"content_type", "content_encoding", "content_disposition", "content_language", "cache_control"}
)
_METADATA_KEY = re.compile(r"[A-Za-z0-9_-]{1,128}")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
"""Characters an HTTP header value may not hold (a tab may)."""


def validate_attributes(attributes: Mapping[str, str] | None) -> dict[str, str]:
    """Check attribute names and values; return a plain dict copy.

    Raises:
        InvalidRequestError: a key is not a standard attribute or valid metadata name, a
            value is not a ``str``, holds a control character, or is a standard attribute's
            and not ASCII.
    """
    if not attributes:
        return {}
    out: dict[str, str] = {}
    given: dict[str, str] = {}  # the caller's spelling of each key of ``out``
    for key, value in attributes.items():
        if not isinstance(key, str) or not _METADATA_KEY.fullmatch(key):
            raise InvalidRequestError(
                f"invalid attribute name {key!r}: use one of {sorted(STANDARD_ATTRIBUTES)} "
                "or a metadata name of letters, digits, '-' and '_'"
            )
        if not isinstance(value, str):
            raise InvalidRequestError(
                f"attribute {key!r} must be a str, not {type(value).__name__}"
            )
        name = _standard_name(key)
        _check_value(key, name, value)
        if name in out and out[name] != value:
            raise InvalidRequestError(
                f"attributes {given[name]!r} and {key!r} both set {name} to different values"
            )
        out[name] = value
        given.setdefault(name, key)
    return out


def _check_value(key: str, name: str, value: str) -> None:
    """Refuse what no store can carry in an HTTP header: control characters in any value
    (header injection), and non-ASCII in a standard attribute, which every cloud serves back
    as the header itself (user metadata may be any text: S3 encodes it, RFC 2047)."""
    if _CONTROL.search(value):
        raise InvalidRequestError(f"attribute {key!r} holds a control character")
    if name in STANDARD_ATTRIBUTES and not value.isascii():
        hint = (
            ": give a file name as filename*=UTF-8''<percent-encoded name> (RFC 6266)"
            if name == "content_disposition"
            else ""
        )
        raise InvalidRequestError(f"attribute {key!r} must be ASCII (an HTTP header){hint}")


def _standard_name(key: str) -> str:
    """``key`` as the standard attribute it spells (``Content-Type`` -> ``content_type``), else
    as user metadata, in lower case: S3 and GCS keep no case in metadata names (HTTP headers),
    so a name that came back as written on one backend and lowered on another would break
    code moved between them."""
    if key in STANDARD_ATTRIBUTES:
        return key
    lowered = key.lower()
    name = lowered.replace("-", "_")
    return name if name in STANDARD_ATTRIBUTES else lowered


def byte_view(data: object) -> memoryview | None:
    """``data`` as a flat view of its bytes if it has the buffer protocol (``bytearray``,
    ``memoryview``, ``array.array``, NumPy arrays, pyarrow buffers, ``mmap``), else ``None``.

    A view of wider items (``array('i')``) counts bytes, not items; a non-contiguous one is
    copied.
    """
    try:
        view = memoryview(data)  # type: ignore[arg-type]
    except TypeError:
        return None
    if view.format == "B" and view.ndim == 1 and view.c_contiguous:
        return view
    return view.cast("B") if view.c_contiguous else memoryview(view.tobytes())


MAX_TAGS = 10
"""S3 and Azure both keep at most ten tags on an object."""
_TAG_TEXT = re.compile(r"[\w +\-=.:/@]*")
"""The characters S3 allows in a tag key or value: letters, digits, spaces and ``+-=._:/@``."""


def validate_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    """Check tags against the rules S3 and Azure share; return a plain dict copy.

    Raises:
        InvalidRequestError: more than ten tags, a key that is not 1-128 characters or a
            value longer than 256, or a character other than letters, digits, spaces and
            ``+ - = . _ : / @`` (a backend may narrow this: Azure takes ASCII only).
    """
    if not tags:
        return {}
    out: dict[str, str] = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidRequestError(f"tag {key!r}: keys and values must be str")
        if not 1 <= len(key) <= 128 or len(value) > 256:
            raise InvalidRequestError(
                f"tag {key!r}: a key must be 1-128 characters and a value at most 256"
            )
        for text in (key, value):
            if not _TAG_TEXT.fullmatch(text):
                raise InvalidRequestError(
                    f"tag {key!r}: {text!r} holds a character tags cannot: use letters, "
                    "digits, spaces and + - = . _ : / @"
                )
        out[key] = value
    if len(out) > MAX_TAGS:
        raise InvalidRequestError(f"{len(out)} tags given: an object keeps at most {MAX_TAGS}")
    return out


@record
class ObjectMeta:
    """What a store knows about an object without reading it."""

    location: str
    """The path relative to the store."""
    size: int
    last_modified: datetime
    """Timezone-aware, UTC."""
    e_tag: str | None = None
    version: str | None = None


@record
class ObjectVersion:
    """One version of an object, as :meth:`ObjectStore.list_versions` lists it."""

    location: str
    """The path relative to the store."""
    version: str | None
    """What ``get_result(..., version=)`` reads it by (``None`` where the store keeps no
    versions: the object as it is now)."""
    last_modified: datetime
    """When this version was written (for a delete marker: when the object was deleted)."""
    size: int = 0
    e_tag: str | None = None
    is_latest: bool = True
    """The object as a plain read sees it now."""
    deleted: bool = False
    """An S3 delete marker: the object was deleted at this point of its history (it has no
    data; a read by its version is refused)."""


@record
class PutResult:
    """The identity of the object a write produced."""

    e_tag: str | None = None
    version: str | None = None


@record
class IncompleteUpload:
    """A multipart write that was begun and neither completed nor aborted (its writer died).

    It holds storage (S3 parts, Azure uncommitted blocks, a local staging file) but no
    visible object; :meth:`ObjectStore.cleanup_incomplete` removes it.
    """

    location: str
    """The key it would have written (for a local staging file whose target name was too
    long to record in its own, the directory it is in)."""
    upload_id: str
    """The store's handle on it: an S3 upload id, an Azure blob name, a staging file name."""
    initiated: datetime
    """When it began, by the store's clock (local: its staging file's last write). UTC."""


@record
class UpdateVersion:
    """Put mode: replace the object only if it still has this ETag (and version)."""

    e_tag: str | None = None
    version: str | None = None


PutMode: TypeAlias = Literal["overwrite", "create"] | UpdateVersion


@record
class ListResult:
    """One level of a listing: the sub-prefixes and the objects directly under a prefix."""

    common_prefixes: list[str]
    objects: list[ObjectMeta]


@record(kw_only=False)
class ByteRange:
    """Bytes ``[start, end)``; an end past the object is clamped."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.start < 0 or self.end < self.start:
            raise InvalidRangeError(f"invalid range [{self.start}, {self.end})")


@record(kw_only=False)
class OffsetRange:
    """Bytes from ``offset`` to the end."""

    offset: int

    def __post_init__(self) -> None:
        if self.offset < 0:
            raise InvalidRangeError(f"invalid offset {self.offset}")


@record(kw_only=False)
class SuffixRange:
    """The last ``suffix`` bytes."""

    suffix: int

    def __post_init__(self) -> None:
        if self.suffix <= 0:
            raise InvalidRangeError(f"invalid suffix length {self.suffix}")


RangeRequest: TypeAlias = ByteRange | OffsetRange | SuffixRange


def resolve_range(request: RangeRequest, size: int) -> tuple[int, int]:
    """Turn a range request into ``[start, end)`` within an object of ``size`` bytes.

    Raises:
        InvalidRangeError: the range starts at or past the end of a non-empty object.
    """
    if isinstance(request, SuffixRange):
        return max(0, size - request.suffix), size
    start = request.start if isinstance(request, ByteRange) else request.offset
    end = min(request.end, size) if isinstance(request, ByteRange) else size
    if start >= size and not (start == 0 and size == 0):
        raise InvalidRangeError(f"range starts at {start}, past the end of a {size}-byte object")
    return start, end


def requested_part(
    data: bytes, served_from: int, request: ByteRange | OffsetRange, size: int
) -> bytes:
    """The part of ``data`` (bytes of a ``size``-byte object from ``served_from`` on) that
    ``request`` asked for: ``data`` itself normally, a slice when a server ignored the Range
    header and sent the whole object.

    Raises:
        InvalidRangeError: the server ignored Range and the request starts past the end.
    """
    start = request.start if isinstance(request, ByteRange) else request.offset
    if served_from == start:
        return data
    resolve_range(request, size)  # the server did not check the start: check it here
    end = request.end - served_from if isinstance(request, ByteRange) else None
    return data[start - served_from : end]


@record
class GetOptions:
    """Conditions and range of a read, as a backend primitive receives them."""

    range: RangeRequest | None = None
    if_match: str | None = None
    if_none_match: str | None = None
    if_modified_since: datetime | None = None
    if_unmodified_since: datetime | None = None
    version: str | None = None
    head: bool = False


_EMPTY: Mapping[str, str] = MappingProxyType({})


@record
class PutOptions:
    """Mode, attributes and tags of a write, as a backend primitive receives them."""

    mode: PutMode = "overwrite"
    attributes: Mapping[str, str] = _EMPTY
    tags: Mapping[str, str] = _EMPTY


DEFAULT_GET = GetOptions()
DEFAULT_PUT = PutOptions()

# Fast constructors for the hot paths of in-process backends: these set the slots directly
# (skipping the keyword-argument call) and build objects equal to what the public
# constructors build.
_new = object.__new__
_set_put_e_tag = PutResult.__dict__["e_tag"].__set__
_set_put_version = PutResult.__dict__["version"].__set__
_META_SETTERS = tuple(
    ObjectMeta.__dict__[name].__set__
    for name in ("location", "size", "last_modified", "e_tag", "version")
)


def make_put_result(e_tag: str | None, version: str | None) -> PutResult:
    """Build a :class:`PutResult` quickly."""
    result: PutResult = _new(PutResult)
    _set_put_e_tag(result, e_tag)
    _set_put_version(result, version)
    return result


def make_meta(
    location: str, size: int, last_modified: datetime, e_tag: str | None, version: str | None
) -> ObjectMeta:
    """Build an :class:`ObjectMeta` quickly."""
    meta: ObjectMeta = _new(ObjectMeta)
    set_location, set_size, set_modified, set_e_tag, set_version = _META_SETTERS
    set_location(meta, location)
    set_size(meta, size)
    set_modified(meta, last_modified)
    set_e_tag(meta, e_tag)
    set_version(meta, version)
    return meta


class Body(Protocol):
    """The payload of a read, as a backend produces it."""

    def chunks(self, chunk_size: int) -> AsyncIterator[bytes]:
        """Yield the payload in chunks of at most ``chunk_size`` bytes."""
        ...

    async def read_all(self) -> bytes:
        """Return the whole payload."""
        ...

    async def aclose(self) -> None:
        """Release the connection or file behind the payload."""
        ...


class BytesBody:
    """A payload already in memory, served in slices."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def chunks(self, chunk_size: int) -> AsyncIterator[bytes]:
        data = self._data
        for start in range(0, len(data), chunk_size):
            yield data[start : start + chunk_size]

    async def read_all(self) -> bytes:
        return self._data

    async def aclose(self) -> None:
        self._data = b""


class BodyCheck(Protocol):
    """A checksum a reply announced for its whole body (``backends/_checksums.py``)."""

    algorithm: str

    def update(self, data: bytes | memoryview) -> None:
        """Add the next bytes of the body."""
        ...

    def matches(self) -> bool:
        """Whether the bytes added so far are the announced body."""
        ...


@record
class GetResponse:
    """What a backend's ``_get`` primitive returns."""

    meta: ObjectMeta
    range: tuple[int, int]
    attributes: dict[str, str]
    body: Body | None
    checksum: BodyCheck | None = None
    """The whole object's checksum, to check a streamed ``body`` against (network replies)."""


@record
class GetResult:
    """A read's bytes with the object's metadata, attributes and the range served."""

    data: bytes
    meta: ObjectMeta
    attributes: dict[str, str]
    range: tuple[int, int]
    """The bytes ``[start, end)`` of the object that ``data`` holds."""
