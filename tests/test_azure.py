"""The Azure backend on Azurite: the conformance suite, async and through the blocking facade."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from aiohttp import web

import objstore
import objstore_sync
from objstore.backends.azure import AzureStore
from objstore.testing import FacadeAsAsync, StoreConformance
from objstore.testing.emulators import AzureServer
from objstore.testing.faultproxy import FaultProxy, serve_in_thread, split_endpoint

PREFIX = "pre fix/ü+%"
"""A store prefix with characters that need quoting in URLs."""


class TestAzureStore(StoreConformance):
    @pytest.fixture
    async def store(self, azure_server: AzureServer, azure_container: str) -> AsyncIterator[Any]:
        store = objstore.from_url(f"az://{azure_container}", azure_server.options())
        yield store
        await store.aclose()

    @pytest.fixture
    async def make_store(
        self, azure_server: AzureServer, azure_container: str
    ) -> AsyncIterator[Callable[[str], Any]]:
        made: list[Any] = []

        def make(prefix: str) -> Any:
            url = f"az://{azure_container}/{prefix}"
            made.append(objstore.from_url(url, azure_server.options()))
            return made[-1]

        yield make
        for store in made:
            await store.aclose()


class TestAzureSasStore(TestAzureStore):
    """Signed by an account SAS token instead of the key, under a prefix that needs quoting:
    every operation must carry the token and name its keys relative to the prefix."""

    one_loop = True  # a configuration: the plain class runs both loops

    @pytest.fixture
    async def store(self, azure_server: AzureServer, azure_container: str) -> AsyncIterator[Any]:
        from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

        token = generate_account_sas(
            account_name=azure_server.account, account_key=azure_server.key,
            resource_types=ResourceTypes(container=True, object=True),
            permission=AccountSasPermissions(read=True, write=True, delete=True, list=True,
                                             add=True, create=True, tag=True),
            expiry=datetime.now(UTC) + timedelta(hours=1),
        )  # fmt: skip
        options = {"azure_storage_endpoint": azure_server.endpoint, "allow_http": "true",
                   "azure_storage_sas_key": "?" + token}  # fmt: skip
        store = objstore.from_url(f"az://{azure_container}/{PREFIX}", options)
        assert isinstance(store, AzureStore)
        assert store.credential_source == "SAS token"
        yield store
        await store.aclose()


class CustomerKeyRules:
    """Azure's rules for customer-provided keys, which Azurite (in loose mode) does not keep,
    as a fault proxy's ``answer``: a blob written with a key (Put Blob, Put Block List) can
    be read (Get Blob, its properties or metadata) only with that key, else 409
    ``BlobUsesCustomerSpecifiedEncryption``; Copy Blob takes no key, so it cannot read such
    a source (the documented list of operations that take a key leaves it out)."""

    def __init__(self) -> None:
        self.keyed: dict[str, str] = {}  # blob path -> the SHA-256 of its key

    def __call__(self, request: web.Request, body: bytes) -> web.Response | None:
        path, query = request.path, request.query
        key = request.headers.get("x-ms-encryption-key-sha256")
        source = request.headers.get("x-ms-copy-source")
        if request.method == "PUT" and source is not None:
            if unquote(urlsplit(source).path) in self.keyed:
                return self._refuse()
            self.keyed.pop(path, None)
        elif request.method == "PUT" and query.get("comp") in (None, "blocklist"):
            if key is None:
                self.keyed.pop(path, None)
            else:
                self.keyed[path] = key
        elif request.method == "DELETE" and "versionid" not in query:
            self.keyed.pop(path, None)
        elif (
            request.method in ("GET", "HEAD")
            and query.get("comp") in (None, "metadata")
            and path in self.keyed
            and key != self.keyed[path]
        ):
            return self._refuse()
        return None

    @staticmethod
    def _refuse() -> web.Response:
        return web.Response(status=409, headers={
            "x-ms-error-code": "BlobUsesCustomerSpecifiedEncryption"})  # fmt: skip


@dataclasses.dataclass(frozen=True)
class KeyedServer(AzureServer):
    """An Azure server whose stores all encrypt with one customer-provided key."""

    key_option: str = base64.b64encode(b"customer key, 32 bytes long ....").decode()

    def options(self, **extra: str) -> dict[str, str]:
        return super().options(azure_storage_encryption_key=self.key_option, **extra)


@pytest.fixture(scope="module")
def keyed_azure_server(azure_loose_server: AzureServer) -> Iterator[AzureServer]:
    """Loose Azurite behind :class:`CustomerKeyRules`, its stores keyed."""
    upstream, path = split_endpoint(azure_loose_server.endpoint)
    proxy = FaultProxy(upstream, answer=CustomerKeyRules())
    with serve_in_thread(proxy):
        yield KeyedServer(endpoint=proxy.url + path)


class TestAzureCustomerKeyStore(TestAzureStore):
    """Every blob written with a customer-provided key, on Azurite behind a proxy that keeps
    Azure's rules for such keys: every read must send the key, and copies go through the
    client (Copy Blob cannot take one)."""

    one_loop = True  # a configuration: the plain class runs both loops

    @pytest.fixture
    def azure_server(self, keyed_azure_server: AzureServer) -> AzureServer:
        return keyed_azure_server


class TestAzureFacade(StoreConformance):
    @pytest.fixture
    def store(self, azure_server: AzureServer, azure_container: str) -> Iterator[Any]:
        sync = objstore_sync.ObjectStore(f"az://{azure_container}", azure_server.options())
        yield FacadeAsAsync(sync)
        sync.close()

    @pytest.fixture
    def make_store(
        self, azure_server: AzureServer, azure_container: str
    ) -> Iterator[Callable[[str], Any]]:
        made: list[Any] = []

        def make(prefix: str) -> Any:
            url = f"az://{azure_container}/{prefix}"
            sync = objstore_sync.ObjectStore(url, azure_server.options())
            made.append(sync)
            return FacadeAsAsync(sync)

        yield make
        for store in made:
            store.close()
