"""The Azure backend on Azurite: the conformance suite, async and through the blocking facade."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import objstore
import objstore_sync
from objstore.backends.azure import AzureStore
from objstore.testing import FacadeAsAsync, StoreConformance
from objstore.testing.emulators import AzureServer

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
