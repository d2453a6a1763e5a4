"""Azure URLs, configuration keys and credential selection (no server needed)."""

from __future__ import annotations

import pickle
import time
from typing import Any
from urllib.parse import urlsplit

import pytest

import objstore
from objstore import ConfigError, InvalidURLError, UnknownOptionError
from objstore.backends._azure_auth import (
    STORAGE_SCOPE,
    SasAuth,
    SharedKeyAuth,
    TokenCredentialAuth,
    string_to_sign,
)
from objstore.backends._azure_config import AZURE_TABLE, EMULATOR_KEY
from objstore.backends.azure import AzureStore

KEY = EMULATOR_KEY
ACCOUNT = {"azure_storage_account_name": "acct", "azure_storage_account_key": KEY}


def _store(url: str, options: dict[str, Any] | None = None, **env: str) -> AzureStore:
    store = AzureStore._from_url(urlsplit(url), dict(ACCOUNT) if options is None else options, env)
    assert isinstance(store, AzureStore)
    return store


@pytest.mark.parametrize(
    ("url", "container", "prefix", "account"),
    [
        ("az://data/a/b", "data", "a/b", "acct"),
        ("azure://data", "data", "", "acct"),
        ("adl://data/x", "data", "x", "acct"),
        ("abfs://data/x", "data", "x", "acct"),
        ("abfss://fs1@other.dfs.core.windows.net/dir/sub", "fs1", "dir/sub", "other"),
        ("abfs://fs1@other.blob.core.windows.net/dir", "fs1", "dir", "other"),
        ("https://other.blob.core.windows.net/data/p", "data", "p", "other"),
        ("https://other.dfs.core.windows.net/data", "data", "", "other"),
    ],
)
def test_url_forms(url: str, container: str, prefix: str, account: str) -> None:
    store = _store(url, {"azure_storage_account_key": KEY}
                   if account != "acct" else dict(ACCOUNT))  # fmt: skip
    assert (store._container, store.prefix, store.account) == (container, prefix, account)
    assert store._origin == f"https://{account}.blob.core.windows.net"
    assert store.url == f"az://{container}/{prefix}".rstrip("/")


def test_url_forms_survive_pickling() -> None:
    for url, options in [
        ("abfss://fsys@other.dfs.core.windows.net/dir", {"azure_storage_token": "t"}),
        ("https://onelake.dfs.fabric.microsoft.com/ws/item.Lakehouse/Files",
         {"azure_storage_token": "t"}),
    ]:  # fmt: skip
        store = _store(url, {**options, "allow_pickle_secrets": "true"})
        clone = pickle.loads(pickle.dumps(store))
        assert (clone.account, clone._origin, clone._container, clone.prefix) == (
            store.account, store._origin, store._container, store.prefix,
        )  # fmt: skip


def test_fabric_urls_use_the_fabric_endpoint() -> None:
    store = _store("https://onelake.dfs.fabric.microsoft.com/workspace/item.Lakehouse/Files",
                   {"azure_storage_token": "t"})  # fmt: skip
    assert store.account == "onelake"
    assert store._origin == "https://onelake.blob.fabric.microsoft.com"
    assert (store._container, store.prefix) == ("workspace", "item.Lakehouse/Files")
    store = _store("abfss://ws@acct.dfs.fabric.microsoft.com/item", {"azure_storage_token": "t"})
    assert store._origin == "https://acct.blob.fabric.microsoft.com"
    store = _store("az://work", {**ACCOUNT, "azure_use_fabric_endpoint": "true"})
    assert store._origin == "https://acct.blob.fabric.microsoft.com"


@pytest.mark.parametrize(
    "url",
    [
        "az://",
        "az://UPPER",
        "az://ab",
        "az://double--hyphen",
        "abfss://fs@acct.example.com/x",
        "https://acct.blob.example.com/data",
        "https://acct.blob.core.windows.net/",
    ],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(InvalidURLError):
        _store(url)


def test_keys_aliases_and_environment() -> None:
    store = _store("az://data", {"account_name": "a1", "access_key": KEY})
    assert (store.account, store._container, store.credential_source) == (
        "a1",
        "data",
        "shared key",
    )
    env = {"AZURE_STORAGE_ACCOUNT_NAME": "envacct", "AZURE_STORAGE_ACCESS_KEY": KEY,
           "AZURE_TIMEOUT": "45s"}  # fmt: skip
    store = _store("az://data", {}, **env)
    assert (store.account, store.config["timeout"]) == ("envacct", 45.0)
    assert store.config.source("azure_storage_account_key") == "env AZURE_STORAGE_ACCESS_KEY"
    with pytest.raises(UnknownOptionError, match="azure_storage_acount_name"):
        _store("az://data", {"azure_storage_acount_name": "x"})
    for name in ("azure_msi_endpoint", "azure_object_id", "azure_msi_resource_id",
                 "azure_federated_token_file", "azure_use_azure_cli", "azure_disable_tagging",
                 "azure_fabric_token_service_url", "azure_storage_authority_host",
                 "azure_storage_encryption_key", "azure_credential_type"):  # fmt: skip
        assert AZURE_TABLE.lookup(name).name == name


def test_account_is_required_except_with_the_emulator() -> None:
    with pytest.raises(ConfigError, match="azure_storage_account_name"):
        _store("az://data", {"azure_storage_account_key": KEY})
    store = _store("az://data", {"use_emulator": "true"})
    assert store.account == "devstoreaccount1"
    assert store._origin == "http://127.0.0.1:10000"
    assert store._container_path == "/devstoreaccount1/data"
    assert store.credential_source == "shared key"
    store = _store("az://data", {"use_emulator": "true"},
                   AZURITE_BLOB_STORAGE_URL="http://127.0.0.1:19999")  # fmt: skip
    assert store._origin == "http://127.0.0.1:19999"


def test_endpoint_rules() -> None:
    with pytest.raises(ConfigError, match="allow_http"):
        _store("az://data", {**ACCOUNT, "azure_storage_endpoint": "http://127.0.0.1:1/acct"})
    with pytest.raises(ConfigError, match="http://"):
        _store("az://data", {**ACCOUNT, "endpoint": "127.0.0.1:1"})
    options = {"azure_storage_endpoint": "http://127.0.0.1:1/devacct",
               "azure_storage_account_key": KEY, "azure_allow_http": "true"}  # fmt: skip
    store = _store("az://data", options)
    assert (store.account, store._container_path) == ("devacct", "/devacct/data")


def test_credential_selection_order() -> None:
    def source(**options: str) -> str:
        return _store(
            "az://data", {"azure_storage_account_name": "acct", **options}
        ).credential_source

    assert source(azure_storage_token="t", azure_storage_account_key=KEY) == "static bearer token"
    assert source(azure_storage_account_key=KEY, sas_token="sv=1&sig=x") == "shared key"
    assert source(client_id="c", tenant_id="t", federated_token_file="/f",
                  client_secret="s") == "workload identity"  # fmt: skip
    assert source(client_id="c", tenant_id="t", client_secret="s") == (
        "service principal (client secret)"
    )
    assert source(sas_token="sv=1&sig=x") == "SAS token"
    assert source(use_azure_cli="true") == "Azure CLI"
    assert source() == "managed identity"
    assert source(skip_signature="true", azure_storage_account_key=KEY) == "anonymous"
    assert source(credential_type="sas_token", sas_token="sv=1&sig=x",
                  azure_storage_account_key=KEY) == "SAS token"  # fmt: skip
    with pytest.raises(ConfigError, match="'azure_storage_client_secret'"):
        source(credential_type="client_secret", client_id="c", tenant_id="t")
    with pytest.raises(ConfigError, match="credential_type"):
        source(credential_type="magic")


def test_bad_secrets_are_named_not_echoed() -> None:
    with pytest.raises(ConfigError, match="azure_storage_account_key") as info:
        _store("az://data", {"azure_storage_account_name": "a", "account_key": "not base64!"})
    assert "not base64!" not in str(info.value)
    with pytest.raises(ConfigError, match="azure_storage_sas_key") as info:
        _store("az://data", {"azure_storage_account_name": "a", "sas_token": "canary-nonsense"})
    assert "canary" not in str(info.value)
    with pytest.raises(ConfigError, match="256-bit"):
        _store("az://data", {**ACCOUNT, "encryption_key": "c2hvcnQ="})


def test_secrets_stay_out_of_repr_and_pickles() -> None:
    store = _store("az://data", {**ACCOUNT, "azure_storage_sas_key": "sv=1&sig=canarysig"})
    text = repr(store) + repr(store.config) + repr(store._auth)
    assert KEY not in text
    assert "canarysig" not in text
    assert KEY.encode() not in pickle.dumps(store)


def test_encryption_key_headers() -> None:
    import base64
    import hashlib

    raw = bytes(range(32))
    store = _store("az://data", {**ACCOUNT, "encryption_key": base64.b64encode(raw).decode()})
    assert (
        store._encryption["x-ms-encryption-key-sha256"]
        == base64.b64encode(hashlib.sha256(raw).digest()).decode()
    )
    assert store._encryption["x-ms-encryption-algorithm"] == "AES256"


def test_string_to_sign_layout() -> None:
    text = string_to_sign(
        "acct", "PUT", "/data/a%20b",
        [("comp", "block"), ("blockid", "QUJD"), ("Comp", "x")],
        {"Content-Length": "0", "Content-Type": "text/plain", "x-ms-date": "D",
         "X-MS-Meta-B": "  two   words ", "x-ms-version": "V", "If-Match": '"e"'},
    )  # fmt: skip
    assert text.split("\n") == [
        "PUT", "", "", "", "", "text/plain", "", "", '"e"', "", "", "",
        "x-ms-date:D", "x-ms-meta-b:two words", "x-ms-version:V",
        "/acct/data/a%20b", "blockid:QUJD", "comp:block,x",
    ]  # fmt: skip
    auth = SharedKeyAuth("acct", KEY)
    assert len(base64_decode(auth.sign(text))) == 32


def base64_decode(text: str) -> bytes:
    import base64

    return base64.b64decode(text)


def test_sas_tokens_as_storage_explorer_gives_them() -> None:
    auth = SasAuth("?sv=2024-11-04&ss=b&sp=rl&sig=ab%2Fcd%3D")
    assert dict(auth.query) == {"sv": "2024-11-04", "ss": "b", "sp": "rl", "sig": "ab%2Fcd%3D"}


class _Token:
    def __init__(self, token: str, expires_on: float) -> None:
        self.token, self.expires_on = token, expires_on


class _CountingCredential:
    """An azure-identity-shaped credential whose tokens live 10 minutes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    async def get_token(self, *scopes: str) -> _Token:
        self.calls.append(scopes)
        return _Token(f"tok{len(self.calls)}", time.time() + 600)


async def test_token_credentials_are_cached_and_refreshed_before_expiry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    credential = _CountingCredential()
    auth = TokenCredentialAuth(lambda: credential, "test")
    headers: dict[str, str] = {}
    await auth.authorize("GET", "/x", (), headers)
    await auth.authorize("GET", "/x", (), headers)
    assert headers["Authorization"] == "Bearer tok1"
    assert credential.calls == [(STORAGE_SCOPE,)]
    later = time.time() + 400  # inside the 5-minute refresh margin
    monkeypatch.setattr(time, "time", lambda: later)
    await auth.authorize("GET", "/x", (), headers)
    assert headers["Authorization"] == "Bearer tok2"


def test_from_url_reaches_the_azure_backend() -> None:
    store = objstore.from_url("az://data", ACCOUNT)
    assert isinstance(store, AzureStore)
