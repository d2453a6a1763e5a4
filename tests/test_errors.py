"""The error tree: builtin co-bases, context, pickling, the HTTP status table."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

import objstore
from objstore import (
    AlreadyExistsError,
    BulkDeleteError,
    ConfigError,
    InvalidPathError,
    MissingDependencyError,
    NotFoundError,
    ObjstoreError,
    ThrottledError,
    TransientError,
)
from objstore._errors import error_for_status


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (objstore.NotFoundError, FileNotFoundError),
        (objstore.AlreadyExistsError, FileExistsError),
        (objstore.PermissionDeniedError, PermissionError),
        (objstore.UnauthenticatedError, PermissionError),
        (objstore.InvalidPathError, ValueError),
        (objstore.ConfigError, ValueError),
        (objstore.NotSupportedError, NotImplementedError),
        (objstore.ObjstoreTimeoutError, TimeoutError),
        (objstore.ObjstoreConnectionError, ConnectionError),
        (objstore.InsufficientStorageError, OSError),
        (objstore.MissingDependencyError, ImportError),
        (objstore.SyncInAsyncContextError, RuntimeError),
    ],
)
def test_builtin_co_bases(cls: type[ObjstoreError], builtin: type[BaseException]) -> None:
    assert issubclass(cls, ObjstoreError)
    assert issubclass(cls, builtin)
    error = cls("message", path="k")
    assert str(error) == "message"
    assert error.path == "k"


def test_aliases() -> None:
    assert objstore.InvalidKeyError is InvalidPathError
    assert objstore.UnsupportedOperationError is objstore.NotSupportedError


def test_retryable_flag() -> None:
    assert ThrottledError("x").retryable
    assert isinstance(ThrottledError("x"), TransientError)
    assert not NotFoundError("x").retryable


@pytest.mark.parametrize(
    "error",
    [
        NotFoundError("gone", path="a/b", operation="get", status=404, code="NoSuchKey",
                      request_id="r1", store="s3://b", attempts=3, elapsed=1.5),
        MissingDependencyError("install it"),
        BulkDeleteError("some failed", errors={"a": NotFoundError("a")}, operation="delete_many"),
        ConfigError("bad"),
    ],
)  # fmt: skip
def test_errors_pickle_with_their_context(error: ObjstoreError) -> None:
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is type(error)
    assert str(clone) == str(error)
    assert clone.context() == error.context()
    if isinstance(error, BulkDeleteError):
        assert isinstance(clone, BulkDeleteError)
        assert list(clone.errors) == ["a"]


@pytest.mark.parametrize(
    ("status", "create", "cls"),
    [
        (404, False, objstore.NotFoundError),
        (304, False, objstore.NotModifiedError),
        (412, False, objstore.PreconditionFailedError),
        (412, True, AlreadyExistsError),
        (409, True, AlreadyExistsError),
        (401, False, objstore.UnauthenticatedError),
        (403, False, objstore.PermissionDeniedError),
        (416, False, objstore.InvalidRangeError),
        (429, False, objstore.ThrottledError),
        (408, False, objstore.ObjstoreTimeoutError),
        (500, False, objstore.ServiceUnavailableError),
        (503, False, objstore.ServiceUnavailableError),
        (501, False, objstore.NotSupportedError),
        (507, False, objstore.InsufficientStorageError),
        (400, False, objstore.InvalidRequestError),
        (418, False, objstore.InvalidRequestError),
    ],
)
def test_status_table(status: int, create: bool, cls: type[ObjstoreError]) -> None:
    assert error_for_status(status, create_mode=create) is cls


@pytest.mark.parametrize("kind", ["memory", "local"])
async def test_a_refused_update_names_what_changed(kind: str, tmp_path: Any) -> None:
    store = objstore.from_url("memory://" if kind == "memory" else str(tmp_path))
    first = await store.put("k", b"1")
    await store.put("k", b"2")
    with pytest.raises(objstore.PreconditionFailedError, match=r"no longer has ETag '"):
        await store.put("k", b"3", mode=objstore.UpdateVersion(e_tag=first.e_tag))
    with pytest.raises(objstore.PreconditionFailedError, match="no longer has version 'gone'"):
        await store.put("k", b"3", mode=objstore.UpdateVersion(version="gone"))
    assert await store.get("k") == b"2"
