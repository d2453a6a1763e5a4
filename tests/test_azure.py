"""The Azure backend on Azurite: the conformance suite, async and through the blocking facade."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

import objstore
import objstore_sync
from objstore.testing import FacadeAsAsync, StoreConformance
from objstore.testing.emulators import AzureServer


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
