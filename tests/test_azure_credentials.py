"""Azure token flows end to end against identity stand-ins on 127.0.0.1: the request that reaches
the identity endpoint is the one Azure expects, its token authorizes the Blob requests, and a
token near expiry is fetched anew."""

from __future__ import annotations

import json
import os
import stat
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from aiohttp import web

import objstore
from objstore.backends._azure_config import EMULATOR_KEY
from objstore.testing.emulators import AzureServer
from objstore.testing.standin import self_signed_tls, serve

TOKEN_PATH = "/metadata/identity/oauth2/token"


class Identity:
    """A Blob service and an identity endpoint in one stand-in: tokens ``tok-1``, ``tok-2`` …
    living ``ttl`` seconds; blob reads answer ``abc`` and record their Authorization."""

    def __init__(self) -> None:
        self.ttl = 3600
        self.token_requests: list[web.Request] = []
        self.authorizations: list[str | None] = []

    async def token(self, request: web.Request) -> web.Response:
        self.token_requests.append(request)
        await request.read()
        token = f"tok-{len(self.token_requests)}"
        return web.json_response({"access_token": token, "token_type": "Bearer",
                                  "expires_on": str(int(time.time()) + self.ttl),
                                  "resource": "https://storage.azure.com"})  # fmt: skip

    async def blob(self, request: web.Request) -> web.Response:
        self.authorizations.append(request.headers.get("Authorization"))
        headers = {"ETag": '"0x1"', "Last-Modified": "Thu, 26 Nov 2026 10:00:00 GMT"}
        return web.Response(body=b"abc", headers=headers)


@pytest.fixture
async def identity() -> AsyncIterator[tuple[Identity, str]]:
    server = Identity()
    app = web.Application()
    app.router.add_route("GET", TOKEN_PATH, server.token)
    app.router.add_route("*", "/acct/{tail:.*}", server.blob)
    async with serve(app) as url:
        yield server, url


def _options(url: str, **extra: str) -> dict[str, str]:
    return {"azure_storage_endpoint": f"{url}/acct", "allow_http": "true", **extra}


async def test_managed_identity_from_the_metadata_endpoint(
    identity: tuple[Identity, str],
) -> None:
    server, url = identity
    # the reference README's key; the account key must not win over it
    options = _options(url, azure_msi_endpoint=url + TOKEN_PATH, azure_client_id="user-mi",
                       use_managed_identity="true",
                       azure_storage_account_key=EMULATOR_KEY)  # fmt: skip
    async with objstore.from_url("az://data", options) as store:
        assert store.credential_source == "managed identity (client_id user-mi)"  # type: ignore[attr-defined]
        assert await store.get("k") == b"abc"
        assert await store.get("k") == b"abc"
    assert server.authorizations == ["Bearer tok-1", "Bearer tok-1"]  # cached
    (request,) = server.token_requests
    assert request.headers["Metadata"] == "true"
    assert request.query["resource"] == "https://storage.azure.com"
    assert request.query["api-version"] == "2019-08-01"
    assert request.query["client_id"] == "user-mi"


async def test_managed_identity_token_is_refreshed_before_expiry(
    identity: tuple[Identity, str],
) -> None:
    server, url = identity
    server.ttl = 60  # inside the 5-minute refresh margin: every use fetches a new one
    options = _options(url, azure_msi_endpoint=url + TOKEN_PATH,
                       azure_credential_type="managed_identity", object_id="obj-1")  # fmt: skip
    async with objstore.from_url("az://data", options) as store:
        for _ in range(3):
            assert await store.get("k") == b"abc"
    assert server.authorizations == ["Bearer tok-1", "Bearer tok-2", "Bearer tok-3"]
    assert server.token_requests[0].query["object_id"] == "obj-1"


async def test_app_service_identity_endpoint(
    identity: tuple[Identity, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, url = identity
    monkeypatch.delenv("AZURE_MSI_ENDPOINT")
    monkeypatch.setenv("IDENTITY_ENDPOINT", url + TOKEN_PATH)
    monkeypatch.setenv("IDENTITY_HEADER", "header-secret")
    options = _options(url, msi_resource_id="/subscriptions/s/rg/identity")
    async with objstore.from_url("az://data", options) as store:
        assert await store.get("k") == b"abc"
        assert "header-secret" not in repr(store.config)
    (request,) = server.token_requests
    assert request.headers["X-IDENTITY-HEADER"] == "header-secret"
    assert request.query["msi_res_id"] == "/subscriptions/s/rg/identity"
    assert server.authorizations == ["Bearer tok-1"]


async def test_unreachable_identity_endpoint_is_typed(identity: tuple[Identity, str]) -> None:
    _, url = identity
    options = _options(url, azure_msi_endpoint="http://127.0.0.1:9/none",
                       backoff_initial="1ms", max_retries="1")  # fmt: skip
    async with objstore.from_url("az://data", options) as store:
        with pytest.raises(objstore.UnauthenticatedError, match="managed-identity") as info:
            await store.get("k")
    assert "azure_storage_account_key" in str(info.value)  # names the flows tried before


async def test_azure_cli_token(
    identity: tuple[Identity, str], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, url = identity
    calls = tmp_path / "calls.txt"
    az = tmp_path / "az"
    reply = json.dumps({"accessToken": "cli-token", "tokenType": "Bearer",
                        "expires_on": int(time.time()) + 3600,
                        "expiresOn": "2099-01-01 00:00:00.000000"})  # fmt: skip
    az.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\necho '{reply}'\n")
    az.chmod(az.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    async with objstore.from_url("az://data", _options(url, use_azure_cli="true")) as store:
        assert store.credential_source == "Azure CLI"  # type: ignore[attr-defined]
        assert await store.get("k") == b"abc"
        assert await store.get("k") == b"abc"
    assert server.authorizations == ["Bearer cli-token", "Bearer cli-token"]
    (call,) = calls.read_text().splitlines()
    assert "get-access-token" in call
    assert "https://storage.azure.com" in call


# ---- Entra ID (service principal, workload identity) through azure-identity -------------------


class Entra:
    """An Entra ID stand-in: OpenID discovery and a v2 token endpoint per tenant."""

    def __init__(self) -> None:
        self.forms: list[dict[str, str]] = []
        self.base = ""

    async def discovery(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        root = f"{self.base}/{tenant}"
        return web.json_response({
            "token_endpoint": f"{root}/oauth2/v2.0/token",
            "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
            "issuer": f"{root}/v2.0", "device_authorization_endpoint": f"{root}/devicecode",
        })  # fmt: skip

    audience: str | None = None
    """When set, tokens are JWTs for this audience, as Entra ID issues them for Storage."""

    async def token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.forms.append({k: str(v) for k, v in form.items()})
        token = f"entra-{len(self.forms)}"
        if self.audience is not None:
            now = int(time.time())
            tenant = request.match_info["tenant"]
            claims = {"aud": self.audience, "iss": f"https://sts.windows.net/{tenant}/",
                      "iat": now, "nbf": now - 60, "exp": now + 3600, "oid": "o-1",
                      "tid": tenant, "appid": form.get("client_id")}  # fmt: skip
            token = jwt.encode(claims, "stand-in-signing-key-of-32-bytes!", algorithm="HS256")
        return web.json_response({"access_token": token, "token_type": "Bearer",
                                  "expires_in": 3600})  # fmt: skip


@pytest.fixture
async def entra(tmp_path: Any) -> AsyncIterator[tuple[Entra, str]]:
    server = Entra()
    app = web.Application()
    app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", server.discovery)
    app.router.add_post("/{tenant}/oauth2/v2.0/token", server.token)
    async with serve(app, self_signed_tls(str(tmp_path))[0]) as url:
        server.base = url
        yield server, url


async def test_service_principal_secret(
    identity: tuple[Identity, str], entra: tuple[Entra, str]
) -> None:
    blob, url = identity
    aad, authority = entra
    options = _options(url, azure_client_id="app-1", azure_tenant_id="tenant-1",
                       azure_client_secret="canary-secret", azure_authority_host=authority,
                       allow_invalid_certificates="true")  # fmt: skip
    async with objstore.from_url("az://data", options) as store:
        assert await store.get("k") == b"abc"
        assert await store.get("k") == b"abc"
        assert "canary" not in repr(store.config)
    (form,) = aad.forms
    assert form["grant_type"] == "client_credentials"
    assert (form["client_id"], form["client_secret"]) == ("app-1", "canary-secret")
    assert form["scope"] == "https://storage.azure.com/.default"
    assert blob.authorizations == ["Bearer entra-1", "Bearer entra-1"]


def _workload_identity(
    url: str, authority: str, tmp_path: Any, n: str, assertion: str
) -> tuple[Any, dict[str, str]]:
    """A federated token file holding ``assertion`` and options for app-``n`` in tenant-``n``."""
    token_file = tmp_path / "federated-token"
    token_file.write_text(assertion)
    options = _options(url, azure_client_id=f"app-{n}", azure_tenant_id=f"tenant-{n}",
                       azure_federated_token_file=str(token_file),
                       azure_authority_host=authority,
                       allow_invalid_certificates="true")  # fmt: skip
    return token_file, options


async def test_workload_identity_reads_the_token_file(
    identity: tuple[Identity, str], entra: tuple[Entra, str], tmp_path: Any
) -> None:
    blob, url = identity
    aad, authority = entra
    _, options = _workload_identity(url, authority, tmp_path, "2", "federated-assertion-1")
    async with objstore.from_url("az://data", options) as store:
        assert store.credential_source == "workload identity"  # type: ignore[attr-defined]
        assert await store.get("k") == b"abc"
    (form,) = aad.forms
    assert form["client_assertion"] == "federated-assertion-1"
    assert form["client_assertion_type"].endswith("jwt-bearer")
    assert form["client_id"] == "app-2"
    assert blob.authorizations == ["Bearer entra-1"]


async def test_workload_identity_reads_a_rotated_assertion_on_refresh(
    identity: tuple[Identity, str], entra: tuple[Entra, str], tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    blob, url = identity
    aad, authority = entra
    token_file, options = _workload_identity(url, authority, tmp_path, "4", "assertion-1")
    async with objstore.from_url("az://data", options) as store:
        assert await store.get("k") == b"abc"
        token_file.write_text("assertion-2")  # the kubelet rotates the projected token
        later = time.time() + 3 * 3600  # past the token's hour and the file's re-read interval
        monkeypatch.setattr(time, "time", lambda: later)
        assert await store.get("k") == b"abc"
    assert [form["client_assertion"] for form in aad.forms] == ["assertion-1", "assertion-2"]
    assert blob.authorizations == ["Bearer entra-1", "Bearer entra-2"]


async def test_entra_token_reaches_azurite_end_to_end(
    azure_oauth_server: AzureServer, entra: tuple[Entra, str]
) -> None:
    aad, authority = entra
    aad.audience = "https://storage.azure.com"
    container = f"t-{uuid.uuid4().hex[:12]}"
    azure_oauth_server.create_container(container)
    options = {"azure_storage_endpoint": azure_oauth_server.endpoint,
               "azure_storage_client_id": "app-3", "azure_storage_tenant_id": "tenant-3",
               "azure_storage_client_secret": "s", "azure_storage_authority_host": authority,
               "allow_invalid_certificates": "true"}  # fmt: skip
    try:
        async with objstore.from_url(f"az://{container}", options) as store:
            await store.put("a/b", b"with an Entra token")
            assert await store.get("a/b") == b"with an Entra token"
            await store.copy("a/b", "a/c")
            assert [m.location for m in await store.list("a")] == ["a/b", "a/c"]
            await store.delete_many(["a/b", "a/c"])
            assert await store.list("a") == []
            await store.put("a/b", b"with an Entra token")
        aad.audience = "https://vault.azure.net"  # a token for another resource is refused
        async with objstore.from_url(f"az://{container}", options) as store:
            with pytest.raises(objstore.UnauthenticatedError):
                await store.get("a/b")
    finally:
        azure_oauth_server.delete_container(container)


# ---- Microsoft Fabric's token service ----------------------------------------------------------


def _storage_jwt(lifetime: int, serial: int = 0) -> str:
    """A token shaped as Entra ID issues them for Storage (Azurite's OAuth mode checks these
    claims, not the signature)."""
    now = int(time.time())
    claims = {"aud": "https://storage.azure.com", "iss": "https://sts.windows.net/tenant-f/",
              "iat": now, "nbf": now - 60, "exp": now + lifetime, "oid": "o-f", "tid": "tenant-f",
              "serial": serial}  # fmt: skip
    return jwt.encode(claims, "stand-in-signing-key-of-32-bytes!", algorithm="HS256")


class Fabric:
    """A Fabric token service stand-in: the body of the answer is the token."""

    def __init__(self) -> None:
        self.lifetime = 3600
        self.status = 200
        self.requests: list[web.Request] = []
        self.tokens: list[str] = []

    async def token(self, request: web.Request) -> web.Response:
        self.requests.append(request)
        if self.status != 200:
            return web.Response(status=self.status, text="SignedPayloadValidationException")
        self.tokens.append(_storage_jwt(self.lifetime, len(self.requests)))
        return web.Response(text=self.tokens[-1])


FABRIC = {
    "fabric_workload_host": "https://workload.example",
    "fabric_session_token": "session-secret",
    "fabric_cluster_identifier": "cluster-7",
}


@pytest.fixture
async def fabric(
    identity: tuple[Identity, str],
) -> AsyncIterator[tuple[Fabric, Identity, dict[str, str]]]:
    """The Fabric stand-in, the Blob stand-in, and store options that reach both."""
    service = Fabric()
    app = web.Application()
    app.router.add_get("/api/v1/token", service.token)
    blobs, blob_url = identity
    async with serve(app) as url:
        yield (
            service,
            blobs,
            _options(blob_url, **FABRIC, fabric_token_service_url=url + "/api/v1/token"),
        )


async def test_fabric_token_service(fabric: tuple[Fabric, Identity, dict[str, str]]) -> None:
    service, blobs, options = fabric
    options = {**options, "azure_storage_account_key": EMULATOR_KEY}  # Fabric comes first
    async with objstore.from_url("az://data", options) as store:
        assert store.credential_source == "Fabric token service"  # type: ignore[attr-defined]
        assert await store.get("k") == b"abc"
        assert await store.get("k") == b"abc"
        assert "session-secret" not in repr(store.config)
    (request,) = service.requests  # cached: one token serves both reads
    assert request.query["resource"] == "https://storage.azure.com"
    assert request.headers["x-ms-partner-token"] == "session-secret"
    assert request.headers["x-ms-cluster-identifier"] == "cluster-7"
    assert request.headers["x-ms-workload-resource-moniker"] == "cluster-7"
    assert request.headers["x-ms-proxy-host"] == "https://workload.example"
    assert blobs.authorizations == [f"Bearer {service.tokens[0]}"] * 2


async def test_fabric_tokens_are_refreshed_by_their_jwt_expiry(
    fabric: tuple[Fabric, Identity, dict[str, str]],
) -> None:
    service, blobs, options = fabric
    service.lifetime = 120  # inside the 5-minute margin: each use asks again
    async with objstore.from_url("az://data", options) as store:
        for _ in range(3):
            assert await store.get("k") == b"abc"
    assert len(service.requests) == 3
    assert blobs.authorizations == [f"Bearer {t}" for t in service.tokens]
    assert len(set(service.tokens)) == 3


async def test_fabric_uses_a_given_bearer_token_while_it_lasts(
    fabric: tuple[Fabric, Identity, dict[str, str]],
) -> None:
    service, blobs, options = fabric
    fresh = _storage_jwt(3600)
    async with objstore.from_url("az://data", {**options, "bearer_token": fresh}) as store:
        assert await store.get("k") == b"abc"
    assert service.requests == []
    assert blobs.authorizations == [f"Bearer {fresh}"]
    near_expiry = _storage_jwt(60)
    async with objstore.from_url("az://data", {**options, "bearer_token": near_expiry}) as store:
        assert await store.get("k") == b"abc"
    assert len(service.requests) == 1
    assert blobs.authorizations[-1] == f"Bearer {service.tokens[0]}"


async def test_fabric_refusal_and_half_configuration_are_typed(
    fabric: tuple[Fabric, Identity, dict[str, str]],
) -> None:
    service, _, options = fabric
    service.status = 401
    async with objstore.from_url("az://data", options) as store:
        with pytest.raises(
            objstore.UnauthenticatedError, match="Fabric token service answered 401"
        ) as info:
            await store.get("k")
    assert "session-secret" not in str(info.value)
    half = {k: v for k, v in options.items() if k != "fabric_cluster_identifier"}
    with pytest.raises(objstore.ConfigError, match="azure_fabric_cluster_identifier") as error:
        objstore.from_url("az://data", half)
    assert "session-secret" not in str(error.value)


async def test_fabric_token_reaches_azurite_end_to_end(
    azure_oauth_server: AzureServer, fabric: tuple[Fabric, Identity, dict[str, str]]
) -> None:
    service, _, options = fabric
    container = f"t-{uuid.uuid4().hex[:12]}"
    azure_oauth_server.create_container(container)
    options = {**options, "azure_storage_endpoint": azure_oauth_server.endpoint,
               "allow_invalid_certificates": "true"}  # fmt: skip
    try:
        async with objstore.from_url(f"az://{container}", options) as store:
            await store.put("f", b"with a Fabric token")
            assert await store.get("f") == b"with a Fabric token"
        assert len(service.requests) == 1
    finally:
        azure_oauth_server.delete_container(container)


def test_credentials_of_closed_event_loops_are_dropped() -> None:
    import asyncio

    from objstore.backends._azure_auth import TokenCredentialAuth, _Token

    class Expiring:
        async def get_token(self, *scopes: str) -> _Token:
            return _Token("t", time.time() + 60)  # inside the margin: each use asks again

    made: list[Expiring] = []

    def make() -> Expiring:
        made.append(Expiring())
        return made[-1]

    auth = TokenCredentialAuth(make, "test")
    for _ in range(3):  # a blocking caller running each call in a fresh loop
        assert asyncio.run(auth.token()) == "t"
    assert len(made) == 3
    assert len(auth._credentials) == 1  # only the last loop's, not one per dead loop
