"""GCS token flows end to end against stand-ins on 127.0.0.1: a service account's signed JWT
exchanged at its ``token_uri`` (the stand-in checks the signature with the public key), an
``authorized_user`` refresh token, and the metadata server; each token then authorizes the
JSON-API requests."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import objstore
from objstore.testing.standin import serve

SCOPE = "https://www.googleapis.com/auth/devstorage.full_control"


class Google:
    """OAuth token endpoint, metadata server and a JSON-API object route in one stand-in."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.base = ""
        self.ttl = 3600
        self.grants: list[dict[str, Any]] = []
        self.metadata_requests: list[web.Request] = []
        self.authorizations: list[str | None] = []

    def private_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()  # fmt: skip

    async def token(self, request: web.Request) -> web.Response:
        form: dict[str, Any] = dict(await request.post())
        if form.get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            claims = jwt.decode(str(form["assertion"]), self.key.public_key(),
                                algorithms=["RS256"], audience=f"{self.base}/token")  # fmt: skip
            form["claims"] = claims
        self.grants.append(form)
        return web.json_response({"access_token": f"google-{len(self.grants)}",
                                  "expires_in": self.ttl, "token_type": "Bearer"})  # fmt: skip

    async def metadata(self, request: web.Request) -> web.Response:
        self.metadata_requests.append(request)
        if request.headers.get("Metadata-Flavor") != "Google":
            return web.Response(status=403)
        return web.json_response({"access_token": f"gce-{len(self.metadata_requests)}",
                                  "expires_in": self.ttl, "token_type": "Bearer"})  # fmt: skip

    async def object(self, request: web.Request) -> web.Response:
        self.authorizations.append(request.headers.get("Authorization"))
        return web.json_response({"name": "k", "size": "3", "etag": "e1", "generation": "7",
                                  "updated": "2026-11-26T00:00:00Z"})  # fmt: skip


@pytest.fixture
async def google() -> AsyncIterator[Google]:
    server = Google()
    app = web.Application()
    app.router.add_post("/token", server.token)
    app.router.add_get(
        "/computeMetadata/v1/instance/service-accounts/default/token", server.metadata
    )
    app.router.add_get("/storage/v1/b/{bucket}/o/{name}", server.object)
    async with serve(app) as url:
        server.base = url
        yield server


def _service_account(google: Google) -> str:
    return json.dumps({
        "type": "service_account", "project_id": "p", "private_key_id": "kid-1",
        "private_key": google.private_pem(), "client_email": "sa@p.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": f"{google.base}/token",
    })  # fmt: skip


def _options(google: Google, **extra: str) -> dict[str, str]:
    # google_base_url points the data path at the stand-in; credentials come from ``extra``
    return {"google_base_url": google.base, "allow_http": "true", **extra}


@pytest.mark.parametrize("form", ["path", "string"])
async def test_service_account_jwt_is_signed_and_exchanged(
    google: Google, tmp_path: Any, form: str
) -> None:
    document = _service_account(google)
    if form == "path":
        path = tmp_path / "sa.json"
        path.write_text(document)
        options = _options(google, google_service_account=str(path))
    else:
        options = _options(google, google_service_account_key=document)
    async with objstore.from_url("gs://bkt", options) as store:
        assert (await store.head("k")).size == 3
        assert (await store.head("k")).size == 3
        assert "PRIVATE KEY" not in repr(store.config)
    (grant,) = google.grants
    claims = grant["claims"]
    assert claims["iss"] == "sa@p.iam.gserviceaccount.com"
    assert claims["scope"] == SCOPE
    assert claims["exp"] > time.time()
    assert google.authorizations == ["Bearer google-1", "Bearer google-1"]


async def test_authorized_user_refresh_token(google: Google, tmp_path: Any) -> None:
    adc = tmp_path / "adc.json"
    adc.write_text(json.dumps({"type": "authorized_user", "client_id": "cid",
                               "client_secret": "csecret", "refresh_token": "rtoken",
                               "token_uri": f"{google.base}/token"}))  # fmt: skip
    async with objstore.from_url(
        "gs://bkt", _options(google, google_application_credentials=str(adc))
    ) as store:
        await store.head("k")
    (grant,) = google.grants
    assert grant["grant_type"] == "refresh_token"
    assert (grant["refresh_token"], grant["client_id"], grant["client_secret"]) == (
        "rtoken", "cid", "csecret",
    )  # fmt: skip
    assert google.authorizations == ["Bearer google-1"]


async def test_metadata_server_tokens_are_refreshed_before_expiry(
    google: Google, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from objstore.backends import gcs

    monkeypatch.setenv("GCE_METADATA_HOST", google.base.removeprefix("http://"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))  # no gcloud ADC file here
    # The stand-in plays storage.googleapis.com: without credentials a store of Google's own
    # service (not an emulator) asks the metadata server.
    monkeypatch.setattr(gcs, "DEFAULT_BASE_URL", google.base)
    google.ttl = 60  # inside the 5-minute margin: every request fetches a new token
    async with objstore.from_url("gs://bkt", _options(google)) as store:
        assert store.credential_source == "metadata server"  # type: ignore[attr-defined]
        await store.head("k")
        await store.head("k")
    assert google.authorizations == ["Bearer gce-1", "Bearer gce-2"]
    assert all(r.headers["Metadata-Flavor"] == "Google" for r in google.metadata_requests)


async def test_unreachable_metadata_server_is_typed(
    google: Google, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from objstore.backends import gcs

    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))
    monkeypatch.setattr(gcs, "DEFAULT_BASE_URL", google.base)
    async with objstore.from_url("gs://bkt", _options(google)) as store:
        with pytest.raises(objstore.UnauthenticatedError, match="metadata server") as info:
            await store.head("k")
    assert "google_service_account" in str(info.value)  # names the flows tried before
