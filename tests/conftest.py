"""Shared fixtures: a clean environment for every test."""

from __future__ import annotations

import os

import pytest

_PREFIXES = ("AWS_", "AZURE_", "GOOGLE_", "OBJSTORE_")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove cloud and objstore variables so no test depends on the machine's settings."""
    for name in list(os.environ):
        if name.startswith(_PREFIXES):
            monkeypatch.delenv(name)
