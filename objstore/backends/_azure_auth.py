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
import json
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from objstore._errors import ConfigError, UnauthenticatedError
from objstore.backends._azure_config import EMULATOR_KEY

if TYPE_CHECKING:
    from objstore._config import Config
    from objstore.backends._azure_config import AccountEndpoint

__all__ = [
    "STORAGE_SCOPE",
    "FabricTokenCredential",
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
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)


class AzureAuth:
    """Anonymous access: the base of the credential sources (``describe`` says which)."""

    description = "anonymous"
    query: tuple[tuple[str, str], ...] = ()
    """Query parameters every request carries (a SAS token's), already percent-encoded."""

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
    get = lowered.get
    lines = [method.upper(), *[get(name, "") for name in _SIGNED_HEADERS]]
    if lines[3] == "0":  # Content-Length: empty for an empty body (version 2015-02-21 on)
        lines[3] = ""
    for name in sorted(n for n in lowered if n.startswith("x-ms-")):
        value = lowered[name]
        lines.append(f"{name}:{' '.join(value.split()) if '  ' in value else value.strip()}")
    resource = f"/{account}{path}"
    if params:
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

    def __init__(
        self, make: Callable[[], TokenCredential], description: str, *, tried: str = ""
    ) -> None:
        self._make = make
        self.description = description
        self._tried = tried
        self._credentials: dict[asyncio.AbstractEventLoop, TokenCredential] = {}
        self._token: str | None = None
        self._expires = 0.0

    async def token(self) -> str:
        """A token valid for at least :data:`REFRESH_MARGIN` more seconds."""
        if self._token is None or time.time() >= self._expires - REFRESH_MARGIN:
            loop = asyncio.get_running_loop()
            credential = self._credentials.get(loop)
            if credential is None:
                for closed in [old for old in self._credentials if old.is_closed()]:
                    del self._credentials[closed]  # its session died with its loop
                credential = self._credentials[loop] = self._make()
            try:
                access = await credential.get_token(STORAGE_SCOPE)
            except UnauthenticatedError as exc:
                raise UnauthenticatedError(f"{exc}{self._tried}", status=exc.status) from None
            except Exception as exc:  # azure-identity's ClientAuthenticationError and kin
                raise UnauthenticatedError(
                    f"no Azure token from {self.description}: {type(exc).__name__}{self._tried}"
                ) from None
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


IMDS_ENDPOINT = "http://169.254.169.254/metadata/identity/oauth2/token"
STORAGE_RESOURCE = "https://storage.azure.com"


class _Token:
    """An access token and its expiry (what azure-identity's ``get_token`` returns)."""

    def __init__(self, token: str, expires_on: float) -> None:
        self.token = token
        self.expires_on = expires_on


class _TokenEndpoint:
    """A credential that asks one HTTP endpoint for tokens, on a session of its own made on
    first use (inside the event loop that uses it)."""

    _session: Any = None

    def _client(self) -> Any:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class ManagedIdentityCredential(_TokenEndpoint):
    """Managed identity from the instance metadata service, or the App Service / Functions
    identity endpoint (``IDENTITY_ENDPOINT`` with ``IDENTITY_HEADER``).

    Written here rather than taken from azure-identity, whose credential reads its endpoint
    only from the process environment: a store's ``azure_msi_endpoint`` must reach it.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        identity: tuple[str, str] | None = None,
        identity_header: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.identity = identity
        self.identity_header = identity_header

    async def get_token(self, *scopes: str) -> _Token:
        """Ask the endpoint for a Storage token.

        Raises:
            UnauthenticatedError: the endpoint is unreachable or refuses.
        """
        import aiohttp

        params = {"api-version": "2019-08-01", "resource": STORAGE_RESOURCE}
        if self.identity is not None:
            params[self.identity[0]] = self.identity[1]
        headers = {"Metadata": "true"}
        if self.identity_header:
            headers["X-IDENTITY-HEADER"] = self.identity_header
        try:
            async with self._client().get(self.endpoint, params=params, headers=headers) as reply:
                body = await reply.json(content_type=None)
                if reply.status != 200:
                    raise UnauthenticatedError(
                        f"the managed-identity endpoint answered {reply.status}: "
                        f"{str(body.get('error_description') or body.get('error') or '')[:200]}",
                        status=reply.status,
                    )
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise UnauthenticatedError(
                f"no managed-identity token from {self.endpoint}: {type(exc).__name__}"
            ) from None
        return _Token(str(body["access_token"]), float(body["expires_on"]))


FABRIC_KEYS = (
    "azure_fabric_token_service_url",
    "azure_fabric_workload_host",
    "azure_fabric_session_token",
    "azure_fabric_cluster_identifier",
)


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT (read, not verified), or ``None`` when it has none."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None


class FabricTokenCredential(_TokenEndpoint):
    """Storage tokens from Microsoft Fabric's token service (Fabric notebooks and Spark).

    ``GET <service URL>?resource=https://storage.azure.com`` with the session token as
    ``x-ms-partner-token``, the cluster identifier (also as the workload resource moniker) and
    the workload host as ``x-ms-proxy-host``; the body is the token itself, whose JWT ``exp``
    claim says when it expires (an hour when it has none). A bearer token given beside it
    (``azure_storage_token``) is used first while it has more than the refresh margin left.
    """

    def __init__(
        self,
        service_url: str,
        workload_host: str,
        session_token: str,
        cluster_identifier: str,
        *,
        initial_token: str | None = None,
    ) -> None:
        self.service_url = service_url
        self._headers = {
            "x-ms-partner-token": session_token,
            "x-ms-cluster-identifier": cluster_identifier,
            "x-ms-workload-resource-moniker": cluster_identifier,
            "x-ms-proxy-host": workload_host,
        }
        self._initial = initial_token

    def __repr__(self) -> str:
        return f"FabricTokenCredential({self.service_url!r})"

    async def get_token(self, *scopes: str) -> _Token:
        """A Storage token: the initial one while it lasts, else one from the service.

        Raises:
            UnauthenticatedError: the service is unreachable, refuses or answers nothing.
        """
        import aiohttp

        if self._initial is not None:
            initial, self._initial = self._initial, None
            expires = jwt_expiry(initial)
            if expires is not None and expires - time.time() > REFRESH_MARGIN:
                return _Token(initial, expires)
        params = {"resource": STORAGE_RESOURCE}
        try:
            async with self._client().get(
                self.service_url, params=params, headers=self._headers
            ) as reply:
                body = (await reply.text()).strip()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UnauthenticatedError(
                f"no token from the Fabric token service {self.service_url}: {type(exc).__name__}"
            ) from None
        if reply.status != 200 or not body:
            raise UnauthenticatedError(
                f"the Fabric token service answered {reply.status}"
                + ("" if body else " with no token"),
                status=reply.status,
            )
        return _Token(body, jwt_expiry(body) or time.time() + 3600)


def _fabric(config: Config) -> TokenCredentialAuth | None:
    """The Fabric token flow when its four keys are set; a half-set Fabric is an error."""
    given = [k for k in FABRIC_KEYS if config.get(k)]
    if not given:
        return None
    missing = [k for k in FABRIC_KEYS if k not in given]
    if missing:
        raise ConfigError(
            "the Fabric token flow needs "
            + " and ".join(repr(k) for k in missing)
            + " besides "
            + " and ".join(repr(k) for k in given)
        )
    url, host, session, cluster = (config[k] for k in FABRIC_KEYS)
    initial = config.get("azure_storage_token")
    return TokenCredentialAuth(
        lambda: FabricTokenCredential(
            str(url), str(host), session.reveal(), str(cluster),
            initial_token=initial.reveal() if initial else None,
        ),
        "Fabric token service",
    )  # fmt: skip


def _identity(name: str) -> Any:
    """A class of ``azure.identity.aio`` (imported on first use: it is slow to import)."""
    import azure.identity.aio

    return getattr(azure.identity.aio, name)


def _reveal(value: Any) -> str | None:
    return value.reveal() if value else None


def auth_from_config(
    config: Config, endpoint: AccountEndpoint, environ: Mapping[str, str]
) -> AzureAuth:
    """The credential source the configuration names, in object_store's ``auto`` order.

    ``azure_skip_signature`` wins; then ``azure_credential_type`` if not ``auto``; then Fabric's
    token service (its four keys), a bearer token, an account key, workload identity, a service
    principal, a SAS token, the Azure CLI (when enabled) and, last, managed identity. The
    emulator falls back to its well-known key.

    Raises:
        ConfigError: the chosen source lacks a key it needs.
    """
    if config["azure_skip_signature"]:
        return AnonymousAuth()
    kind = str(config["azure_credential_type"])
    if kind == "auto" and config["azure_use_managed_identity"]:
        kind = "managed_identity"
    client_id = config.get("azure_storage_client_id")
    tenant = config.get("azure_storage_tenant_id")
    token_file = config.get("azure_federated_token_file")
    secret = config.get("azure_storage_client_secret")
    authority = config.get("azure_storage_authority_host")
    key = config.get("azure_storage_account_key")
    fallback = False
    if kind == "auto":
        fabric = _fabric(config)
        if fabric is not None:
            return fabric
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
            fallback = True
    # A chosen authority host (sovereign or private clouds, test stand-ins) is used as given:
    # MSAL's instance discovery would ask login.microsoftonline.com to vouch for it.
    extra: dict[str, Any] = (
        {"authority": str(authority), "disable_instance_discovery": True} if authority else {}
    )
    if config["allow_invalid_certificates"]:
        extra["connection_verify"] = False

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
    identity = _user_assigned(config)
    described = (
        f"managed identity ({identity[0]} {identity[1]})" if identity else "managed identity"
    )
    tried = (
        "; no other Azure credential is configured (azure_storage_token, "
        "azure_storage_account_key, workload identity, service principal, "
        "azure_storage_sas_key, azure_use_azure_cli), so managed identity was the last resort"
        if fallback
        else ""
    )
    return TokenCredentialAuth(lambda: _managed_identity(config, environ), described, tried=tried)


def _user_assigned(config: Config) -> tuple[str, str] | None:
    """The user-assigned identity named by the options (ids, not secrets), if any."""
    for key, name in (
        ("azure_object_id", "object_id"),
        ("azure_msi_resource_id", "msi_res_id"),
        ("azure_storage_client_id", "client_id"),
    ):
        if config.get(key):
            return name, str(config[key])
    return None


def _managed_identity(config: Config, environ: Mapping[str, str]) -> ManagedIdentityCredential:
    """The managed-identity credential of ``azure_msi_endpoint`` (or ``IDENTITY_ENDPOINT``,
    else the instance metadata service) and the user-assigned identity, if one is named."""
    endpoint = str(config.get("azure_msi_endpoint") or IMDS_ENDPOINT)
    return ManagedIdentityCredential(
        endpoint, identity=_user_assigned(config), identity_header=environ.get("IDENTITY_HEADER")
    )
