"""The GCS backend on fake-gcs-server: the conformance suite and GCS specifics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

import objstore
import objstore_sync
from objstore.testing import FacadeAsAsync, StoreConformance, expected_failure
from objstore.testing.emulators import GCSServer

EMULATOR_PRECONDITIONS = (
    "fake-gcs-server ignores ifGenerationMatch on rewrites (EMULATORS.md §4); GCS enforces it"
)
EMULATOR_GENERATION_DELETES = (
    "fake-gcs-server ignores generation= on deletes and removes the live object (docs/design.md, "
    "'Object history'); GCS deletes only that generation"
)


class TestGCSStore(StoreConformance):
    test_copy = expected_failure(StoreConformance.test_copy, EMULATOR_PRECONDITIONS)
    test_rename = expected_failure(StoreConformance.test_rename, EMULATOR_PRECONDITIONS)
    test_deleting_a_version_it_lacks_leaves_the_object = expected_failure(
        StoreConformance.test_deleting_a_version_it_lacks_leaves_the_object,
        EMULATOR_GENERATION_DELETES,
    )

    @pytest.fixture
    async def store(self, gcs_server: GCSServer, gcs_bucket: str) -> AsyncIterator[Any]:
        store = objstore.from_url(f"gs://{gcs_bucket}", gcs_server.options())
        yield store
        await store.aclose()

    @pytest.fixture
    async def make_store(
        self, gcs_server: GCSServer, gcs_bucket: str
    ) -> AsyncIterator[Callable[[str], Any]]:
        made: list[Any] = []

        def make(prefix: str) -> Any:
            made.append(objstore.from_url(f"gs://{gcs_bucket}/{prefix}", gcs_server.options()))
            return made[-1]

        yield make
        for store in made:
            await store.aclose()


class TestGCSFacade(StoreConformance):
    test_copy = expected_failure(StoreConformance.test_copy, EMULATOR_PRECONDITIONS)
    test_rename = expected_failure(StoreConformance.test_rename, EMULATOR_PRECONDITIONS)
    test_deleting_a_version_it_lacks_leaves_the_object = expected_failure(
        StoreConformance.test_deleting_a_version_it_lacks_leaves_the_object,
        EMULATOR_GENERATION_DELETES,
    )

    @pytest.fixture
    def store(self, gcs_server: GCSServer, gcs_bucket: str) -> Iterator[Any]:
        sync = objstore_sync.ObjectStore(f"gs://{gcs_bucket}", gcs_server.options())
        yield FacadeAsAsync(sync)
        sync.close()

    @pytest.fixture
    def make_store(self, gcs_server: GCSServer, gcs_bucket: str) -> Iterator[Callable[[str], Any]]:
        made: list[Any] = []

        def make(prefix: str) -> Any:
            sync = objstore_sync.ObjectStore(f"gs://{gcs_bucket}/{prefix}", gcs_server.options())
            made.append(sync)
            return FacadeAsAsync(sync)

        yield make
        for store in made:
            store.close()
