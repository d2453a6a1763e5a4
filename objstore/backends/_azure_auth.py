"""How an Azure Blob request is authorized: Shared Key, a SAS token, a bearer token or nothing.

Each source turns a request (method, path, query, headers) into a signed one. Shared Key
signing follows the Blob service's documented string-to-sign (version 2015-02-21 and later:
an empty Content-Length for an empty body). Token credentials of azure-identity plug in through
:class:`TokenCredentialAuth`, which caches the token and refreshes it before it expires.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from objstore._errors import ConfigError
from objstore.backends._azure_config import EMULATOR_KEY

if TYPE_CHECKING:
    from objstore._config import Config
    from objstore.backends._azure_config import AccountEndpoint

__all__ = [
    "STORAGE_SCOPE",
    "AnonymousAuth",
    "AzureAuth",
    "BearerAuth",
    "SasAuth",
    "SharedKeyAuth",
    "TokenCredentialAuth",
    "auth_from_config",
    "string_to_sign",
]

STORAGE_SCOPE = "https://storage.azure.com/.default"
REFRESH_MARGIN = 300.0
"""Seconds before a token's expiry at which it is fetched anew."""

_SIGNED_HEADERS = (
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-MD5",
    "Content-Type",
    "Date",
    "If-Modified-Since",
    "If-Match",
    "If-None-Match",
    "If-Unmodified-Since",
    "Range",
)


class AzureAuth:
    """Anonymous access: the base of the credential sources (``describe`` says which)."""

    description = "anonymous"
    query: tuple[tuple[str, str], ...] = ()
    """Query parameters every request carries (a SAS token's), already percent-encoded."""
    can_sign_urls = False

    async def authorize(
        self,
        method: str,
        path: str,
        params: Sequence[tuple[str, str]],
        headers: MutableMapping[str, str],
    ) -> None:
        """Add what authorizes this request to ``headers``."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} ({self.description})>"


AnonymousAuth = AzureAuth


def string_to_sign(
    account: str,
    method: str,
    path: str,
    params: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
) -> str:
    """The Shared Key string-to-sign of a Blob service request.

    ``path`` is the request's percent-encoded URL path; ``params`` its decoded query.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    lines = [method.upper()]
    for name in _SIGNED_HEADERS:
        value = lowered.get(name.lower(), "")
        if name == "Content-Length" and value == "0":
            value = ""
        lines.append(value)
    for name in sorted(n for n in lowered if n.startswith("x-ms-")):
        lines.append(f"{name}:{' '.join(lowered[name].split())}")
    resource = f"/{account}{path}"
    grouped: dict[str, list[str]] = {}
    for name, value in params:
        grouped.setdefault(name.lower(), []).append(value)
    for name in sorted(grouped):
        resource += f"\n{name}:{','.join(sorted(grouped[name]))}"
    lines.append(resource)
    return "\n".join(lines)


class SharedKeyAuth(AzureAuth):
    """Shared Key: an HMAC-SHA256 of the request under the account key."""

    description = "shared key"
    can_sign_urls = True

    def __init__(self, account: str, key: str) -> None:
        try:
            self._key = base64.b64decode(key, validate=True)
        except ValueError:
            raise ConfigError("azure_storage_account_key is not valid base64") from None
        self.account = account
        self.account_key = key

    def sign(self, text: str) -> str:
        """Base64 HMAC-SHA256 of ``text`` under the account key."""
        digest = hmac.new(self._key, text.encode(), hashlib.sha256).digest()
        return base64.b64encode(digest).decode()

    async def authorize(
        self,
        method: str,
        path: str,
        params: Sequence[tuple[str, str]],
        headers: MutableMapping[str, str],
    ) -> None:
        signature = self.sign(string_to_sign(self.account, method, path, params, headers))
        headers["Authorization"] = f"SharedKey {self.account}:{signature}"

    def __reduce__(self) -> Any:
        raise TypeError("an Azure account key is not pickled")


class SasAuth(AzureAuth):
    """A SAS token appended to every request's query."""

    description = "SAS token"

    def __init__(self, token: str) -> None:
        token = token.strip().lstrip("?")
        pairs = [tuple(p.split("=", 1)) for p in token.split("&") if p]
        if not pairs or any(len(p) != 2 for p in pairs) or "sig" not in {p[0] for p in pairs}:
            raise ConfigError(
                "azure_storage_sas_key is not a SAS token (expected 'sv=…&sig=…')",
            )
        self.query = tuple((name, value) for name, value in pairs)


class BearerAuth(AzureAuth):
    """A static OAuth bearer token (never refreshed)."""

    description = "static bearer token"

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    async def authorize(
        self,
        method: str,
        path: str,
        params: Sequence[tuple[str, str]],
        headers: MutableMapping[str, str],
    ) -> None:
        headers["Authorization"] = self._header

    def __reduce__(self) -> Any:
        raise TypeError("an Azure bearer token is not pickled")


class TokenCredential(Protocol):
    """azure-identity's async credential protocol (the part this module uses)."""

    async def get_token(self, *scopes: str) -> Any: ...


class TokenCredentialAuth(AzureAuth):
    """OAuth tokens from an azure-identity async credential, refreshed before they expire.

    ``make`` builds the credential; it is called once per event loop (azure-identity's async
    credentials hold a session of the loop that first used them). The token is shared.
    """

    def __init__(self, make: Callable[[], TokenCredential], description: str) -> None:
        self._make = make
        self.description = description
        self._credentials: dict[asyncio.AbstractEventLoop, TokenCredential] = {}
        self._token: str | None = None
        self._expires = 0.0

    async def token(self) -> str:
        """A token valid for at least :data:`REFRESH_MARGIN` more seconds."""
        if self._token is None or time.time() >= self._expires - REFRESH_MARGIN:
            loop = asyncio.get_running_loop()
            credential = self._credentials.get(loop)
            if credential is None:
                credential = self._credentials[loop] = self._make()
            access = await credential.get_token(STORAGE_SCOPE)
            self._token, self._expires = str(access.token), float(access.expires_on)
        return self._token

    async def authorize(
        self,
        method: str,
        path: str,
        params: Sequence[tuple[str, str]],
        headers: MutableMapping[str, str],
    ) -> None:
        headers["Authorization"] = f"Bearer {await self.token()}"

    async def close(self) -> None:
        """Close this event loop's credential (its HTTP session)."""
        with contextlib.suppress(RuntimeError):
            credential = self._credentials.pop(asyncio.get_running_loop(), None)
            closer = getattr(credential, "close", None)
            if closer is not None:
                await closer()

    def __reduce__(self) -> Any:
        raise TypeError("an Azure token credential is not pickled")


def _identity(name: str) -> Any:
    """A class of ``azure.identity.aio`` (imported on first use: it is slow to import)."""
    import azure.identity.aio

    return getattr(azure.identity.aio, name)


def _reveal(value: Any) -> str | None:
    return value.reveal() if value else None


def auth_from_config(config: Config, endpoint: AccountEndpoint) -> AzureAuth:
    """The credential source the configuration names, in object_store's ``auto`` order.

    ``azure_skip_signature`` wins; then ``azure_credential_type`` if not ``auto``; then a bearer
    token, an account key, workload identity, a service principal, a SAS token, the Azure CLI
    (when enabled) and, last, managed identity. The emulator falls back to its well-known key.

    Raises:
        ConfigError: the chosen source lacks a key it needs.
    """
    if config["azure_skip_signature"]:
        return AnonymousAuth()
    kind = str(config["azure_credential_type"])
    client_id = config.get("azure_storage_client_id")
    tenant = config.get("azure_storage_tenant_id")
    token_file = config.get("azure_federated_token_file")
    secret = config.get("azure_storage_client_secret")
    authority = config.get("azure_storage_authority_host")
    key = config.get("azure_storage_account_key")
    if kind == "auto":
        if config.get("azure_storage_token"):
            kind = "bearer_token"
        elif key or (endpoint.emulator and not config.get("azure_storage_sas_key")):
            kind = "access_key"
        elif client_id and tenant and token_file:
            kind = "workload_identity"
        elif client_id and tenant and secret:
            kind = "client_secret"
        elif config.get("azure_storage_sas_key"):
            kind = "sas_token"
        elif config["azure_use_azure_cli"]:
            kind = "azure_cli"
        else:
            kind = "managed_identity"
    extra: dict[str, Any] = {"authority": str(authority)} if authority else {}

    def need(*names: str) -> None:
        missing = [n for n in names if not config.get(n)]
        if missing:
            raise ConfigError(
                f"azure_credential_type={kind!r} needs " + " and ".join(repr(m) for m in missing)
            )

    if kind == "bearer_token":
        need("azure_storage_token")
        return BearerAuth(config["azure_storage_token"].reveal())
    if kind == "access_key":
        secret_key = _reveal(key) or (EMULATOR_KEY if endpoint.emulator else None)
        if secret_key is None:
            need("azure_storage_account_key")
        assert secret_key is not None
        return SharedKeyAuth(endpoint.account, secret_key)
    if kind == "sas_token":
        need("azure_storage_sas_key")
        return SasAuth(config["azure_storage_sas_key"].reveal())
    if kind == "client_secret":
        need("azure_storage_client_id", "azure_storage_tenant_id", "azure_storage_client_secret")
        return TokenCredentialAuth(
            lambda: _identity("ClientSecretCredential")(
                str(tenant), str(client_id), _reveal(secret), **extra
            ),
            "service principal (client secret)",
        )
    if kind == "workload_identity":
        need("azure_storage_client_id", "azure_storage_tenant_id", "azure_federated_token_file")
        return TokenCredentialAuth(
            lambda: _identity("WorkloadIdentityCredential")(
                tenant_id=str(tenant), client_id=str(client_id),
                token_file_path=str(token_file), **extra,
            ),
            "workload identity",
        )  # fmt: skip
    if kind == "azure_cli":
        return TokenCredentialAuth(
            lambda: _identity("AzureCliCredential")(),  # noqa: PLW0108  (import on first use)
            "Azure CLI",
        )
    identity: dict[str, Any] = {}
    if config.get("azure_object_id"):
        identity = {"identity_config": {"object_id": str(config["azure_object_id"])}}
    elif config.get("azure_msi_resource_id"):
        identity = {"identity_config": {"msi_res_id": str(config["azure_msi_resource_id"])}}
    elif client_id:
        identity = {"client_id": str(client_id)}
    return TokenCredentialAuth(
        lambda: _identity("ManagedIdentityCredential")(**identity), "managed identity"
    )
