"""objstore: one typed, asyncio-first API for object stores.

>>> store = objstore.from_url("memory://")
>>> await store.put("a/b.txt", b"hello")

Backends are imported lazily, so ``import objstore`` loads no cloud SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from objstore._config import Config, ConfigKey, Secret
from objstore._errors import (
    AlreadyExistsError,
    BucketNotFoundError,
    BulkDeleteError,
    ChecksumMismatchError,
    ConcurrentModificationError,
    ConfigError,
    ForkSafetyError,
    InsufficientStorageError,
    IntegrityError,
    InvalidKeyError,
    InvalidPathError,
    InvalidRangeError,
    InvalidRequestError,
    InvalidURLError,
    KeyConflictError,
    MissingDependencyError,
    MultipartUploadError,
    NotFoundError,
    NotModifiedError,
    NotSupportedError,
    ObjstoreConnectionError,
    ObjstoreError,
    ObjstoreTimeoutError,
    PermissionDeniedError,
    PreconditionFailedError,
    ServiceUnavailableError,
    SymlinkEscapeError,
    SyncInAsyncContextError,
    ThrottledError,
    TLSError,
    TransientError,
    UnauthenticatedError,
    UnknownOptionError,
    UnsupportedOperationError,
    WriteOutcomeUnknownError,
)
from objstore._multipart import Writer
from objstore._path import Path
from objstore._reader import Reader
from objstore._registry import from_url
from objstore._retry import RetryPolicy
from objstore._store import Capabilities, ObjectStore, ObjectStream
from objstore._types import (
    Attributes,
    ByteRange,
    GetResult,
    IncompleteUpload,
    ListResult,
    ObjectMeta,
    ObjectVersion,
    OffsetRange,
    ProgressCallback,
    PutMode,
    PutResult,
    SuffixRange,
    UpdateVersion,
)

if TYPE_CHECKING:
    from objstore.backends.local import LocalStore
    from objstore.backends.memory import MemoryStore

__version__ = "0.1.0"

__all__ = [
    "AlreadyExistsError",
    "Attributes",
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
    "LocalStore",
    "MemoryStore",
    "MissingDependencyError",
    "MultipartUploadError",
    "NotFoundError",
    "NotModifiedError",
    "NotSupportedError",
    "ObjectMeta",
    "ObjectStore",
    "ObjectStream",
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
    "Reader",
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
    "Writer",
    "__version__",
    "from_url",
]

_LAZY = {
    "MemoryStore": "objstore.backends.memory",
    "LocalStore": "objstore.backends.local",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'objstore' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
