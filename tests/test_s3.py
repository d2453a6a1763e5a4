"""The S3 backend on a real S3 server (SeaweedFS): the conformance suite and S3 specifics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

import objstore
import objstore_sync
from objstore.testing import FacadeAsAsync, StoreConformance, expected_failure
from objstore.testing.emulators import S3Server

SEAWEEDFS_ORDER = (
    "SeaweedFS lists in directory-tree order ('a/b/1' before 'a/b.txt') and its "
    "start-after skips the subtree of a key that is also a prefix; AWS S3 lists in byte order"
)
SEAWEEDFS_FOLDERS = (
    "SeaweedFS 4.48 keeps a folder after its last object is deleted and lists it as a common "
    "prefix; AWS S3 has no folders"
)


class TestS3Store(StoreConformance):
    @pytest.fixture
    async def store(self, s3_server: S3Server, bucket: str) -> AsyncIterator[Any]:
        store = objstore.from_url(f"s3://{bucket}", s3_server.options())
        yield store
        await store.aclose()

    @pytest.fixture
    async def make_store(
        self, s3_server: S3Server, bucket: str
    ) -> AsyncIterator[Callable[[str], Any]]:
        made: list[Any] = []

        def make(prefix: str) -> Any:
            made.append(objstore.from_url(f"s3://{bucket}/{prefix}", s3_server.options()))
            return made[-1]

        yield make
        for store in made:
            await store.aclose()

    test_list_prefix_matches_whole_segments = expected_failure(
        StoreConformance.test_list_prefix_matches_whole_segments, SEAWEEDFS_ORDER
    )
    test_list_offset = expected_failure(StoreConformance.test_list_offset, SEAWEEDFS_ORDER)
    test_emptied_prefixes_are_not_listed = expected_failure(
        StoreConformance.test_emptied_prefixes_are_not_listed, SEAWEEDFS_FOLDERS
    )

    async def test_listing_contents_on_seaweedfs(self, store: Any) -> None:
        keys = ["a/b/1", "a/b/2", "a/bc/3", "a/b.txt", "ab/4", "z", "o/a", "o/b", "o/d"]
        for key in keys:
            await store.put(key, b"x")
        assert sorted(m.location for m in await store.list("a")) == sorted(
            k for k in keys if k.startswith("a/")
        )
        assert sorted(m.location for m in await store.list()) == sorted(keys)
        assert [m.location for m in await store.list("o", offset="o/b")] == ["o/d"]


class TestS3Facade(StoreConformance):
    @pytest.fixture
    def store(self, s3_server: S3Server, bucket: str) -> Iterator[Any]:
        sync = objstore_sync.ObjectStore(f"s3://{bucket}", s3_server.options())
        yield FacadeAsAsync(sync)
        sync.close()

    @pytest.fixture
    def make_store(self, s3_server: S3Server, bucket: str) -> Iterator[Callable[[str], Any]]:
        made: list[Any] = []

        def make(prefix: str) -> Any:
            made.append(objstore_sync.ObjectStore(f"s3://{bucket}/{prefix}", s3_server.options()))
            return FacadeAsAsync(made[-1])

        yield make
        for store in made:
            store.close()

    test_list_prefix_matches_whole_segments = expected_failure(
        StoreConformance.test_list_prefix_matches_whole_segments, SEAWEEDFS_ORDER
    )
    test_list_offset = expected_failure(StoreConformance.test_list_offset, SEAWEEDFS_ORDER)
    test_emptied_prefixes_are_not_listed = expected_failure(
        StoreConformance.test_emptied_prefixes_are_not_listed, SEAWEEDFS_FOLDERS
    )


class TestS3ChecksumStore(TestS3Store):
    """Uploads declaring a SHA-256 checksum, payloads unsigned, under a prefix that needs
    quoting: empty ranges, multipart copies and errors' paths have each gone wrong here."""

    one_loop = True  # a configuration: the plain class runs both loops

    @pytest.fixture
    async def store(self, s3_server: S3Server, bucket: str) -> AsyncIterator[Any]:
        options = s3_server.options(aws_checksum_algorithm="sha256", aws_unsigned_payload="true")
        store = objstore.from_url(f"s3://{bucket}/pre fix/ü+%", options)
        yield store
        await store.aclose()


SSE_C_KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="  # base64 of 32 bytes, a test key
SEAWEEDFS_ENCRYPTED_VERSIONS = (
    "SeaweedFS 4.48 lists another ETag in ListObjectVersions for an object it encrypted "
    "(SSE-C, SSE-S3) than HEAD, GET and ListObjectsV2 give; AWS gives one"
)


class TestS3ManagedKeyStore(TestS3Store):
    """Every object written with SSE-S3 (``aws_server_side_encryption=AES256``; the test
    server has a key-encryption key for it): copies ask for it too, or they would get the
    bucket's default (tests/test_s3_specific.py checks what the server says it encrypted)."""

    one_loop = True  # a configuration: the plain class runs both loops

    @pytest.fixture
    async def store(self, s3_server: S3Server, bucket: str) -> AsyncIterator[Any]:
        options = s3_server.options(aws_server_side_encryption="AES256")
        store = objstore.from_url(f"s3://{bucket}", options)
        yield store
        await store.aclose()

    test_list_versions_lists_what_reads_see = expected_failure(
        StoreConformance.test_list_versions_lists_what_reads_see, SEAWEEDFS_ENCRYPTED_VERSIONS
    )


class TestS3CustomerKeyStore(TestS3Store):
    """Every object written with a customer-provided key (SSE-C): reads, copies and
    multipart writes all send the key, copies twice (to read their source too). SeaweedFS
    refuses UploadPartCopy with a key, so copy-if-not-exists goes through the client."""

    one_loop = True  # a configuration: the plain class runs both loops

    @pytest.fixture
    async def store(self, s3_server: S3Server, bucket: str) -> AsyncIterator[Any]:
        options = s3_server.options(
            aws_server_side_encryption="sse-c", aws_sse_customer_key_base64=SSE_C_KEY
        )
        store = objstore.from_url(f"s3://{bucket}", options)
        yield store
        await store.aclose()

    test_list_versions_lists_what_reads_see = expected_failure(
        StoreConformance.test_list_versions_lists_what_reads_see, SEAWEEDFS_ENCRYPTED_VERSIONS
    )

    async def test_large_objects_are_copied_through_the_client(self, store: Any) -> None:
        data = bytes(range(256)) * (48 * 1024 + 1)  # 12 MiB and a bit: three parts
        await store.put("big/src", data, attributes={"content_type": "application/x-big"})
        await store.copy_if_not_exists("big/src", "big/dst")
        copied = await store.get_result("big/dst")
        assert copied.data == data
        assert copied.attributes["content_type"] == "application/x-big"
        with pytest.raises(objstore.AlreadyExistsError):
            await store.copy_if_not_exists("big/src", "big/dst")
        assert await store.list_incomplete() == []
