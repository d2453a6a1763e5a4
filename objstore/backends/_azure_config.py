"""Azure Blob Storage configuration keys (object_store's names, aliases, environment) and URLs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from objstore._config import (
    COMMON_KEYS,
    ConfigKey,
    ConfigTable,
    cloud_client_keys,
    parse_bool,
    parse_choice,
)
from objstore._errors import ConfigError, InvalidURLError
from objstore._path import prefix_from_url

if TYPE_CHECKING:
    from urllib.parse import SplitResult

    from objstore._config import Config

__all__ = [
    "AZURE_TABLE",
    "CREDENTIAL_TYPES",
    "EMULATOR_ACCOUNT",
    "EMULATOR_KEY",
    "AccountEndpoint",
    "check_container",
    "parse_azure_url",
    "resolve_endpoint",
]

EMULATOR_ACCOUNT = "devstoreaccount1"
EMULATOR_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
"""Azurite's well-known account key (public: it is in Microsoft's documentation)."""
EMULATOR_URL = "http://127.0.0.1:10000"
CREDENTIAL_TYPES = (
    "auto", "bearer_token", "access_key", "client_secret", "workload_identity", "sas_token",
    "azure_cli", "managed_identity",
)  # fmt: skip

_AZURE_KEYS = (
    ConfigKey("azure_storage_account_name", aliases=("account_name",),
              env=("AZURE_STORAGE_ACCOUNT_NAME",),
              doc="Storage account (required, except with the emulator or an account URL)."),
    ConfigKey("azure_storage_account_key",
              aliases=("azure_storage_access_key", "azure_storage_master_key", "account_key",
                       "access_key", "master_key"),
              env=("AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_ACCESS_KEY",
                   "AZURE_STORAGE_MASTER_KEY"),
              secret=True, doc="Shared key (base64)."),
    ConfigKey("azure_storage_client_id", aliases=("azure_client_id", "client_id"),
              env=("AZURE_STORAGE_CLIENT_ID", "AZURE_CLIENT_ID"),
              doc="Service principal, workload identity or user-assigned managed identity."),
    ConfigKey("azure_storage_client_secret", aliases=("azure_client_secret", "client_secret"),
              env=("AZURE_STORAGE_CLIENT_SECRET", "AZURE_CLIENT_SECRET"), secret=True,
              doc="Service principal secret."),
    ConfigKey("azure_storage_tenant_id",
              aliases=("azure_storage_authority_id", "azure_tenant_id", "azure_authority_id",
                       "tenant_id", "authority_id"),
              env=("AZURE_STORAGE_TENANT_ID", "AZURE_STORAGE_AUTHORITY_ID", "AZURE_TENANT_ID",
                   "AZURE_AUTHORITY_ID"),
              doc="Tenant of the service principal or workload identity."),
    ConfigKey("azure_storage_authority_host", aliases=("azure_authority_host", "authority_host"),
              env=("AZURE_STORAGE_AUTHORITY_HOST", "AZURE_AUTHORITY_HOST"),
              doc="Entra ID authority (sovereign clouds)."),
    ConfigKey("azure_storage_sas_key",
              aliases=("azure_storage_sas_token", "sas_key", "sas_token"),
              env=("AZURE_STORAGE_SAS_KEY", "AZURE_STORAGE_SAS_TOKEN"), secret=True,
              doc="SAS token, percent-encoded as Storage Explorer gives it."),
    ConfigKey("azure_storage_token", aliases=("bearer_token", "token"),
              env=("AZURE_STORAGE_TOKEN",), secret=True,
              doc="A static bearer token (never refreshed)."),
    ConfigKey("azure_storage_use_emulator", aliases=("use_emulator",),
              env=("AZURE_STORAGE_USE_EMULATOR",), parse=parse_bool, default=False,
              doc="Azurite: `AZURITE_BLOB_STORAGE_URL` (default `http://127.0.0.1:10000`), "
                  "account `devstoreaccount1`."),
    ConfigKey("azure_storage_endpoint", aliases=("azure_endpoint", "endpoint"),
              env=("AZURE_STORAGE_ENDPOINT", "AZURE_ENDPOINT"),
              doc="Account URL (`http://127.0.0.1:10000/devstoreaccount1` for Azurite)."),
    ConfigKey("azure_use_fabric_endpoint", aliases=("use_fabric_endpoint",),
              env=("AZURE_USE_FABRIC_ENDPOINT",), parse=parse_bool, default=False,
              doc="Use `*.blob.fabric.microsoft.com` (OneLake)."),
    ConfigKey("azure_msi_endpoint",
              aliases=("azure_identity_endpoint", "identity_endpoint", "msi_endpoint"),
              env=("AZURE_MSI_ENDPOINT", "AZURE_IDENTITY_ENDPOINT", "IDENTITY_ENDPOINT"),
              doc="Managed-identity endpoint (App Service, Functions)."),
    ConfigKey("azure_object_id", aliases=("object_id",), env=("AZURE_OBJECT_ID",),
              doc="User-assigned managed identity by object id."),
    ConfigKey("azure_msi_resource_id", aliases=("msi_resource_id",),
              env=("AZURE_MSI_RESOURCE_ID",),
              doc="User-assigned managed identity by resource id."),
    ConfigKey("azure_federated_token_file", aliases=("federated_token_file",),
              env=("AZURE_FEDERATED_TOKEN_FILE",), doc="AKS workload identity token file."),
    ConfigKey("azure_use_azure_cli", aliases=("use_azure_cli",), env=("AZURE_USE_AZURE_CLI",),
              parse=parse_bool, default=False, doc="Take tokens from `az`."),
    ConfigKey("azure_skip_signature", aliases=("skip_signature",),
              env=("AZURE_SKIP_SIGNATURE",), parse=parse_bool, default=False,
              doc="Send requests without credentials (public containers)."),
    ConfigKey("azure_container_name", aliases=("container_name",),
              env=("AZURE_CONTAINER_NAME",), doc="The container (or in the URL)."),
    ConfigKey("azure_disable_tagging", aliases=("disable_tagging",),
              env=("AZURE_DISABLE_TAGGING",), parse=parse_bool, default=False,
              doc="Drop tags on writes (accounts without blob index tags)."),
    ConfigKey("azure_fabric_token_service_url", aliases=("fabric_token_service_url",),
              env=("AZURE_FABRIC_TOKEN_SERVICE_URL",), doc="Fabric token service."),
    ConfigKey("azure_fabric_workload_host", aliases=("fabric_workload_host",),
              env=("AZURE_FABRIC_WORKLOAD_HOST",), doc="Fabric workload host."),
    ConfigKey("azure_fabric_session_token", aliases=("fabric_session_token",),
              env=("AZURE_FABRIC_SESSION_TOKEN",), secret=True, doc="Fabric session token."),
    ConfigKey("azure_fabric_cluster_identifier", aliases=("fabric_cluster_identifier",),
              env=("AZURE_FABRIC_CLUSTER_IDENTIFIER",), doc="Fabric cluster identifier."),
    ConfigKey("azure_use_managed_identity", aliases=("use_managed_identity",),
              env=("AZURE_USE_MANAGED_IDENTITY",), parse=parse_bool, default=False,
              doc="object-store-python's key: `true` takes managed identity, as "
                  "`azure_credential_type=managed_identity` does."),
    ConfigKey("azure_credential_type", aliases=("credential_type",),
              env=("AZURE_CREDENTIAL_TYPE",), parse=parse_choice(*CREDENTIAL_TYPES),
              default="auto", doc="`auto` or one source: " + ", ".join(CREDENTIAL_TYPES[1:]) + "."),
    ConfigKey("azure_storage_encryption_key", aliases=("encryption_key",),
              env=("AZURE_STORAGE_ENCRYPTION_KEY",), secret=True,
              doc="Customer-provided AES-256 key (base64). Copy Blob cannot take it, so copies "
                  "and renames read and write through the client."),
)  # fmt: skip

AZURE_TABLE = ConfigTable(
    "azure", (*COMMON_KEYS, *_AZURE_KEYS, *cloud_client_keys("azure")), env_prefix="AZURE_"
)

_CONTAINER = re.compile(r"(\$root|[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62})")
_ACCOUNT_HOST = re.compile(
    r"(?P<account>[a-z0-9]{3,24})\.(?P<service>blob|dfs)\.(?P<domain>core\.windows\.net|"
    r"fabric\.microsoft\.com)"
)


def check_container(name: str, config: Config) -> str:
    """``name``, if it is a valid container name (any name on Fabric, whose "containers" are
    workspaces).

    Raises:
        InvalidURLError: not 3-63 lowercase letters, digits and single hyphens.
    """
    if not config["azure_use_fabric_endpoint"] and not _CONTAINER.fullmatch(name):
        raise InvalidURLError(
            f"invalid container name {name!r}: 3-63 lowercase letters, digits and single hyphens"
        )
    return name


def parse_azure_url(url: SplitResult) -> tuple[str, str, dict[str, Any]]:
    """Return ``(container, prefix, url_values)`` for every Azure URL form.

    ``az://``, ``azure://`` and ``adl://`` name the container as the host; ``abfs[s]://`` too,
    or as ``filesystem@account.dfs.core.windows.net``; ``https://account.(blob|dfs).core.
    windows.net/container`` and the Fabric (OneLake) hosts carry the account.

    Raises:
        InvalidURLError: no container, an invalid name, or a host that is not Azure's.
    """
    scheme = url.scheme.lower()
    text = url.geturl()
    path = prefix_from_url(url.path)
    values: dict[str, Any] = {}
    host = (url.hostname or "").lower()
    if scheme in ("az", "azure", "adl", "abfs", "abfss"):
        if url.username is not None:
            match = _ACCOUNT_HOST.fullmatch(host)
            if match is None:
                raise InvalidURLError(f"not an Azure storage host in {text!r}: {host!r}")
            container, prefix = unquote(url.username), path
            values["azure_storage_account_name"] = match["account"]
            if match["domain"] == "fabric.microsoft.com":
                values["azure_use_fabric_endpoint"] = True
        else:
            container, prefix = url.netloc, path
    elif scheme == "https":
        match = _ACCOUNT_HOST.fullmatch(host)
        onelake = host in ("onelake.dfs.fabric.microsoft.com", "onelake.blob.fabric.microsoft.com")
        if match is None and not onelake:
            raise InvalidURLError(f"not an Azure storage URL: {text!r}")
        container, _, prefix = path.partition("/")
        values["azure_storage_account_name"] = "onelake" if onelake else match["account"]  # type: ignore[index]
        if onelake or (match is not None and match["domain"] == "fabric.microsoft.com"):
            values["azure_use_fabric_endpoint"] = True
    else:
        raise InvalidURLError(f"not an Azure URL: {text!r}")
    if not container:
        raise InvalidURLError(f"Azure URL {text!r} names no container")
    values["azure_container_name"] = container
    return container, prefix, values


class AccountEndpoint:
    """Where an account's Blob service answers, and the account its Shared Key names."""

    def __init__(self, url: str, account: str, emulator: bool) -> None:
        self.url = url.rstrip("/")
        self.account = account
        self.emulator = emulator

    def __repr__(self) -> str:
        return f"AccountEndpoint({self.url!r}, account={self.account!r})"


def resolve_endpoint(config: Config, environ: Mapping[str, str]) -> AccountEndpoint:
    """The Blob service root of the configured account.

    ``azure_storage_endpoint`` wins; then the emulator (``AZURITE_BLOB_STORAGE_URL``); then
    ``https://<account>.blob.core.windows.net`` (``.blob.fabric.microsoft.com`` for Fabric).

    Raises:
        ConfigError: no account name where one is needed, a malformed endpoint, or plain HTTP
            without ``allow_http``.
    """
    emulator = bool(config["azure_storage_use_emulator"])
    account = config.get("azure_storage_account_name")
    endpoint = config.get("azure_storage_endpoint")
    if emulator:
        account = account or EMULATOR_ACCOUNT
        if not endpoint:
            root = environ.get("AZURITE_BLOB_STORAGE_URL") or EMULATOR_URL
            endpoint = f"{root.rstrip('/')}/{account}"
    if endpoint:
        endpoint = str(endpoint).rstrip("/")
        if not endpoint.startswith(("http://", "https://")):
            raise ConfigError(
                f"azure_storage_endpoint {endpoint!r} must start with http:// or https://",
            )
        if endpoint.startswith("http://") and not (emulator or config["allow_http"]):
            raise ConfigError(
                f"azure_storage_endpoint {endpoint!r} is plain HTTP: set 'allow_http' "
                "(AZURE_ALLOW_HTTP)",
            )
        if not account:
            account = _account_from_endpoint(endpoint)
        return AccountEndpoint(endpoint, account, emulator)
    if not account:
        raise ConfigError(
            "the Azure store needs a storage account: set 'azure_storage_account_name' "
            "(AZURE_STORAGE_ACCOUNT_NAME), use an https://<account>.blob.core.windows.net URL, "
            "or 'azure_storage_use_emulator'",
        )
    domain = "fabric.microsoft.com" if config["azure_use_fabric_endpoint"] else "core.windows.net"
    return AccountEndpoint(f"https://{account}.blob.{domain}", str(account), emulator)


def _account_from_endpoint(endpoint: str) -> str:
    """The account of an endpoint URL: its host's first label, or its path's first segment
    (path-style endpoints such as Azurite's ``http://host:port/<account>``)."""
    from urllib.parse import urlsplit

    parts = urlsplit(endpoint)
    match = _ACCOUNT_HOST.fullmatch((parts.hostname or "").lower())
    if match is not None:
        return match["account"]
    segment = parts.path.strip("/").partition("/")[0]
    if segment:
        return segment
    raise ConfigError(
        f"cannot tell the storage account of azure_storage_endpoint {endpoint!r}: set "
        "'azure_storage_account_name'",
    )
