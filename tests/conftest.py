"""Shared fixtures: a clean environment for every test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

import objstore
from objstore.backends.s3 import S3Store
from objstore.testing.emulators import (
    AzureServer,
    GCSServer,
    S3Server,
    azurite,
    fake_gcs,
    seaweedfs,
)
from objstore.testing.faultproxy import ENDPOINT_KEYS, FaultProxy, ProxiedBackend, split_endpoint

_PREFIXES = ("AWS_", "AZURE_", "GOOGLE_", "OBJSTORE_")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove cloud and objstore variables so no test depends on the machine's settings."""
    for name in list(os.environ):
        if name.startswith(_PREFIXES):
            monkeypatch.delenv(name)
    for name in ("STORAGE_EMULATOR_HOST", "AZURITE_BLOB_STORAGE_URL", "IDENTITY_ENDPOINT",
                 "IDENTITY_HEADER", "GCE_METADATA_ROOT", "CLOUDSDK_CONFIG"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):  # the machine's proxies
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    # No test may reach a cloud's metadata address: point the fallbacks at a closed port.
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("AZURE_MSI_ENDPOINT", "http://127.0.0.1:9/metadata/identity/oauth2/token")
    # botocore's chain must never dial the instance-metadata address from a test
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One SeaweedFS server for the whole session (see objstore.testing.emulators)."""
    with seaweedfs(str(tmp_path_factory.mktemp("seaweedfs"))) as server:
        yield server


@pytest.fixture(scope="session")
def s3_admin(s3_server: S3Server) -> Iterator[Any]:
    """An independent S3 client (botocore) for bucket set-up and cross-checks."""
    import botocore.session

    client = botocore.session.get_session().create_client(
        "s3", endpoint_url=s3_server.endpoint, region_name=s3_server.region,
        aws_access_key_id=s3_server.access_key, aws_secret_access_key=s3_server.secret_key,
    )  # fmt: skip
    yield client
    client.close()


@pytest.fixture
def bucket(s3_admin: Any) -> Iterator[str]:
    """A fresh bucket, emptied and removed after the test."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    s3_admin.create_bucket(Bucket=name)
    yield name
    for page in s3_admin.get_paginator("list_objects_v2").paginate(Bucket=name):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3_admin.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
    for upload in s3_admin.list_multipart_uploads(Bucket=name).get("Uploads", []):
        s3_admin.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    s3_admin.delete_bucket(Bucket=name)


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GCSServer]:
    """One fake-gcs-server for the whole session (see objstore.testing.emulators)."""
    with fake_gcs(str(tmp_path_factory.mktemp("fake-gcs"))) as server:
        yield server


@pytest.fixture
def gcs_bucket(gcs_server: GCSServer) -> Iterator[str]:
    """A fresh GCS bucket, emptied and removed after the test."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    gcs_server.create_bucket(name)
    yield name
    gcs_server.delete_bucket(name)


@pytest.fixture(scope="session")
def azure_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureServer]:
    """One Azurite blob service for the whole session (see objstore.testing.emulators)."""
    with azurite(str(tmp_path_factory.mktemp("azurite"))) as server:
        yield server


@pytest.fixture(scope="session")
def azure_loose_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureServer]:
    """Azurite in loose mode, which accepts customer-provided keys (and ignores them: the
    tests that send them put a proxy in front that enforces Azure's rules for them)."""
    with azurite(str(tmp_path_factory.mktemp("azurite-loose")), loose=True) as server:
        yield server


@pytest.fixture(scope="session")
def azure_oauth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureServer]:
    """Azurite over HTTPS that accepts Entra ID bearer tokens (``--oauth basic``)."""
    with azurite(str(tmp_path_factory.mktemp("azurite-oauth")), oauth=True) as server:
        yield server


@pytest.fixture
def azure_container(azure_server: AzureServer) -> Iterator[str]:
    """A fresh Azure container, removed with its blobs after the test."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    azure_server.create_container(name)
    yield name
    azure_server.delete_container(name)


Target = tuple[str, dict[str, str]]


@pytest.fixture
def backend_target(request: pytest.FixtureRequest) -> Callable[[str, str], Target]:
    """``(backend, prefix) -> (url, options)`` of a fresh store on memory, local, s3, gcs or
    azure (the emulators and buckets come from the fixtures above)."""

    def target(backend: str, prefix: str = "") -> Target:
        path = f"/{prefix}" if prefix else ""
        if backend == "memory":
            return "memory://", {}
        if backend == "local":
            return str(request.getfixturevalue("tmp_path")) + path, {}
        if backend == "azure":
            azure: AzureServer = request.getfixturevalue("azure_server")
            return f"az://{request.getfixturevalue('azure_container')}{path}", azure.options()
        if backend == "gcs":
            gcs: GCSServer = request.getfixturevalue("gcs_server")
            return f"gs://{request.getfixturevalue('gcs_bucket')}{path}", gcs.options()
        s3: S3Server = request.getfixturevalue("s3_server")
        return f"s3://{request.getfixturevalue('bucket')}{path}", s3.options()

    return target


@pytest.fixture
async def s3_store(s3_server: S3Server, bucket: str) -> AsyncIterator[S3Store]:
    """An S3 store on a fresh bucket of the session's SeaweedFS."""
    store = objstore.from_url(f"s3://{bucket}", s3_server.options())
    assert isinstance(store, S3Store)
    yield store
    await store.aclose()


@pytest.fixture(params=["s3", "gcs", "azure"])
async def proxied_backend(
    request: pytest.FixtureRequest, backend_target: Callable[[str, str], Target]
) -> AsyncIterator[ProxiedBackend]:
    """Each network backend in turn, its requests going through a fault proxy."""
    name = request.param
    url, options = backend_target(name, "")
    key = ENDPOINT_KEYS[name]
    upstream, path = split_endpoint(options[key])
    async with FaultProxy(upstream) as proxy:
        backend = ProxiedBackend(name, url, {**options, key: proxy.url + path}, proxy)
        yield backend
        await backend.close()


# The modules whose async tests run on uvloop as well as asyncio's own loop: the conformance
# suites of the async stores and the tests of what touches the loop's transports and threads
# (faults, TLS and proxies, file threads, multipart, retries). Services on uvicorn get uvloop
# whenever it is installed.
_UVLOOP_MODULES = frozenset({
    "test_memory", "test_local", "test_s3", "test_gcs", "test_azure", "test_s3_faults",
    "test_client_options", "test_file_threads", "test_multipart", "test_retry",
})  # fmt: skip


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """The event loops an async test runs on: asyncio's, and uvloop's for ``_UVLOOP_MODULES``
    (not the blocking facade's classes: their stores run on objstore_sync's own loop; not
    classes that set ``one_loop``: the conformance suite under another configuration, which
    its plain class already runs on both)."""
    import asyncio

    factories: dict[str, Any] = {"asyncio": asyncio.new_event_loop}
    if not isinstance(item, pytest.Function):
        return factories
    module = item.module.__name__.rpartition(".")[2] if item.module is not None else ""
    facade = item.cls is not None and "Facade" in item.cls.__name__
    if module in _UVLOOP_MODULES and not facade and not getattr(item.cls, "one_loop", False):
        import uvloop

        factories["uvloop"] = uvloop.new_event_loop
    return factories
