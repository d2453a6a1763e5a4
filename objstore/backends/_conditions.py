"""HTTP-style read and write conditions, for the backends that evaluate them themselves."""

from __future__ import annotations

from objstore._errors import (
    AlreadyExistsError,
    InvalidRangeError,
    NotFoundError,
    NotModifiedError,
    PreconditionFailedError,
)
from objstore._types import BytesBody, GetOptions, GetResponse, ObjectMeta, PutMode, UpdateVersion

__all__ = [
    "check_read_conditions",
    "check_served_version",
    "check_write_mode",
    "missing_version",
    "empty_read",
    "etag_matches",
    "update_refused",
]


def _bare(tag: str) -> str:
    tag = tag.strip()
    if tag.startswith("W/"):
        tag = tag[2:]
    return tag.strip('"')


def etag_matches(condition: str, e_tag: str | None) -> bool:
    """Say whether an ``If-Match``-style condition (``*`` or a comma-separated list) holds."""
    if condition.strip() == "*":
        return True
    if e_tag is None:
        return False
    bare = _bare(e_tag)
    return any(_bare(c) == bare for c in condition.split(","))


def missing_version(
    path: str, version: str, *, status: int | None = 404, code: str | None = None, detail: str = ""
) -> NotFoundError:
    """The error for a version ``path`` does not have (``detail`` says more)."""
    return NotFoundError(
        f"{path!r} has no version {version!r}{detail}", path=path, status=status, code=code
    )


def check_read_conditions(meta: ObjectMeta, options: GetOptions) -> None:
    """Raise when a read's conditions do not hold for ``meta``.

    Raises:
        PreconditionFailedError: ``if_match`` or ``if_unmodified_since`` failed.
        NotModifiedError: ``if_none_match`` or ``if_modified_since`` says nothing changed.
        NotFoundError: ``version`` is not the object's version.
    """
    path = meta.location
    if options.version is not None and options.version != meta.version:
        raise missing_version(path, options.version, status=None)
    if options.if_match is not None and not etag_matches(options.if_match, meta.e_tag):
        raise PreconditionFailedError(
            f"{path!r} does not match ETag {options.if_match!r}", path=path, status=412
        )
    if options.if_unmodified_since is not None and meta.last_modified > options.if_unmodified_since:
        raise PreconditionFailedError(
            f"{path!r} was modified after {options.if_unmodified_since}", path=path, status=412
        )
    if options.if_none_match is not None and etag_matches(options.if_none_match, meta.e_tag):
        raise NotModifiedError(
            f"{path!r} matches ETag {options.if_none_match!r}", path=path, status=304
        )
    if options.if_modified_since is not None and meta.last_modified <= options.if_modified_since:
        raise NotModifiedError(
            f"{path!r} not modified since {options.if_modified_since}", path=path, status=304
        )


async def check_served_version(path: str, wanted: str | None, served: GetResponse) -> None:
    """Refuse a reply that is not the version asked for (releasing its body): a server that
    keeps no versions may ignore the parameter and serve the current object (SeaweedFS on an
    unversioned bucket, Azurite). S3 names an unversioned object's version ``null`` and
    sends no version with it.

    Raises:
        NotFoundError: the reply is another version, or names none.
    """
    found = served.meta.version
    if wanted is None or found == wanted or (wanted == "null" and found is None):
        return
    if served.body is not None:
        await served.body.aclose()
    raise missing_version(path, wanted, detail=f" (the service served {found!r})")


def check_write_mode(
    path: str, mode: PutMode, current: tuple[str | None, str | None] | None
) -> None:
    """Raise when a write's mode does not allow replacing ``current`` ``(e_tag, version)``.

    Raises:
        AlreadyExistsError: create mode and the object exists.
        PreconditionFailedError: update mode and the object is missing or changed.
    """
    if mode == "overwrite":
        return
    if mode == "create":
        if current is not None:
            raise AlreadyExistsError(f"{path!r} already exists", path=path, status=412)
        return
    assert isinstance(mode, UpdateVersion)
    if current is None:
        raise PreconditionFailedError(
            f"{path!r} does not exist, so it cannot be updated", path=path, status=412
        )
    e_tag, version = current
    if (mode.e_tag is not None and not etag_matches(mode.e_tag, e_tag)) or (
        mode.version is not None and mode.version != version
    ):
        raise update_refused(path, mode)


def update_refused(path: str, mode: UpdateVersion) -> PreconditionFailedError:
    """The error of an update whose object is no longer the one ``mode`` names."""
    named = " and ".join(
        f"{what} {value!r}" for what, value in (("ETag", mode.e_tag), ("version", mode.version))
        if value is not None
    )  # fmt: skip
    return PreconditionFailedError(
        f"{path!r} changed: it no longer has {named}", path=path, status=412
    )


def empty_read(key: str, described: GetResponse, start: int) -> GetResponse:
    """A zero-length read at ``start`` of the object ``described`` (its metadata and
    attributes): fine inside the object and at 0 of an empty one.

    Raises:
        InvalidRangeError: ``start`` is at or past the end of a non-empty object.
    """
    size = described.meta.size
    if start >= size and not (start == 0 == size):
        raise InvalidRangeError(
            f"range starts at {start}, past the end of a {size}-byte object", path=key
        )
    return GetResponse(
        meta=described.meta, range=(start, start), attributes=described.attributes,
        body=BytesBody(b""),
    )  # fmt: skip
