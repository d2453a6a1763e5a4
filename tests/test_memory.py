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
    def shared(self) -> objstore.MemoryStore:
        return objstore.MemoryStore()

    @pytest.fixture
    def store(self) -> Any:
        return objstore.from_url("memory://")

    @pytest.fixture
    def make_store(self) -> Callable[[str], Any]:
        # Memory stores do not share objects, so prefixes are views of one store.
        base = objstore.MemoryStore()

        def make(prefix: str) -> Any:
            view = objstore.MemoryStore(prefix=prefix)
            view._objects = base._objects
            view._set_lock(base._lock)
            return view

        return make


class TestMemoryFacadeInline(StoreConformance):
    @pytest.fixture
    def store(self) -> Any:
        return FacadeAsAsync(objstore_sync.ObjectStore("memory://"))

    @pytest.fixture
    def make_store(self) -> Callable[[str], Any]:
        base = objstore.MemoryStore()

        def make(prefix: str) -> Any:
            view = objstore.MemoryStore(prefix=prefix)
            view._objects = base._objects
            view._set_lock(base._lock)
            return FacadeAsAsync(objstore_sync.ObjectStore(view))

        return make


class TestMemoryFacadeLoop(TestMemoryFacadeInline):
    @pytest.fixture
    def store(self) -> Any:
        return FacadeAsAsync(objstore_sync.ObjectStore("memory://", inline=False))
