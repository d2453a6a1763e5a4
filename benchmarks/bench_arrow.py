"""A partitioned Parquet dataset on SeaweedFS: written and scanned through pyarrow by three paths.

- ``objstore``: ``PyFileSystem(objstore_sync.ArrowFileSystemHandler("s3://..."))``
- ``pyarrow``: pyarrow's native C++ ``S3FileSystem``
- ``s3fs``: ``PyFileSystem(FSSpecHandler(s3fs.S3FileSystem(...)))``

All three run in this process against one SeaweedFS, interleaved; each write goes to its own
prefix and every scan reads the same dataset, checking the row count.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from benchmarks.common import Row, interleave, print_table, save

MiB = 1024 * 1024
SIZE_MIB = int(os.environ.get("BENCH_ARROW_MIB", "1024"))
REPS = int(os.environ.get("BENCH_REPS", "3"))
PARTITIONS = 8
FILES_PER_PARTITION = 4
CLIENTS = ["objstore", "pyarrow", "s3fs"]


def make_table() -> pa.Table:
    """About ``SIZE_MIB`` of incompressible columns plus a partition key."""
    rows = SIZE_MIB * MiB // 32
    generator = __import__("numpy").random.default_rng(7)
    return pa.table(
        {
            "part": pa.array(generator.integers(0, PARTITIONS, rows), pa.int32()),
            "a": generator.integers(0, 2**62, rows),
            "b": generator.random(rows),
            "c": generator.integers(0, 2**62, rows),
        }
    )


def filesystems(server: Any, bucket: str) -> dict[str, pafs.FileSystem]:
    """The three filesystems; objstore's is rooted at the bucket, the others take it in paths."""
    import s3fs
    from pyarrow.fs import FSSpecHandler

    from objstore_sync import ArrowFileSystemHandler

    host = server.endpoint.removeprefix("http://")
    native = pafs.S3FileSystem(access_key=server.access_key, secret_key=server.secret_key,
                               endpoint_override=host, scheme="http",
                               region="us-east-1")  # fmt: skip
    fsspec = s3fs.S3FileSystem(key=server.access_key, secret=server.secret_key,
                               endpoint_url=server.endpoint,
                               client_kwargs={"region_name": "us-east-1"})  # fmt: skip
    handler = ArrowFileSystemHandler(f"s3://{bucket}", server.options())
    return {
        "objstore": pafs.PyFileSystem(handler),
        "pyarrow": native,
        "s3fs": pafs.PyFileSystem(FSSpecHandler(fsspec)),
    }


def writer(fs: pafs.FileSystem, table: pa.Table, base: str) -> Callable[[], float]:
    def run() -> float:
        target = f"{base}/{uuid.uuid4().hex[:8]}"
        start = time.perf_counter()
        ds.write_dataset(
            table, target, format="parquet", filesystem=fs, partitioning=["part"],
            partitioning_flavor="hive", max_rows_per_file=table.num_rows // 32 + 1,
            max_rows_per_group=table.num_rows // 64 + 1,
        )  # fmt: skip
        return SIZE_MIB * MiB / (time.perf_counter() - start) / 1e6

    return run


def scanner(fs: pafs.FileSystem, path: str, rows: int) -> Callable[[], float]:
    def run() -> float:
        start = time.perf_counter()
        table = ds.dataset(path, format="parquet", filesystem=fs, partitioning="hive").to_table()
        seconds = time.perf_counter() - start
        assert table.num_rows == rows, (table.num_rows, rows)
        return SIZE_MIB * MiB / seconds / 1e6

    return run


def main() -> None:
    import botocore.session

    from objstore.testing.emulators import seaweedfs

    table = make_table()
    with tempfile.TemporaryDirectory() as directory, seaweedfs(directory) as server:
        admin = botocore.session.get_session().create_client(
            "s3", endpoint_url=server.endpoint, region_name="us-east-1",
            aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
        )  # fmt: skip
        bucket = f"arrow-{uuid.uuid4().hex[:8]}"
        admin.create_bucket(Bucket=bucket)
        systems = filesystems(server, bucket)

        def where(client: str, path: str) -> str:
            return path if client == "objstore" else f"{bucket}/{path}"

        writer(systems["objstore"], table, "shared")()
        top = systems["objstore"].get_file_info(pafs.FileSelector("shared"))
        (written,) = [info.path for info in top]
        files = systems["objstore"].get_file_info(pafs.FileSelector(written, recursive=True))
        count = sum(1 for f in files if f.type == pafs.FileType.File)
        scan = Row(f"scan {SIZE_MIB} MiB, {count} files", "MB/s")
        scans = {c: scanner(systems[c], where(c, written), table.num_rows) for c in CLIENTS}
        interleave(scans, REPS, scan)
        write = Row(f"write {SIZE_MIB} MiB, hive-partitioned", "MB/s")
        writes = {c: writer(systems[c], table, where(c, f"w-{c}")) for c in CLIENTS}
        interleave(writes, REPS, write)
        rows = [scan, write]
        handler = systems["objstore"].handler
        handler.store.close()
    print_table(f"pyarrow datasets on SeaweedFS ({SIZE_MIB} MiB)", rows, CLIENTS,
                ["pyarrow", "s3fs"])  # fmt: skip
    save("arrow", rows)


if __name__ == "__main__":
    main()
