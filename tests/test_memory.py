"""The conformance suite on the memory store, async and through the blocking facade."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import objstore
import objstore_sync
from objstore.testing import FacadeAsAsync, StoreConformance


class TestMemoryStore(StoreConformance):
    @pytest.fixture
    def store(self) -> Any:
        return objstore.from_url("memory://")

    @pytest.fixture
    def make_store(self) -> Callable[[str], Any]:
        # Memory stores do not share objects, so prefixes are views of one store.
        return objstore.MemoryStore().with_prefix


class TestMemoryFacadeInline(StoreConformance):
    @pytest.fixture
    def store(self) -> Any:
        return FacadeAsAsync(objstore_sync.ObjectStore("memory://"))

    @pytest.fixture
    def make_store(self) -> Callable[[str], Any]:
        base = objstore.MemoryStore()
        return lambda prefix: FacadeAsAsync(objstore_sync.ObjectStore(base.with_prefix(prefix)))


class TestMemoryFacadeLoop(TestMemoryFacadeInline):
    @pytest.fixture
    def store(self) -> Any:
        return FacadeAsAsync(objstore_sync.ObjectStore("memory://", inline=False))
