"""Canary values for every kind of secret: none may appear in a ``repr``/``str``, an exception
chain, a DEBUG log record (objstore's and the SDKs'), or a pickle (unless the user opts in).

Each store is driven into failing requests (a wrong key, a refusing stand-in), so that error
paths and retry logging run with the secrets in play.
"""

from __future__ import annotations

import base64
import logging
import pickle
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp import web

import objstore
from objstore.testing.emulators import AzureServer, S3Server
from objstore.testing.standin import serve_handler

CANARY = "c4n4ry"
FAST = {"backoff_initial": "1ms", "backoff_max": "2ms", "max_retries": "2"}


def _canary_b64(size: int) -> str:
    """Valid base64 of ``size`` bytes whose text carries the canary."""
    raw = (CANARY.encode() * size)[:size]
    return base64.b64encode(raw).decode()


def _texts(value: Any) -> Iterator[str]:
    yield repr(value)
    yield str(value)
    if isinstance(value, BaseException):
        seen: set[int] = set()
        exc: BaseException | None = value
        while exc is not None and id(exc) not in seen:
            seen.add(id(exc))
            yield repr(exc)
            yield str(exc)
            yield repr(getattr(exc, "args", ()))
            exc = exc.__cause__ or exc.__context__


def _assert_clean(secrets: list[str], *values: Any, records: list[logging.LogRecord]) -> None:
    texts = [t for v in values for t in _texts(v)]
    texts += [record.getMessage() for record in records]
    texts += [repr(record.args) for record in records]
    for secret in secrets:
        for text in texts:
            assert secret not in text, f"a secret leaked into: {text[:200]}"


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)  # every logger: objstore's, botocore's, azure's, aiohttp's
    return caplog


async def test_s3_secrets(
    s3_server: S3Server, bucket: str, debug_logs: pytest.LogCaptureFixture
) -> None:
    secrets = [f"{CANARY}-secret-key", f"{CANARY}-session-token"]
    sse_key = _canary_b64(32)
    options = s3_server.options(aws_secret_access_key=secrets[0], aws_session_token=secrets[1],
                                **FAST)  # fmt: skip
    store = objstore.from_url(f"s3://{bucket}", options)
    with pytest.raises(objstore.ObjstoreError) as info:
        await store.put("k", b"x")
    sse_options = s3_server.options(
        aws_server_side_encryption="sse-c", aws_sse_customer_key_base64=sse_key, **FAST
    )
    sse = objstore.from_url(f"s3://{bucket}", sse_options)
    with pytest.raises(objstore.ObjstoreError) as sse_info:
        await sse.get("missing")
    await sse.put("sse/src", b"encrypted")  # copies send the key twice (source and target)
    await sse.copy("sse/src", "sse/copy")
    await sse.copy_if_not_exists("sse/src", "sse/new")  # SeaweedFS: through the client
    with pytest.raises(objstore.AlreadyExistsError) as copy_info:
        await sse.copy_if_not_exists("sse/src", "sse/new")
    _assert_clean([*secrets, sse_key, CANARY], store, store.config, sse, sse.config, info.value,
                  sse_info.value, copy_info.value, records=debug_logs.records)  # fmt: skip
    for each in (store, sse):
        assert CANARY.encode() not in pickle.dumps(each)
        assert sse_key.encode() not in pickle.dumps(each)
        await each.aclose()
    opted = objstore.from_url(f"s3://{bucket}", {**options, "allow_pickle_secrets": "true"})
    assert secrets[0].encode() in pickle.dumps(opted)  # the documented opt-in
    await opted.aclose()


async def test_azure_secrets(
    azure_server: AzureServer, azure_container: str, debug_logs: pytest.LogCaptureFixture
) -> None:
    key = _canary_b64(64)
    encryption = _canary_b64(32)
    wrong_key = azure_server.options(azure_storage_account_key=key, **FAST)
    store = objstore.from_url(f"az://{azure_container}", wrong_key)
    with pytest.raises(objstore.ObjstoreError) as key_info:
        await store.put("k", b"x")
    sas = f"sv=2025-01-05&sp=r&se=2099-01-01&sig={CANARY}sasSig%3D"
    sas_store = objstore.from_url(f"az://{azure_container}", {
        "azure_storage_endpoint": azure_server.endpoint, "allow_http": "true",
        "azure_storage_sas_key": sas, "encryption_key": encryption, **FAST})  # fmt: skip
    with pytest.raises(objstore.ObjstoreError) as sas_info:
        await sas_store.get("k")
    secrets = [key, encryption, f"{CANARY}sasSig", CANARY]
    _assert_clean(secrets, store, store.config, sas_store, sas_store.config, key_info.value,
                  sas_info.value, records=debug_logs.records)  # fmt: skip
    for each in (store, sas_store):
        payload = pickle.dumps(each)
        assert CANARY.encode() not in payload
        assert key.encode() not in payload
        await each.aclose()


class Refusing:
    """Refuses every request with 403 (and records nothing)."""

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=403, text="<Error><Code>AuthenticationFailed</Code></Error>")


@pytest.fixture
async def refusing() -> AsyncIterator[str]:
    async with serve_handler(Refusing().handle) as url:
        yield url


async def test_token_secrets(refusing: str, debug_logs: pytest.LogCaptureFixture) -> None:
    bearer, client_secret = f"{CANARY}-bearer", f"{CANARY}-client-secret"
    stores = [
        objstore.from_url("az://data", {"azure_storage_endpoint": f"{refusing}/acct",
                                        "allow_http": "true", "bearer_token": bearer, **FAST}),
        objstore.from_url("az://data", {"azure_storage_endpoint": f"{refusing}/acct",
                                        "allow_http": "true", "client_id": "c", "tenant_id": "t",
                                        "client_secret": client_secret,
                                        "authority_host": refusing.replace("http", "https"),
                                        **FAST}),
        objstore.from_url("gs://bkt", {"google_base_url": refusing, "allow_http": "true",
                                       "google_bearer_token": bearer, **FAST}),
    ]  # fmt: skip
    errors = []
    for store in stores:
        with pytest.raises(PermissionError) as info:  # Unauthenticated or PermissionDenied
            await store.get("k")
        errors.append(info.value)
    _assert_clean([bearer, client_secret, CANARY], *stores, *(s.config for s in stores), *errors,
                  records=debug_logs.records)  # fmt: skip
    for store in stores:
        assert CANARY.encode() not in pickle.dumps(store)
        await store.aclose()


async def test_gcs_service_account_key(refusing: str, debug_logs: pytest.LogCaptureFixture) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()  # fmt: skip
    body = pem.splitlines()[5]  # a line from the middle of the key
    import json

    document = json.dumps({"type": "service_account", "private_key": pem, "private_key_id": "k",
                           "client_email": "sa@p.iam.gserviceaccount.com",
                           "token_uri": f"{refusing}/token"})  # fmt: skip
    options = {"google_base_url": refusing, "allow_http": "true",
               "google_service_account_key": document, **FAST}  # fmt: skip
    store = objstore.from_url("gs://bkt", options)
    with pytest.raises(objstore.UnauthenticatedError, match="HTTP 403") as info:
        await store.get("k")
    url = await store.sign("GET", "k")
    _assert_clean([body], store, store.config, info.value, url, records=debug_logs.records)
    assert body.encode() not in pickle.dumps(store)
    await store.aclose()
