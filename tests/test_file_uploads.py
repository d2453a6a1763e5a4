"""Uploads of local files (``put(path, pathlib.Path)``): the file as long as it was when the
upload began; one that shrinks meanwhile fails and writes nothing; a source that cannot be
read is a typed error naming it."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable
from typing import Any

import pytest

import objstore
from objstore import IntegrityError, InvalidRequestError, NotFoundError

MiB = 1024 * 1024
ALL = ["memory", "local", "s3", "gcs", "azure"]
IN_PARTS = ["s3", "gcs", "azure"]
"""Backends that read a large file part by part while they upload it."""
Target = Callable[[str, str], tuple[str, dict[str, str]]]


def _source(tmp_path: pathlib.Path, size: int) -> tuple[pathlib.Path, bytes]:
    data = os.urandom(size)
    path = tmp_path / "source.bin"
    path.write_bytes(data)
    return path, data


@pytest.mark.parametrize("backend", IN_PARTS)
async def test_a_file_that_shrinks_during_its_upload_writes_nothing(
    backend: str, backend_target: Target, tmp_path: pathlib.Path
) -> None:
    url, options = backend_target(backend, "")
    source, _ = _source(tmp_path, 20 * MiB)

    def shrink(done: int, total: int | None) -> None:
        if done < 20 * MiB:
            os.truncate(source, 6 * MiB)  # after the first part: the rest is gone

    async with objstore.from_url(url, options) as store:
        with pytest.raises(IntegrityError, match="shrank while it was uploaded"):
            await store.put("shrunk", source, part_size=5 * MiB, max_concurrency=1, progress=shrink)
        assert not await store.exists("shrunk")
        # S3 aborted its upload; Azure keeps uncommitted blocks until cleaned (or a week)
        left = {u.location for u in await store.list_incomplete()}
        assert left <= ({"shrunk"} if backend == "azure" else set())
        await store.cleanup_incomplete(older_than=0)
        assert await store.list_incomplete() == []


@pytest.mark.parametrize("backend", ALL)
async def test_bytes_appended_during_an_upload_are_left_out(
    backend: str, backend_target: Target, tmp_path: pathlib.Path
) -> None:
    url, options = backend_target(backend, "store")
    source, data = _source(tmp_path, 20 * MiB)

    def grow(done: int, total: int | None) -> None:
        with open(source, "ab") as handle:  # a log file still being written
            handle.write(b"appended" * 1024)

    async with objstore.from_url(url, options) as store:
        await store.put("grown", source, part_size=5 * MiB, progress=grow)
        assert await store.get("grown") == data
    assert source.stat().st_size > len(data)


@pytest.mark.parametrize("backend", ALL)
async def test_a_source_that_cannot_be_read_is_a_typed_error(
    backend: str, backend_target: Target, tmp_path: pathlib.Path
) -> None:
    url, options = backend_target(backend, "store")
    missing = tmp_path / "missing.bin"
    async with objstore.from_url(url, options) as store:
        with pytest.raises(NotFoundError, match=r"missing\.bin") as caught:
            await store.put("k", missing)
        assert isinstance(caught.value, FileNotFoundError)
        with pytest.raises(InvalidRequestError, match="not a regular file"):
            await store.put("k", tmp_path)
        assert not await store.exists("k")


def test_a_local_copy_cut_short_commits_nothing(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from objstore.backends import local

    source, _ = _source(tmp_path, MiB)
    whole = local._copy_fd

    def cut_short(src: int, dst: int, size: int) -> Any:  # the source shrank meanwhile
        return whole(src, dst, size // 2)

    monkeypatch.setattr(local, "_copy_fd", cut_short)
    store = objstore.from_url(str(tmp_path / "root"))
    assert isinstance(store, local.LocalStore)
    with pytest.raises(IntegrityError, match="shrank while it was copied"):
        store._put_file_sync(store._key("k"), str(source), objstore._types.DEFAULT_PUT)
    assert [p.name for p in (tmp_path / "root").iterdir()] == []
