"""objstore.fsspec: the AsyncFileSystem on every backend, registration, pandas, pickling."""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Callable, Iterator
from typing import Any

import fsspec
import pytest
from fsspec.asyn import sync
from fsspec.callbacks import Callback

import objstore
from objstore import AlreadyExistsError, ConcurrentModificationError, UnknownOptionError
from objstore.fsspec import (
    AzureBlobFileSystem,
    GCSFileSystem,
    ObjstoreFileSystem,
    S3FileSystem,
    register,
)
from objstore.testing.emulators import AzureServer, S3Server

BACKENDS = ["memory", "local", "s3", "gcs", "azure"]
MiB = 1024 * 1024


@pytest.fixture(params=BACKENDS)
def fs(
    request: pytest.FixtureRequest, backend_target: Callable[..., Any]
) -> Iterator[ObjstoreFileSystem]:
    made = ObjstoreFileSystem(*backend_target(request.param, "root"))
    yield made
    made.close()


@pytest.fixture
def registry() -> Iterator[None]:
    """Restore fsspec's registry and instance caches after a test registers objstore."""
    table = sys.modules["fsspec.registry"]._registry  # the mutable dict behind fsspec.registry
    saved = dict(table)
    yield
    table.clear()
    table.update(saved)
    S3FileSystem.clear_instance_cache()


class Recorder(Callback):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int | None] = []
        self.values: list[int] = []

    def set_size(self, size: int | None) -> None:
        self.sizes.append(size)
        super().set_size(size)

    def call(self, *args: Any, **kwargs: Any) -> None:
        self.values.append(self.value)


# ---- bytes in and out ---------------------------------------------------------------------


def test_pipe_and_cat_with_fsspec_ranges(fs: ObjstoreFileSystem) -> None:
    fs.pipe_file("r/text", b"hello world")
    assert fs.cat_file("r/text") == b"hello world"
    assert fs.cat_file("r/text", start=6) == b"world"
    assert fs.cat_file("r/text", start=-5) == b"world"
    assert fs.cat_file("r/text", start=0, end=-6) == b"hello"
    assert fs.cat_file("r/text", start=2, end=4) == b"ll"
    assert fs.cat_file("r/text", start=20) == b""
    assert fs.cat_file("r/text", start=4, end=2) == b""
    assert fs.cat(["r/text"]) == {"r/text": b"hello world"}
    with pytest.raises(FileNotFoundError):
        fs.cat_file("r/missing")


def test_pipe_create_mode(fs: ObjstoreFileSystem) -> None:
    fs.pipe_file("c/once", b"1", mode="create")
    with pytest.raises(AlreadyExistsError):
        fs.pipe_file("c/once", b"2", mode="create")
    assert fs.cat_file("c/once") == b"1"


def test_info_ls_find(fs: ObjstoreFileSystem) -> None:
    for path in ("t/a.txt", "t/x/b.txt", "t/x/y/c.txt", "tt/d.txt"):
        fs.pipe_file(path, path.encode())
    info = fs.info("t/a.txt")
    assert (info["name"], info["size"], info["type"]) == ("t/a.txt", 7, "file")
    assert info["ETag"]
    assert fs.info("t/x")["type"] == "directory"
    assert fs.isdir("t")
    assert fs.isfile("t/a.txt")
    assert not fs.exists("t/nope")
    with pytest.raises(FileNotFoundError):
        fs.info("t/nope")
    assert fs.ls("t", detail=False) == ["t/a.txt", "t/x"]
    assert fs.ls("t/a.txt", detail=False) == ["t/a.txt"]
    with pytest.raises(FileNotFoundError):
        fs.ls("nothing")
    assert fs.find("t") == ["t/a.txt", "t/x/b.txt", "t/x/y/c.txt"]
    assert fs.find("t", withdirs=True) == [
        "t", "t/a.txt", "t/x", "t/x/b.txt", "t/x/y", "t/x/y/c.txt",
    ]  # fmt: skip
    assert fs.find("t", maxdepth=1) == ["t/a.txt"]
    assert fs.find("t/a.txt") == ["t/a.txt"]
    assert set(fs.find("t", detail=True)) == {"t/a.txt", "t/x/b.txt", "t/x/y/c.txt"}
    assert sorted(fs.glob("t/x/*.txt")) == ["t/x/b.txt"]
    assert fs.du("t") == 7 + 9 + 11
    assert fs.modified("t/a.txt").tzinfo is not None


def test_rm_and_copy(fs: ObjstoreFileSystem) -> None:
    for i in range(5):
        fs.pipe_file(f"d/{i}", b"x")
    fs.pipe_file("dd/keep", b"k")
    fs.cp_file("d/0", "copy/0")
    assert fs.cat_file("copy/0") == b"x"
    fs.rm("d", recursive=True)
    assert not fs.exists("d")
    assert fs.exists("dd/keep")  # whole segments only
    fs.rm_file("copy/0")
    assert not fs.exists("copy/0")
    fs.pipe({"m/1": b"1", "m/2": b"2"})
    fs.rm(["m/1", "m/2"])
    assert not fs.exists("m")


def test_recursive_copy_and_move_of_a_directory(fs: ObjstoreFileSystem) -> None:
    # fsspec passes the directories along with the files to _cp_file; mv checks every copy
    for key in ("src/a", "src/b/c", "src/b/d/e"):
        fs.pipe_file(key, key.encode())
    fs.cp("src", "copied", recursive=True)
    assert fs.find("copied") == ["copied/a", "copied/b/c", "copied/b/d/e"]
    fs.mv("copied", "moved", recursive=True)
    assert fs.find("moved") == ["moved/a", "moved/b/c", "moved/b/d/e"]
    assert not fs.exists("copied")
    assert fs.cat_file("moved/b/d/e") == b"src/b/d/e"
    with pytest.raises(FileNotFoundError):
        fs.cp_file("no-such", "x")


def test_touch(fs: ObjstoreFileSystem) -> None:
    fs.pipe_file("t/full", b"data")
    fs.touch("t/new")
    assert fs.cat_file("t/new") == b""
    with pytest.raises(NotImplementedError, match="without truncating"):
        fs.touch("t/full", truncate=False)
    assert fs.cat_file("t/full") == b"data"
    fs.touch("t/other", truncate=False)  # a new one is made either way
    fs.touch("t/full")
    assert fs.cat_file("t/full") == b""


def test_put_and_get_files_with_progress(fs: ObjstoreFileSystem, tmp_path: Any) -> None:
    source = tmp_path / "source.bin"
    payload = os.urandom(3 * MiB + 17)
    source.write_bytes(payload)
    up = Recorder()
    fs.put_file(str(source), "files/big.bin", callback=up)
    assert up.sizes == [len(payload)]
    assert up.values
    assert up.values[-1] == len(payload)
    down = Recorder()
    target = tmp_path / "target.bin"
    fs.get_file("files/big.bin", str(target), callback=down)
    assert target.read_bytes() == payload
    assert down.sizes == [len(payload)]
    assert down.values[-1] == len(payload)
    assert not list(tmp_path.glob("*.objstore-partial"))
    with pytest.raises(FileNotFoundError):
        fs.get_file("files/missing", str(tmp_path / "missing.bin"))
    assert not (tmp_path / "missing.bin").exists()


# ---- files --------------------------------------------------------------------------------


def test_open_read_seek(fs: ObjstoreFileSystem) -> None:
    data = bytes(range(256)) * 4096
    fs.pipe_file("o/data", data)
    with fs.open("o/data", "rb", block_size=64 * 1024) as handle:
        handle.seek(100_000)
        assert handle.read(10) == data[100_000:100_010]
        handle.seek(-5, os.SEEK_END)
        assert handle.read() == data[-5:]
        assert handle.size == len(data)


def test_open_read_is_pinned_to_the_version_opened(fs: ObjstoreFileSystem) -> None:
    fs.pipe_file("o/pinned", b"a" * 100)
    with fs.open("o/pinned", "rb", block_size=10, cache_type="none") as handle:
        assert handle.read(10) == b"a" * 10
        fs.pipe_file("o/pinned", b"b" * 100)
        with pytest.raises(ConcurrentModificationError):
            handle.read(10)


def test_written_file_visible_only_on_close(fs: ObjstoreFileSystem) -> None:
    handle = fs.open("w/file", "wb", block_size=5 * MiB)
    for _ in range(3):
        handle.write(os.urandom(2 * MiB))
    assert not fs.exists("w/file")
    handle.close()
    assert fs.size("w/file") == 6 * MiB


def test_exception_or_drop_discards_the_write(fs: ObjstoreFileSystem) -> None:
    def produce() -> None:
        with fs.open("w/failed", "wb", block_size=5 * MiB) as handle:
            handle.write(os.urandom(6 * MiB))  # one part already uploaded
            raise RuntimeError("the producer failed")

    with pytest.raises(RuntimeError):
        produce()
    assert not fs.exists("w/failed")
    dropped = fs.open("w/dropped", "wb")
    dropped.write(b"never committed")
    del dropped
    assert not fs.exists("w/dropped")


def test_exclusive_create_mode(fs: ObjstoreFileSystem) -> None:
    with fs.open("x/once", "xb") as handle:
        handle.write(b"1")
    with pytest.raises(AlreadyExistsError), fs.open("x/once", "xb") as again:
        again.write(b"2")
    assert fs.cat_file("x/once") == b"1"


def test_pickle_keeps_the_store(fs: ObjstoreFileSystem) -> None:
    fs.pipe_file("p/f", b"pickled")
    clone = pickle.loads(pickle.dumps(fs))
    if fs.store.backend == "memory":  # a memory store pickles a snapshot
        assert clone.cat_file("p/f") == b"pickled"
    assert clone.store.url == fs.store.url
    clone.close()


# ---- bucket filesystems and registration ----------------------------------------------------


def test_register_routes_s3_urls_through_objstore(
    registry: None, s3_server: S3Server, bucket: str
) -> None:
    register("s3")
    options = s3_server.options()
    fs = fsspec.filesystem("s3", **options)
    assert isinstance(fs, S3FileSystem)
    fs.pipe_file(f"{bucket}/reg/x", b"via fsspec")
    with fsspec.open(f"s3://{bucket}/reg/x", "rb", **options) as handle:
        assert handle.read() == b"via fsspec"
    assert fs.ls(f"{bucket}/reg", detail=False) == [f"{bucket}/reg/x"]
    with pytest.raises(objstore.InvalidRequestError, match="names no bucket"):
        fs.ls("")
    fs.close()


def test_a_copy_to_another_bucket_streams(
    registry: None,
    s3_server: S3Server,
    s3_admin: Any,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = f"{bucket}-2"
    s3_admin.create_bucket(Bucket=other)
    options: dict[str, Any] = s3_server.options()
    fs = S3FileSystem(**options, skip_instance_cache=True)
    data = os.urandom(20 * 1024 * 1024)
    fs.pipe_file(f"{bucket}/big", data)

    async def no_whole_reads(*args: Any) -> bytes:
        raise AssertionError("a cross-bucket copy read the object whole")

    with monkeypatch.context() as patched:
        patched.setattr(objstore.ObjectStore, "get", no_whole_reads)
        fs.cp_file(f"{bucket}/big", f"{other}/big")
    assert fs.cat_file(f"{other}/big") == data
    fs.rm_file(f"{other}/big")
    s3_admin.delete_bucket(Bucket=other)
    fs.close()


def test_unknown_storage_option_fails_at_construction(registry: None) -> None:
    with pytest.raises(UnknownOptionError, match="did you mean 'aws_region'"):
        S3FileSystem(aws_regoin="eu-west-1", skip_instance_cache=True)
    with pytest.raises(objstore.InvalidRequestError, match="ftp"):
        register("ftp")


def test_bucket_filesystem_pickles_without_secrets(
    registry: None, s3_server: S3Server, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    options: dict[str, Any] = s3_server.options()
    fs = S3FileSystem(**options)
    fs.pipe_file(f"{bucket}/s/x", b"1")
    payload = pickle.dumps(fs)
    assert s3_server.secret_key.encode() not in payload
    assert s3_server.access_key.encode() not in payload
    S3FileSystem.clear_instance_cache()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    clone = pickle.loads(payload)
    assert clone.cat_file(f"{bucket}/s/x") == b"1"
    allowed = S3FileSystem(**{**options, "allow_pickle_secrets": "true"})
    assert s3_server.secret_key.encode() in pickle.dumps(allowed)
    for each in (fs, clone, allowed):
        each.close()


def test_bucket_filesystem_unpickled_without_secrets_says_so(
    registry: None, s3_server: S3Server, bucket: str
) -> None:
    options: dict[str, Any] = s3_server.options()
    fs = S3FileSystem(**options)
    payload = pickle.dumps(fs)
    S3FileSystem.clear_instance_cache()
    clone = pickle.loads(payload)  # no credentials in this process's environment
    with pytest.raises(objstore.UnauthenticatedError) as caught:
        clone.cat_file(f"{bucket}/anything")
    assert "(aws_access_key_id, aws_secret_access_key)" in caught.value.__notes__[0]
    for each in (fs, clone):
        each.close()


@pytest.mark.parametrize("scheme", ["s3", "gcs", "azure"])
def test_a_missing_bucket_is_not_a_directory(
    registry: None, scheme: str, request: pytest.FixtureRequest
) -> None:
    # a misspelt bucket must not pass for an empty directory, and mkdir makes no bucket
    if scheme == "s3":
        server: Any = request.getfixturevalue("s3_server")
        fs: Any = S3FileSystem(**server.options())
        bucket = request.getfixturevalue("bucket")
    elif scheme == "gcs":
        fs = GCSFileSystem(**request.getfixturevalue("gcs_server").options())
        bucket = request.getfixturevalue("gcs_bucket")
    else:
        fs = AzureBlobFileSystem(**request.getfixturevalue("azure_server").options())
        bucket = request.getfixturevalue("azure_container")
    assert fs.exists(bucket)  # there, and empty
    assert fs.isdir(bucket)
    assert not fs.exists("no-such-bucket-zz")
    with pytest.raises(FileNotFoundError):
        fs.info("no-such-bucket-zz")
    with pytest.raises(NotImplementedError, match="does not create buckets"):
        fs.mkdir("no-such-bucket-zz")
    fs.mkdir(bucket)  # exists: nothing to do
    fs.makedirs(f"{bucket}/a/b", exist_ok=True)
    fs.close()


def test_pandas_reads_and_writes_s3_through_objstore(
    registry: None, s3_server: S3Server, bucket: str
) -> None:
    import pandas as pd

    register("s3")
    options = s3_server.options()
    frame = pd.DataFrame({"city": ["Oslo", "Lima", "Pune"], "rain_mm": [763.0, 16.0, 722.0]})
    frame.to_parquet(f"s3://{bucket}/pd/weather.parquet", storage_options=options)
    frame.to_csv(f"s3://{bucket}/pd/weather.csv", index=False, storage_options=options)
    back = pd.read_parquet(f"s3://{bucket}/pd/weather.parquet", storage_options=options)
    pd.testing.assert_frame_equal(back, frame)
    csv = pd.read_csv(f"s3://{bucket}/pd/weather.csv", storage_options=options)
    pd.testing.assert_frame_equal(csv, frame)
    fs = fsspec.filesystem("s3", **options)
    assert isinstance(fs, S3FileSystem)
    assert fs.info(f"{bucket}/pd/weather.parquet")["size"] > 0
    fs.close()


def test_pandas_on_abfs_urls_through_objstore(
    registry: None, azure_server: AzureServer, azure_container: str
) -> None:
    import pandas as pd

    register("abfs", "az")
    options = azure_server.options()
    frame = pd.DataFrame({"city": ["Oslo", "Lima"], "rain_mm": [763.0, 16.0]})
    frame.to_parquet(f"abfs://{azure_container}/pd/weather.parquet", storage_options=options)
    back = pd.read_parquet(f"az://{azure_container}/pd/weather.parquet", storage_options=options)
    pd.testing.assert_frame_equal(back, frame)
    fs = fsspec.filesystem("abfs", **options)
    assert isinstance(fs, AzureBlobFileSystem)
    assert fs.ls(f"{azure_container}/pd", detail=False) == [f"{azure_container}/pd/weather.parquet"]
    payload = pickle.dumps(fs)
    assert azure_server.key.encode() not in payload
    fs.close()
    AzureBlobFileSystem.clear_instance_cache()


def test_ls_lists_versions(s3_server: S3Server, s3_admin: Any, bucket: str) -> None:
    # s3fs's ls(versions=True): each version of a level's files, newest first, with its id;
    # delete markers left out; directories as they are
    s3_admin.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    fs = ObjstoreFileSystem(f"s3://{bucket}", s3_server.options())
    first = sync(fs.loop, fs.store.put, "d/f", b"1")
    second = sync(fs.loop, fs.store.put, "d/f", b"22")
    fs.pipe_file("d/gone", b"x")
    fs.rm("d/gone")
    fs.pipe_file("d/sub/deeper", b"x")
    listed = fs.ls("d", versions=True)
    assert [(e["name"], e["type"], e.get("VersionId"), e.get("is_latest")) for e in listed] == [
        ("d/f", "file", second.version, True),
        ("d/f", "file", first.version, False),
        ("d/gone", "file", listed[2]["VersionId"], False),
        ("d/sub", "directory", None, None),
    ]
    assert [e["size"] for e in listed[:3]] == [2, 1, 1]
    assert [e["version_id"] for e in fs.ls("d/f", versions=True)] == [
        second.version, first.version
    ]  # fmt: skip
    assert fs.ls("d", detail=False) == ["d/f", "d/sub"]
    fs.cp_file("d/f", "e/old", version_id=first.version)  # that version's bytes
    assert fs.cat_file("e/old") == b"1"
    fs.rm_file("d/f", version_id=first.version)  # that version only, as a version is read
    assert [e["version_id"] for e in fs.ls("d/f", versions=True)] == [second.version]
    with pytest.raises(objstore.InvalidRequestError, match="one file"):
        fs.rm(["d/f", "d/sub/deeper"], version_id=second.version)
    with pytest.raises(objstore.InvalidRequestError, match="one file"):
        fs.rm("d", recursive=True, version_id=second.version)
    fs.rm("d/f", version_id=second.version)
    assert not fs.exists("d/f")
    assert fs.cat_file("d/sub/deeper") == b"x"
    fs.close()
    memory = ObjstoreFileSystem("memory://")  # no history: each file as it is, its latest
    memory.pipe_file("m/a", b"abc")
    (entry,) = memory.ls("m", versions=True)
    assert (entry["name"], entry["size"], entry["is_latest"]) == ("m/a", 3, True)
    assert entry["version_id"] == memory.info("m/a")["version"]


def test_versions_are_read_not_ignored(s3_server: S3Server, s3_admin: Any, bucket: str) -> None:
    # s3fs's version_id (gcsfs's generation): the version asked for, never the current object
    s3_admin.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    fs = ObjstoreFileSystem(f"s3://{bucket}", s3_server.options())
    first = sync(fs.loop, fs.store.put, "v", b"first version")
    fs.pipe_file("v", b"second")
    assert fs.cat_file("v") == b"second"
    assert fs.cat_file("v", version_id=first.version) == b"first version"
    assert fs.cat_file("v", start=6, version_id=first.version) == b"version"
    assert fs.info("v", version_id=first.version)["size"] == 13
    with fs.open("v", "rb", version_id=first.version) as handle:
        assert handle.read() == b"first version"
    with pytest.raises(FileNotFoundError):
        fs.cat_file("v", version_id="no-such-version")
    with pytest.raises(objstore.InvalidRequestError, match="read, not written"):
        fs.open("v", "wb", version_id=first.version)
    fs.close()
    memory = ObjstoreFileSystem("memory://")
    memory.pipe_file("k", b"current")
    with pytest.raises(FileNotFoundError):  # it keeps no history: not the current data
        memory.cat_file("k", version_id="an-old-one")


def test_a_script_that_never_closes_its_filesystems_exits_quietly(
    s3_server: S3Server, bucket: str
) -> None:
    # fsspec's loop never shuts down, so nothing but the filesystem can close the sessions it
    # made there; left to the garbage collector, aiohttp prints "Unclosed client session"
    import subprocess

    code = (
        "from objstore.fsspec import ObjstoreFileSystem, S3FileSystem\n"
        f"fs = ObjstoreFileSystem('s3://{bucket}', {s3_server.options()!r})\n"
        "fs.pipe_file('a', b'x')\n"
        f"by_bucket = S3FileSystem(**{s3_server.options()!r})\n"
        f"print(fs.cat_file('a'), by_bucket.cat_file('{bucket}/a'), flush=True)\n"
        f"dropped = ObjstoreFileSystem('s3://{bucket}', {s3_server.options()!r})\n"
        "dropped.exists('a')\n"
        "del dropped\n"
    )
    result = subprocess.run([sys.executable, "-X", "dev", "-c", code], capture_output=True,
                            text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "b'x' b'x'" in result.stdout
    assert result.stderr == ""


def test_a_collected_filesystem_closes_the_sessions_of_the_store_it_made(
    s3_server: S3Server, bucket: str
) -> None:
    import gc

    options = s3_server.options(allow_pickle_secrets="true")
    made = ObjstoreFileSystem(f"s3://{bucket}", options)
    made.pipe_file("a", b"x")
    store: Any = made.store
    given = ObjstoreFileSystem(store)  # a store the caller gave: the caller closes it
    assert len(store._http) == 1  # a session on fsspec's loop
    del given
    gc.collect()
    assert len(store._http) == 1
    copy = pickle.loads(pickle.dumps(made))  # its own copy of the store: its to close
    assert copy.cat_file("a") == b"x"
    copied: Any = copy.store
    del made, copy
    gc.collect()
    assert len(store._http) == 0
    assert len(copied._http) == 0
    sync(fsspec.asyn.get_loop(), store.aclose)


async def test_an_asynchronous_filesystem_leaves_its_store_to_its_loop(
    s3_server: S3Server, bucket: str
) -> None:
    import gc

    made = ObjstoreFileSystem(f"s3://{bucket}", s3_server.options(), asynchronous=True)
    await made._pipe_file("a", b"x")
    store: Any = made.store
    del made  # a finalizer that raised would fail the test (pytest reports it unraisable)
    gc.collect()
    assert len(store._http) == 1  # its loop's shutdown closes it (asyncio.run)
    await store.aclose()


def test_a_forked_child_exits_without_waiting_for_the_parents_loop(tmp_path: Any) -> None:
    # the child has the parent's filesystem but not fsspec's loop thread: its exit must not
    # wait on that loop to close the store (it waited for the finalizer's timeout, made long
    # here so that the wait cannot pass for a slow exit)
    import subprocess

    code = (
        "import os, sys, time\n"
        "import objstore.fsspec\n"
        "from objstore.fsspec import ObjstoreFileSystem\n"
        "objstore.fsspec.RELEASE_TIMEOUT = 60.0\n"
        f"fs = ObjstoreFileSystem({str(tmp_path)!r})\n"
        "fs.pipe_file('a', b'x')\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    sys.exit(0)\n"
        "started = time.monotonic()\n"
        "os.waitpid(pid, 0)\n"
        "print(time.monotonic() - started)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) < 30
