"""Local store: containment, atomicity, staging files, durability and error mapping."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import pathlib
import stat
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import objstore
import objstore_sync
from objstore import (
    InsufficientStorageError,
    InvalidPathError,
    InvalidURLError,
    KeyConflictError,
    NotFoundError,
    ObjstoreError,
    SymlinkEscapeError,
)
from objstore.backends import _openat2
from objstore.backends.local import STAGING_MARK, LocalStore

FUZZ_EXAMPLES = 10_000 if os.environ.get("OBJSTORE_SOAK") == "nightly" else 2_000
"""RELIABILITY B8: 2,000 keys on PR runs, 10,000 nightly."""


def snapshot(directory: pathlib.Path) -> dict[str, tuple[bytes | None, int]]:
    """Every entry below ``directory`` with its content (files) and mtime."""
    out: dict[str, tuple[bytes | None, int]] = {".": (None, directory.stat().st_mtime_ns)}
    for path in sorted(directory.rglob("*")):
        info = path.lstat()
        content = path.read_bytes() if stat.S_ISREG(info.st_mode) else None
        out[str(path.relative_to(directory))] = (content, info.st_mtime_ns)
    return out


def plant(tmp_path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """Make a root with symbolic links that point out of it, and the outside they point to."""
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "secret").write_bytes(b"secret")
    (outside / "dir" / "inner").write_bytes(b"inner")
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "real").mkdir()
    (root / "real" / "file").write_bytes(b"inside")
    (root / "link_dir").symlink_to(outside)
    (root / "link_file").symlink_to(outside / "secret")
    (root / "sub" / "up").symlink_to(tmp_path)
    (root / "alias").symlink_to(root / "real")
    return root, outside


@pytest.fixture
def planted(tmp_path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    return plant(tmp_path)


SEGMENTS = st.sampled_from(
    ["link_dir", "link_file", "sub", "up", "outside", "secret", "dir", "inner", "alias", "real",
     "file", "..", ".", "", "%2e%2e", "\\", "..\\..", "~", "\u202e", "x" * 300, "#123",
     "con", "trailing.", "trailing ", "new", "\x00", "\x1f", "a\nb"]
)  # fmt: skip
KEYS = st.one_of(
    st.lists(SEGMENTS, min_size=1, max_size=5).map("/".join),
    st.lists(SEGMENTS, min_size=1, max_size=4).map(lambda s: "/" + "/".join(s)),
    st.text(min_size=0, max_size=40),
)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=KEYS)
@example(key="link_dir/new")
@example(key="sub/up/outside/new")
@example(key="link_file")
def test_no_operation_leaves_the_root(key: str) -> None:
    with tempfile.TemporaryDirectory() as base:
        check_contained(*plant(pathlib.Path(base)), key)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=KEYS)
@example(key="link_dir/new")
@example(key="sub/up/outside/new")
def test_no_operation_leaves_the_root_without_openat2(key: str) -> None:
    """The same, where the kernel cannot refuse links (every open is checked afterwards)."""
    with tempfile.TemporaryDirectory() as base, _without_openat2():
        check_contained(*plant(pathlib.Path(base)), key)


def check_contained(root: pathlib.Path, outside: pathlib.Path, key: str) -> None:
    """Run every operation on ``key``; nothing outside the root may change or leak."""
    before = snapshot(outside)
    store = objstore_sync.ObjectStore(str(root))
    operations: list[Any] = [
        lambda: store.put(key, b"written"),
        lambda: store.get(key),
        lambda: store.head(key),
        lambda: store.get_range(key, 0, 3),
        lambda: store.list(key),
        lambda: store.list_with_delimiter(key),
        lambda: store.copy("real/file", key),
        lambda: store.rename(key, "renamed"),
        lambda: store.delete(key),
    ]
    for operation in operations:
        try:
            result = operation()
        except ObjstoreError:
            continue
        finally:
            assert snapshot(outside) == before
        if isinstance(result, bytes):
            assert b"secret" not in result
            assert b"inner" not in result
        if isinstance(result, list):
            assert all(not m.location.startswith(("link_dir", "link_file", "sub/up"))
                       for m in result)  # fmt: skip
    assert snapshot(outside) == before


@contextlib.contextmanager
def _without_openat2() -> Iterator[None]:
    saved = list(_openat2._kernel)
    _openat2._kernel[:] = [None]
    try:
        yield
    finally:
        _openat2._kernel[:] = saved


@pytest.fixture(params=["openat2", "verified-open"])
def link_check(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a test with the kernel's link check, and with the open-then-verify fallback."""
    if request.param == "openat2":
        if _openat2.open_without_links("/", os.O_RDONLY | os.O_DIRECTORY) is None:
            pytest.fail("openat2(RESOLVE_NO_SYMLINKS) is unavailable on this Linux machine")
        yield request.param
        return
    with _without_openat2():
        yield request.param


def test_symlink_escapes_are_refused(
    planted: tuple[pathlib.Path, pathlib.Path], link_check: str
) -> None:
    root, outside = planted
    store = objstore_sync.ObjectStore(str(root))
    for key in ("link_file", "link_dir/secret", "sub/up/outside/secret"):
        with pytest.raises(SymlinkEscapeError) as info:
            store.get(key)
        assert isinstance(info.value, PermissionError)
        assert key in str(info.value)
    with pytest.raises(SymlinkEscapeError):
        store.put("link_dir/new", b"x")
    with pytest.raises(SymlinkEscapeError):
        store.put("sub/up/created/deep", b"x")
    with pytest.raises(SymlinkEscapeError):
        store.delete("link_dir/secret")
    assert not (outside / "new").exists()
    assert not (root.parent / "created").exists()
    assert (outside / "secret").read_bytes() == b"secret"
    listed = [m.location for m in store.list()]
    assert listed == ["alias/file", "real/file"]


def test_symlink_inside_the_root_is_followed(
    planted: tuple[pathlib.Path, pathlib.Path], link_check: str
) -> None:
    root, _ = planted
    store = objstore_sync.ObjectStore(str(root))
    assert store.get("alias/file") == b"inside"
    store.put("alias/new", b"via alias")
    assert (root / "real" / "new").read_bytes() == b"via alias"


def test_a_root_reached_through_a_link_works(tmp_path: pathlib.Path, link_check: str) -> None:
    (tmp_path / "real-root").mkdir()
    (tmp_path / "root-link").symlink_to(tmp_path / "real-root")
    store = objstore_sync.ObjectStore(str(tmp_path / "root-link"))
    store.put("a/b", b"through the link")
    assert store.get("a/b") == b"through the link"
    assert (tmp_path / "real-root" / "a" / "b").read_bytes() == b"through the link"
    assert [m.location for m in store.list()] == ["a/b"]


def test_link_free_paths_are_opened_without_reading_them_back(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a root without links, put/get/head take the kernel's word (no /proc readlink)."""
    if _openat2.open_without_links("/", os.O_RDONLY | os.O_DIRECTORY) is None:
        pytest.fail("openat2(RESOLVE_NO_SYMLINKS) is unavailable on this Linux machine")
    store = objstore_sync.ObjectStore(str(tmp_path))
    store.put("d/k", b"first")  # creates d/ (that path verifies as it goes)
    read_back: list[str] = []
    real_readlink = os.readlink

    def spy(path: Any, *args: Any, **kwargs: Any) -> Any:
        read_back.append(str(path))
        return real_readlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "readlink", spy)
    store.put("d/k", b"second")
    assert store.get("d/k") == b"second"
    assert store.head("d/k").size == 6
    assert read_back == []
    (tmp_path / "d" / "alias").symlink_to(tmp_path / "d")
    assert store.get("d/alias/k") == b"second"  # a link on the way: checked the old way
    assert read_back


def test_open_without_links(tmp_path: pathlib.Path) -> None:
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    (tmp_path / "dir").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "dir")
    fd = _openat2.open_without_links(str(tmp_path / "dir"), flags)
    assert fd is not None
    assert fd >= 0
    assert os.path.samestat(os.fstat(fd), (tmp_path / "dir").stat())
    os.close(fd)
    assert _openat2.open_without_links(str(tmp_path / "link"), flags) is None
    with pytest.raises(FileNotFoundError):
        _openat2.open_without_links(str(tmp_path / "missing"), flags)
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        _openat2.open_without_links(str(tmp_path / "file"), flags)


def test_staging_files_are_never_listed_and_are_swept(tmp_path: pathlib.Path) -> None:
    store = LocalStore(tmp_path)
    sync = objstore_sync.ObjectStore(store)
    sync.put("d/a", b"x")
    leftover = tmp_path / "d" / f"{STAGING_MARK}999-deadbeef"
    leftover.write_bytes(b"partial")
    assert [m.location for m in sync.list()] == ["d/a"]
    assert sync.list_with_delimiter("d").objects[0].location == "d/a"
    assert store.sweep_staging(older_than=3600) == 0
    os.utime(leftover, (1, 1))
    assert store.sweep_staging(older_than=3600) == 1
    assert not leftover.exists()


def test_racing_writers_never_produce_torn_reads(tmp_path: pathlib.Path) -> None:
    store = objstore_sync.ObjectStore(str(tmp_path))
    payloads = {
        hashlib.sha256(p).digest(): p
        for p in (bytes([w]) * (64 * 1024 + w * 1000) for w in range(1, 5))
    }
    store.put("hot", next(iter(payloads.values())))
    stop = threading.Event()
    torn: list[int] = []
    reads = [0]

    def writer(data: bytes) -> None:
        for _ in range(150):
            store.put("hot", data)

    def reader() -> None:
        while not stop.is_set():
            data = store.get("hot")
            reads[0] += 1
            if hashlib.sha256(data).digest() not in payloads:
                torn.append(len(data))

    readers = [threading.Thread(target=reader) for _ in range(4)]
    writers = [threading.Thread(target=writer, args=(p,)) for p in payloads.values()]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    for thread in readers:
        thread.join()
    assert torn == []
    assert reads[0] > 0
    assert hashlib.sha256(store.get("hot")).digest() in payloads
    assert [p.name for p in tmp_path.iterdir()] == ["hot"]


def test_threads_racing_create_have_one_winner(tmp_path: pathlib.Path) -> None:
    store = objstore_sync.ObjectStore(str(tmp_path))
    wins: list[int] = []
    barrier = threading.Barrier(16)

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            store.put("once", str(i).encode(), mode="create")
        except objstore.AlreadyExistsError:
            return
        wins.append(i)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wins) == 1
    assert store.get("once") == str(wins[0]).encode()
    assert [p.name for p in tmp_path.iterdir()] == ["once"]


def test_fsync_mode_syncs_file_and_directory(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    objstore_sync.ObjectStore(str(tmp_path), {"fsync": "true"}).put("a/b", b"durable")
    assert synced == ["file", "dir"]
    synced.clear()
    objstore_sync.ObjectStore(str(tmp_path)).put("a/c", b"fast")
    assert synced == []


def test_disk_full_is_typed_and_leaves_nothing(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = objstore_sync.ObjectStore(str(tmp_path))
    store.put("k", b"old")

    def full(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(InsufficientStorageError) as info:
        store.put("k", b"new content")
    assert isinstance(info.value, OSError)
    assert info.value.path == "k"
    monkeypatch.undo()
    assert store.get("k") == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["k"]


def test_file_io_runs_off_the_event_loop(tmp_path: pathlib.Path) -> None:
    import asyncio

    threads: set[str] = set()
    store = LocalStore(tmp_path)
    for name in ("_put_sync", "_get_bytes_sync", "_head_sync", "_delete_sync", "_read_sync"):
        original = getattr(store, name)

        def wrapped(*args: Any, _original: Any = original) -> Any:
            threads.add(threading.current_thread().name)
            return _original(*args)

        setattr(store, name, wrapped)

    async def main() -> None:
        await store.put("x", b"1")
        await store.get("x")
        await store.head("x")
        await store.get_result("x")
        await store.delete("x")

    asyncio.run(main())
    assert threads
    assert threading.main_thread().name not in threads


def test_root_is_created_on_first_write(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "not" / "yet"
    store = objstore_sync.ObjectStore(str(root))
    assert store.list() == []
    with pytest.raises(NotFoundError):
        store.get("k")
    assert not root.exists()
    store.put("k", b"v")
    assert (root / "k").read_bytes() == b"v"


def test_delete_removes_emptied_directories_but_not_the_root(tmp_path: pathlib.Path) -> None:
    store = objstore_sync.ObjectStore(str(tmp_path))
    store.put("a/b/c/d", b"x")
    store.put("a/keep", b"x")
    store.delete("a/b/c/d")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["keep"]
    store.delete("a/keep")
    assert list(tmp_path.iterdir()) == []
    assert tmp_path.exists()
    assert store.list_with_delimiter().common_prefixes == []


def test_key_conflicts(tmp_path: pathlib.Path) -> None:
    store = objstore_sync.ObjectStore(str(tmp_path))
    store.put("a/b", b"x")
    with pytest.raises(KeyConflictError) as info:
        store.put("a/b/c", b"y")
    assert isinstance(info.value, FileExistsError)
    with pytest.raises(KeyConflictError):
        store.put("a", b"y")
    with pytest.raises(NotFoundError):
        store.get("a")
    with pytest.raises(KeyConflictError):
        store.copy("a/b", "a")


def test_overlong_segment_is_an_invalid_path(tmp_path: pathlib.Path) -> None:
    store = objstore_sync.ObjectStore(str(tmp_path))
    with pytest.raises(InvalidPathError):
        store.put("x" * 300, b"v")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("file:///tmp/objstore-a", "/tmp/objstore-a"),
        ("file://localhost/tmp/objstore-b", "/tmp/objstore-b"),
        ("file:///tmp/with%20space", "/tmp/with space"),
        ("/tmp/plain/path", "/tmp/plain/path"),
    ],
)
def test_file_urls(url: str, expected: str) -> None:
    store = objstore.from_url(url)
    assert isinstance(store, LocalStore)
    assert store.root == expected


def test_a_stores_url_reads_back_as_its_root(tmp_path: pathlib.Path) -> None:
    # '#', '?', '%' and spaces read differently in a URL: handing store.url to from_url (or
    # to another process) wrote to 'x' instead of 'x#y?z', and 'ü+%41' became 'ü+A'
    root = str(tmp_path / "pre fix" / "ü+%41" / "x#y?z")
    store = objstore.from_url(root)
    assert store.url == f"file://{tmp_path}/pre%20fix/ü+%2541/x%23y%3Fz"
    again = objstore.from_url(store.url)
    assert isinstance(again, LocalStore)
    assert again.root == root


def test_relative_paths(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = objstore.from_url("data")
    assert isinstance(store, LocalStore)
    assert store.root == str(tmp_path / "data")
    with pytest.raises(InvalidURLError, match="absolute"):
        objstore.from_url("file://relative/dir")


async def test_staging_names_record_their_target_when_it_fits(tmp_path: pathlib.Path) -> None:
    store = LocalStore(tmp_path)
    long_name = "n" * 240  # a valid name, too long to fit in a staging name beside the mark
    writers = [store.open_writer(k, part_size=1024) for k in ("d/short", f"d/{long_name}")]
    for writer in writers:
        await writer.write(b"x" * 2048)  # staging files exist: the writers "die" here
    found = {u.location: u for u in await store.list_incomplete()}
    assert set(found) == {"d/short", "d"}  # the long one is reported by its directory
    assert all(u.upload_id.startswith(STAGING_MARK) for u in found.values())
    forged = objstore.IncompleteUpload(
        location="d/short", upload_id="../escape", initiated=found["d"].initiated
    )
    with pytest.raises(objstore.NotFoundError, match="not a staging file"):
        await store._discard_incomplete(forged)
    other = objstore.IncompleteUpload(
        location="d/other", upload_id=found["d/short"].upload_id, initiated=found["d"].initiated
    )
    with pytest.raises(objstore.NotFoundError, match="not a staging file"):
        await store._discard_incomplete(other)  # its name records another target
    assert await store.cleanup_incomplete("d", older_than=0) == 2
    assert os.listdir(tmp_path / "d") == []
    for writer in writers:
        with pytest.raises(objstore.ObjstoreError):
            await writer.close()
    assert await store.list() == []
