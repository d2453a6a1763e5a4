"""Azure error mapping and request headers, against a Blob-service stand-in on 127.0.0.1 that
answers with the status and error code a test sets (what Azurite cannot be made to say)."""

from __future__ import annotations

import pickle
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

import objstore
from objstore import NotFoundError
from objstore.testing.standin import serve_handler

FAST_RETRIES = {"backoff_initial": "5ms", "backoff_max": "20ms", "max_retries": "5"}


class StandIn:
    """Answers every request with ``status`` and Azure's error document for ``code``."""

    def __init__(self) -> None:
        self.status = 200
        self.code = ""
        self.by_method: dict[str, tuple[int, str]] = {}
        """Another status and code for one method."""
        self.requests: list[web.Request] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(request)
        await request.read()
        status, code = self.by_method.get(request.method, (self.status, self.code))
        if status in (200, 201, 202):
            headers = {"ETag": '"0x1"', "Last-Modified": "Thu, 26 Nov 2026 10:00:00 GMT",
                       "Content-Length": "3"}  # fmt: skip
            return web.Response(status=status, body=b"abc", headers=headers)
        body = (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
                "<Message>stand-in message\nRequestId:r1</Message></Error>")  # fmt: skip
        headers = {"x-ms-error-code": code, "x-ms-request-id": "req-1"}
        return web.Response(status=status, text=body, headers=headers,
                            content_type="application/xml")  # fmt: skip


@pytest.fixture
async def stand_in() -> AsyncIterator[tuple[StandIn, str]]:
    server = StandIn()
    async with serve_handler(server.handle) as url:
        yield server, f"{url}/acct"


def _options(endpoint: str, **extra: str) -> dict[str, str]:
    return {"azure_storage_endpoint": endpoint, "allow_http": "true", **FAST_RETRIES, **extra}


@pytest.mark.parametrize(
    ("status", "code", "error", "retried"),
    [
        (403, "AuthenticationFailed", objstore.UnauthenticatedError, False),
        (403, "AuthorizationPermissionMismatch", objstore.PermissionDeniedError, False),
        (404, "BlobNotFound", NotFoundError, False),
        (404, "ContainerNotFound", objstore.BucketNotFoundError, False),
        (503, "ServerBusy", objstore.ThrottledError, True),
        (500, "InternalError", objstore.ServiceUnavailableError, True),
    ],
)
async def test_codes_map_to_typed_errors(
    stand_in: tuple[StandIn, str], status: int, code: str,
    error: type[objstore.ObjstoreError], retried: bool,
) -> None:  # fmt: skip
    server, endpoint = stand_in
    server.status, server.code = status, code
    options = _options(endpoint, azure_storage_token="canary-token")
    async with objstore.from_url("az://data", options) as store:
        with pytest.raises(error) as info:
            await store.get("k")
    assert (info.value.status, info.value.code, info.value.path) == (status, code, "k")
    assert info.value.request_id == "req-1"
    assert len(server.requests) == (6 if retried else 1)
    assert "canary" not in str(info.value)
    assert type(pickle.loads(pickle.dumps(info.value))) is error


async def test_write_conflicts(stand_in: tuple[StandIn, str]) -> None:
    server, endpoint = stand_in
    async with objstore.from_url("az://data", _options(endpoint, bearer_token="t")) as store:
        server.status, server.code = 409, "BlobAlreadyExists"
        with pytest.raises(objstore.AlreadyExistsError):
            await store.put("k", b"x", mode="create")
        server.status, server.code = 412, "ConditionNotMet"
        with pytest.raises(objstore.PreconditionFailedError) as info:
            await store.put("k", b"x", mode=objstore.UpdateVersion(e_tag='"0x1"'))
        assert not isinstance(info.value, objstore.AlreadyExistsError)
        server.status, server.code = 304, ""
        with pytest.raises(objstore.NotModifiedError):
            await store.get_result("k", if_none_match='"0x1"')


async def test_bearer_token_and_request_headers(stand_in: tuple[StandIn, str]) -> None:
    server, endpoint = stand_in
    server.status = 201
    options = _options(endpoint, azure_storage_token="canary-token")
    async with objstore.from_url("az://data", options) as store:
        await store.put("dir/k 1", b"abc", tags={"team": "a b"},
                        attributes={"content_type": "text/plain", "owner": "me"})  # fmt: skip
        assert store.credential_source == "static bearer token"  # type: ignore[attr-defined]
        assert "canary" not in repr(store) + repr(store.config)
        assert b"canary" not in pickle.dumps(store)
    request = server.requests[-1]
    assert request.path_qs == "/acct/data/dir/k%201"
    assert request.headers["Authorization"] == "Bearer canary-token"
    assert request.headers["x-ms-blob-type"] == "BlockBlob"
    assert request.headers["x-ms-blob-content-type"] == "text/plain"
    assert request.headers["x-ms-meta-owner"] == "me"
    assert request.headers["x-ms-tags"] == "team=a%20b"
    assert "x-ms-version" in request.headers
    assert "x-ms-date" in request.headers


async def test_disable_tagging_drops_tags(stand_in: tuple[StandIn, str]) -> None:
    server, endpoint = stand_in
    server.status = 201
    options = _options(endpoint, bearer_token="t", azure_disable_tagging="true")
    async with objstore.from_url("az://data", options) as store:
        await store.put("k", b"abc", tags={"team": "a"})
    assert "x-ms-tags" not in server.requests[-1].headers


async def test_anonymous_requests_carry_no_authorization(stand_in: tuple[StandIn, str]) -> None:
    server, endpoint = stand_in
    server.status = 200
    async with objstore.from_url("az://data", _options(endpoint, skip_signature="true")) as store:
        assert await store.get("k") == b"abc"
    assert "Authorization" not in server.requests[-1].headers


async def test_bulk_delete_without_blob_batch_deletes_one_by_one(
    stand_in: tuple[StandIn, str],
) -> None:
    server, endpoint = stand_in
    server.status = 202
    server.by_method["POST"] = (501, "NotImplemented")  # no Blob Batch on this service
    async with objstore.from_url("az://data", _options(endpoint, bearer_token="t")) as store:
        assert await store.delete_many(["a", "b", "c"]) == 3
    methods = [r.method for r in server.requests]
    assert methods.count("POST") == 1
    assert sorted(r.path for r in server.requests if r.method == "DELETE") == [
        "/acct/data/a", "/acct/data/b", "/acct/data/c",
    ]  # fmt: skip
