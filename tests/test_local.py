"""The conformance suite on the local store, async and through the blocking facade."""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

import pytest

import objstore
import objstore_sync
from objstore.testing import FacadeAsAsync, StoreConformance


class TestLocalStore(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: pathlib.Path) -> Any:
        return objstore.from_url(f"file://{tmp_path}/root")

    @pytest.fixture
    def make_store(self, tmp_path: pathlib.Path) -> Callable[[str], Any]:
        return lambda prefix: objstore.from_url(str(tmp_path / "root" / prefix))


class TestLocalFacadeInline(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: pathlib.Path) -> Any:
        return FacadeAsAsync(objstore_sync.ObjectStore(str(tmp_path / "root")))

    @pytest.fixture
    def make_store(self, tmp_path: pathlib.Path) -> Callable[[str], Any]:
        return lambda prefix: FacadeAsAsync(
            objstore_sync.ObjectStore(str(tmp_path / "root" / prefix))
        )


class TestLocalFacadeLoop(TestLocalFacadeInline):
    @pytest.fixture
    def store(self, tmp_path: pathlib.Path) -> Any:
        return FacadeAsAsync(objstore_sync.ObjectStore(str(tmp_path / "root"), inline=False))
