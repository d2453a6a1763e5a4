"""URLs to backends: schemes, hosts, install hints and malformed URLs."""

from __future__ import annotations

import sys
from typing import Any

import pytest

import objstore
from objstore import InvalidURLError, MissingDependencyError
from objstore._registry import backend_for_url


@pytest.mark.parametrize(
    ("url", "backend"),
    [
        ("memory://", "memory"),
        ("file:///tmp/x", "local"),
        ("/tmp/x", "local"),
        ("relative/dir", "local"),
        ("C:\\data", "local"),
        ("s3://bucket/prefix", "s3"),
        ("s3a://bucket", "s3"),
        ("https://s3.eu-west-1.amazonaws.com/bucket", "s3"),
        ("https://bucket.s3.eu-west-1.amazonaws.com", "s3"),
        ("https://bucket.s3.amazonaws.com", "s3"),
        ("https://acct.r2.cloudflarestorage.com/bucket", "s3"),
        ("gs://bucket/p", "gcs"),
        ("gcs://bucket", "gcs"),
        ("https://storage.googleapis.com/bucket/x", "gcs"),
        ("https://storage.cloud.google.com/bucket/x", "gcs"),
        ("az://container/p", "azure"),
        ("azure://container", "azure"),
        ("adl://container", "azure"),
        ("abfs://fs@acct.dfs.core.windows.net/dir", "azure"),
        ("abfss://fs@acct.dfs.core.windows.net/dir", "azure"),
        ("https://acct.blob.core.windows.net/container", "azure"),
        ("https://acct.dfs.core.windows.net/container", "azure"),
        ("https://ws.dfs.fabric.microsoft.com/item", "azure"),
    ],
)
def test_schemes_and_hosts(url: str, backend: str) -> None:
    assert backend_for_url(url)[0] == backend


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://host/x", "unknown URL scheme 'ftp'"),
        ("https://example.com/bucket", "cannot tell which service"),
        ("s3://bucket:notaport/x", "malformed"),
        ("", "non-empty"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(InvalidURLError, match=message):
        objstore.from_url(url)


def test_credentials_in_urls_are_refused_and_not_echoed() -> None:
    with pytest.raises(InvalidURLError) as info:
        objstore.from_url("s3://AKIDCANARY:canary-secret@bucket/x")
    assert "canary" not in str(info.value)
    assert "AKIDCANARY" not in str(info.value)


def test_missing_extra_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiobotocore", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'objstore\[s3\]'") as info:
        objstore.from_url("s3://bucket")
    assert isinstance(info.value, ImportError)
    monkeypatch.setitem(sys.modules, "gcloud.aio.auth", None)
    with pytest.raises(MissingDependencyError, match=r"objstore\[gcs\]"):
        objstore.from_url("gs://bucket")
    monkeypatch.setitem(sys.modules, "azure.storage.blob", None)
    with pytest.raises(MissingDependencyError, match=r"objstore\[azure\]"):
        objstore.from_url("az://container")


def test_memory_url_path_is_the_prefix() -> None:
    store = objstore.from_url("memory:///a/b")
    assert store.prefix == "a/b"
    assert objstore.from_url("memory://").prefix == ""


@pytest.mark.parametrize(
    ("url", "options"),
    [
        ("memory:///{}", {}),
        ("s3://bucket/{}", {"aws_region": "us-east-1"}),
        ("https://s3.eu-west-1.amazonaws.com/bucket/{}", {}),
        ("https://bucket.s3.amazonaws.com/{}", {"aws_region": "us-east-1"}),
        ("gs://bucket/{}", {}),
        ("https://storage.googleapis.com/bucket/{}", {}),
        ("az://container/{}", {"azure_storage_account_name": "acct"}),
        ("abfss://fsys@acct.dfs.core.windows.net/{}", {}),
        ("https://acct.blob.core.windows.net/container/{}", {}),
    ],
)
def test_a_url_path_is_percent_decoded_into_the_prefix(url: str, options: dict[str, str]) -> None:
    import pickle

    store = objstore.from_url(url.format("my%20dir/100%25/%23x%3Fy/%C3%BC"), options)
    assert store.prefix == "my dir/100%/#x?y/ü"  # as object_store and file:// URLs read it
    again = pickle.loads(pickle.dumps(store))  # rebuilt from its URL: the same prefix
    assert again.prefix == store.prefix
    assert "my%20dir/100%25/%23x%3Fy/ü" in repr(store)


@pytest.mark.parametrize(
    ("url", "meant"),
    [("s3:/bucket/x", "s3://bucket/x"), ("memory:", "memory://"), ("gs:bucket", "gs://bucket"),
     ("az//container", "az://container"), ("HTTPS:/host/b", "https://host/b")],
)  # fmt: skip
def test_a_url_with_its_slashes_mistyped_is_not_a_local_path(
    url: str, meant: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # it became a local store in the working directory, named after the scheme
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidURLError, match=f"write '{meant}'"):
        objstore.from_url(url)
    assert list(tmp_path.iterdir()) == []


def test_plain_paths_with_colons_and_rfc_8089_file_urls(tmp_path: Any) -> None:
    assert backend_for_url("data/x:y")[0] == "local"
    assert backend_for_url("./s3:/bucket")[0] == "local"  # a local path that looks like one
    assert objstore.from_url(f"file:{tmp_path}").url == f"file://{tmp_path}"
