"""The objstore error tree and the shared HTTP status table.

::

    ObjstoreError
    ├── ConfigError (ValueError)
    │   ├── InvalidURLError
    │   ├── UnknownOptionError
    │   └── MissingDependencyError (ImportError)
    ├── InvalidPathError (ValueError)            alias: InvalidKeyError
    ├── NotFoundError (FileNotFoundError)
    │   └── BucketNotFoundError
    ├── AlreadyExistsError (FileExistsError)
    ├── KeyConflictError (FileExistsError)        "a/b" written where "a" is an object (local)
    ├── PreconditionFailedError
    │   └── ConcurrentModificationError           the object changed under a pinned reader
    ├── NotModifiedError
    ├── PermissionDeniedError (PermissionError)
    │   └── SymlinkEscapeError                    local: a link that leaves the root
    ├── UnauthenticatedError (PermissionError)
    ├── InvalidRangeError (ValueError)
    ├── InvalidRequestError (ValueError)
    ├── IntegrityError
    │   └── ChecksumMismatchError (TransientError) a body unlike its checksum: re-fetched
    ├── InsufficientStorageError (OSError)
    ├── NotSupportedError (NotImplementedError)   alias: UnsupportedOperationError
    ├── MultipartUploadError
    ├── BulkDeleteError                           some paths of a bulk delete failed
    ├── TLSError (ConnectionError)                 certificate not trusted, no TLS: not retried
    ├── TransientError                            retryable
    │   ├── ThrottledError
    │   ├── ServiceUnavailableError
    │   ├── ObjstoreConnectionError (ConnectionError)
    │   └── ObjstoreTimeoutError (TimeoutError)
    ├── SyncInAsyncContextError (RuntimeError)
    └── ForkSafetyError (RuntimeError)

Builtin co-bases keep ``except FileNotFoundError`` working for users, pyarrow and fsspec.
Every error carries the path, the operation and (for HTTP backends) the status, pickles, and
never holds a secret: messages are built from validated paths and redacted URLs only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "AlreadyExistsError",
    "BucketNotFoundError",
    "BulkDeleteError",
    "ChecksumMismatchError",
    "ConcurrentModificationError",
    "ConfigError",
    "ForkSafetyError",
    "InsufficientStorageError",
    "IntegrityError",
    "InvalidKeyError",
    "InvalidPathError",
    "InvalidRangeError",
    "InvalidRequestError",
    "InvalidURLError",
    "KeyConflictError",
    "MissingDependencyError",
    "MultipartUploadError",
    "NotFoundError",
    "NotModifiedError",
    "NotSupportedError",
    "ObjstoreConnectionError",
    "ObjstoreError",
    "ObjstoreTimeoutError",
    "PermissionDeniedError",
    "PreconditionFailedError",
    "ServiceUnavailableError",
    "SymlinkEscapeError",
    "SyncInAsyncContextError",
    "TLSError",
    "ThrottledError",
    "TransientError",
    "UnauthenticatedError",
    "UnknownOptionError",
    "UnsupportedOperationError",
    "WriteOutcomeUnknownError",
    "error_for_status",
]

_CONTEXT_FIELDS = (
    "path",
    "operation",
    "status",
    "code",
    "request_id",
    "store",
    "attempts",
    "elapsed",
)


class ObjstoreError(Exception):
    """Base of every error objstore raises.

    Attributes:
        path: the object path (relative to the store) the error concerns, if any.
        operation: the public operation that failed (``"get"``, ``"put"`` ...).
        status: the HTTP status, for HTTP backends.
        code: the provider's error code (``"NoSuchKey"``, ``"BlobNotFound"`` ...).
        request_id: the provider's request id, for support tickets.
        store: the store's URL, without credentials.
        attempts: how many attempts were made before giving up.
        elapsed: seconds spent, retries included.
    """

    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        operation: str | None = None,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        store: str | None = None,
        attempts: int | None = None,
        elapsed: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.operation = operation
        self.status = status
        self.code = code
        self.request_id = request_id
        self.store = store
        self.attempts = attempts
        self.elapsed = elapsed

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"

    def context(self) -> dict[str, Any]:
        """Return the error's context fields that are set."""
        return {f: getattr(self, f) for f in _CONTEXT_FIELDS if getattr(self, f) is not None}

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.context(), self._extra_state()))


def _rebuild(
    cls: type[ObjstoreError],
    message: str,
    context: Mapping[str, Any],
    extra: Mapping[str, Any],
) -> ObjstoreError:
    err = cls.__new__(cls)
    ObjstoreError.__init__(err, message, **context)
    for name, value in extra.items():
        setattr(err, name, value)
    return err


class ConfigError(ObjstoreError, ValueError):
    """An option, URL or environment variable is wrong; raised before any I/O, or when the
    service's answer shows it (an S3 bucket in another region than ``aws_region``)."""


class InvalidURLError(ConfigError):
    """The store URL cannot be parsed or names no known backend."""


class UnknownOptionError(ConfigError):
    """An option key is not known to the backend (the message suggests the nearest)."""


class MissingDependencyError(ConfigError, ImportError):
    """A backend's optional dependencies are not installed (the message says what to install)."""


class InvalidPathError(ObjstoreError, ValueError):
    """A path is not a valid object key (the message names it, repr-escaped)."""


InvalidKeyError = InvalidPathError


class NotFoundError(ObjstoreError, FileNotFoundError):
    """The object does not exist."""


class BucketNotFoundError(NotFoundError):
    """The bucket, container or local root does not exist."""


class AlreadyExistsError(ObjstoreError, FileExistsError):
    """A create-mode write or ``*_if_not_exists`` found the destination present."""


class KeyConflictError(ObjstoreError, FileExistsError):
    """A key cannot be stored because a prefix of it is an object (or the reverse)."""


class PreconditionFailedError(ObjstoreError):
    """A condition (``if_match``, ``if_unmodified_since``, an update's ETag) did not hold."""


class ConcurrentModificationError(PreconditionFailedError):
    """The object changed while a pinned reader was reading it."""


class WriteOutcomeUnknownError(ObjstoreError):
    """A conditional write's reply was lost and the object has changed since: the write may
    or may not have been applied, and no request can tell now.

    Not a :class:`PreconditionFailedError`, whose "not applied" would make a read-modify-write
    loop apply its change twice; read the object and decide.
    """


class NotModifiedError(ObjstoreError):
    """``if_none_match`` / ``if_modified_since`` said the cached copy is current."""


class PermissionDeniedError(ObjstoreError, PermissionError):
    """The credentials are valid but may not do this."""


class SymlinkEscapeError(PermissionDeniedError):
    """A local path would follow a symbolic link out of the store's root."""


class UnauthenticatedError(ObjstoreError, PermissionError):
    """No credentials, or the service rejected them."""


class InvalidRangeError(ObjstoreError, ValueError):
    """A byte range starts at or past the end of the object, or is malformed."""


class InvalidRequestError(ObjstoreError, ValueError):
    """The request is malformed (bad attribute, part too small, argument of the wrong type)."""


class IntegrityError(ObjstoreError):
    """Data read or written did not match its checksum or announced length."""


class InsufficientStorageError(ObjstoreError, OSError):
    """The destination is full (``ENOSPC``, ``EDQUOT``, HTTP 507)."""


class NotSupportedError(ObjstoreError, NotImplementedError):
    """The backend cannot do this operation or option."""


UnsupportedOperationError = NotSupportedError


class MultipartUploadError(ObjstoreError):
    """A multipart upload was used after it ended, or the service lost it."""


class BulkDeleteError(ObjstoreError):
    """Some paths of a bulk delete failed; ``errors`` maps each failed path to its error."""

    def __init__(self, message: str, *, errors: Mapping[str, ObjstoreError], **kw: Any) -> None:
        super().__init__(message, **kw)
        self.errors = dict(errors)

    @classmethod
    def from_failures(cls, failures: Mapping[str, ObjstoreError], store: str) -> BulkDeleteError:
        """Build the error of a ``delete_many`` whose ``failures`` map paths to errors."""
        first = next(iter(failures))
        return cls(
            f"{len(failures)} of the deletes failed (first: {first!r}: {failures[first]})",
            errors=failures,
            operation="delete_many",
            store=store,
        )

    def _extra_state(self) -> dict[str, Any]:
        return {"errors": self.errors}


class TLSError(ObjstoreError, ConnectionError):
    """The TLS handshake failed: the server's certificate is not trusted for its name, or the
    server does not speak TLS. Not retried: trying again cannot change either."""


class TransientError(ObjstoreError):
    """A failure that may succeed if tried again; raised after the retry budget is spent.

    Attributes:
        retry_after: seconds the service asked to wait before trying again (its
            ``Retry-After``), if it said; the retry policy waits at least that long, up to
            ``backoff_max``.
    """

    retryable: ClassVar[bool] = True
    retry_after: float | None = None

    def _extra_state(self) -> dict[str, Any]:
        return {} if self.retry_after is None else {"retry_after": self.retry_after}


class ThrottledError(TransientError):
    """The service asked the client to slow down (429, SlowDown, ServerBusy)."""


class ServiceUnavailableError(TransientError):
    """The service failed (5xx)."""


class ObjstoreConnectionError(TransientError, ConnectionError):
    """The connection could not be made or broke mid-request."""


class ObjstoreTimeoutError(TransientError, TimeoutError):
    """The operation ran past its deadline."""


class ChecksumMismatchError(IntegrityError, TransientError):
    """A body's bytes did not match the checksum the service sent with them (a corrupted
    transfer). Retried like other transient failures; raised when every attempt mismatched."""


class SyncInAsyncContextError(ObjstoreError, RuntimeError):
    """A blocking call was made on the thread that would have to serve it."""


class ForkSafetyError(ObjstoreError, RuntimeError):
    """A resource created before ``fork()`` was used in the child."""


_STATUS_TABLE: dict[int, type[ObjstoreError]] = {
    304: NotModifiedError,
    400: InvalidRequestError,
    401: UnauthenticatedError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: NotSupportedError,
    408: ObjstoreTimeoutError,
    409: PreconditionFailedError,
    411: InvalidRequestError,
    412: PreconditionFailedError,
    413: InvalidRequestError,
    416: InvalidRangeError,
    429: ThrottledError,
    501: NotSupportedError,
    507: InsufficientStorageError,
}


def error_for_status(status: int, *, create_mode: bool = False) -> type[ObjstoreError]:
    """Return the error class for an HTTP status.

    Args:
        status: the HTTP status code of a failed response.
        create_mode: the request was a create-if-absent write, where 409 and 412 mean the
            destination exists.
    """
    if create_mode and status in (409, 412):
        return AlreadyExistsError
    cls = _STATUS_TABLE.get(status)
    if cls is not None:
        return cls
    if status >= 500:
        return ServiceUnavailableError
    return InvalidRequestError if 400 <= status < 500 else ObjstoreError
