"""objstore_sync: the objstore API, blocking.

>>> store = objstore_sync.ObjectStore("memory://")
>>> store.put("data", b"some data")

Every method of :class:`objstore.ObjectStore` has a blocking twin of the same name;
calls run on one background event-loop thread (memory and local stores run inline).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from objstore import (
    AlreadyExistsError,
    Attributes,
    BucketNotFoundError,
    BulkDeleteError,
    ByteRange,
    Capabilities,
    ChecksumMismatchError,
    ConcurrentModificationError,
    Config,
    ConfigError,
    ConfigKey,
    ForkSafetyError,
    GetResult,
    IncompleteUpload,
    InsufficientStorageError,
    IntegrityError,
    InvalidKeyError,
    InvalidPathError,
    InvalidRangeError,
    InvalidRequestError,
    InvalidURLError,
    KeyConflictError,
    ListResult,
    MissingDependencyError,
    MultipartUploadError,
    NotFoundError,
    NotModifiedError,
    NotSupportedError,
    ObjectMeta,
    ObjectVersion,
    ObjstoreConnectionError,
    ObjstoreError,
    ObjstoreTimeoutError,
    OffsetRange,
    Path,
    PermissionDeniedError,
    PreconditionFailedError,
    ProgressCallback,
    PutMode,
    PutResult,
    RetryPolicy,
    Secret,
    ServiceUnavailableError,
    SuffixRange,
    SymlinkEscapeError,
    SyncInAsyncContextError,
    ThrottledError,
    TLSError,
    TransientError,
    UnauthenticatedError,
    UnknownOptionError,
    UnsupportedOperationError,
    UpdateVersion,
    WriteOutcomeUnknownError,
)
from objstore_sync._io import BlockingIterator, BlockingReader, BlockingStream, BlockingWriter
from objstore_sync._store import ObjectStore

if TYPE_CHECKING:
    from objstore_sync.arrow import ArrowFileSystemHandler

__all__ = [
    "AlreadyExistsError",
    "ArrowFileSystemHandler",
    "Attributes",
    "BlockingIterator",
    "BlockingReader",
    "BlockingStream",
    "BlockingWriter",
    "BucketNotFoundError",
    "BulkDeleteError",
    "ByteRange",
    "Capabilities",
    "ChecksumMismatchError",
    "ConcurrentModificationError",
    "Config",
    "ConfigError",
    "ConfigKey",
    "ForkSafetyError",
    "GetResult",
    "IncompleteUpload",
    "InsufficientStorageError",
    "IntegrityError",
    "InvalidKeyError",
    "InvalidPathError",
    "InvalidRangeError",
    "InvalidRequestError",
    "InvalidURLError",
    "KeyConflictError",
    "ListResult",
    "MissingDependencyError",
    "MultipartUploadError",
    "NotFoundError",
    "NotModifiedError",
    "NotSupportedError",
    "ObjectMeta",
    "ObjectStore",
    "ObjectVersion",
    "ObjstoreConnectionError",
    "ObjstoreError",
    "ObjstoreTimeoutError",
    "OffsetRange",
    "Path",
    "PermissionDeniedError",
    "PreconditionFailedError",
    "ProgressCallback",
    "PutMode",
    "PutResult",
    "RetryPolicy",
    "Secret",
    "ServiceUnavailableError",
    "SuffixRange",
    "SymlinkEscapeError",
    "SyncInAsyncContextError",
    "TLSError",
    "ThrottledError",
    "TransientError",
    "UnauthenticatedError",
    "UnknownOptionError",
    "UnsupportedOperationError",
    "UpdateVersion",
    "WriteOutcomeUnknownError",
]


def __getattr__(name: str) -> Any:
    if name == "ArrowFileSystemHandler":  # imported on first use: pyarrow is an optional extra
        from objstore_sync.arrow import ArrowFileSystemHandler

        return ArrowFileSystemHandler
    raise AttributeError(f"module 'objstore_sync' has no attribute {name!r}")
