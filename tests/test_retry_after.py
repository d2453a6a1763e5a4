"""A service's ``Retry-After`` is waited for (up to ``backoff_max``) on S3, GCS and Azure."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

import objstore
from objstore.testing.emulators import AzureServer, GCSServer, S3Server
from objstore.testing.faultproxy import FaultProxy, Rule

# Backoff alone would wait at most 1 ms: any longer wait is the server's Retry-After.
RETRIES = {"backoff_initial": "1ms", "backoff_max": "2s", "max_retries": "3"}


@pytest.fixture(params=["s3", "gcs", "azure"])
async def proxied(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Any, FaultProxy]]:
    """A store of each network backend behind a fault proxy."""
    backend = request.param
    if backend == "s3":
        s3: S3Server = request.getfixturevalue("s3_server")
        upstream, bucket = s3.endpoint, request.getfixturevalue("bucket")
    elif backend == "gcs":
        gcs: GCSServer = request.getfixturevalue("gcs_server")
        upstream, bucket = gcs.endpoint, request.getfixturevalue("gcs_bucket")
    else:
        azure: AzureServer = request.getfixturevalue("azure_server")
        upstream, account = azure.endpoint.rsplit("/", 1)
        bucket = request.getfixturevalue("azure_container")
    async with FaultProxy(upstream) as proxy:
        if backend == "s3":
            store = objstore.from_url(
                f"s3://{bucket}", s3.options(aws_endpoint=proxy.url, **RETRIES)
            )
        elif backend == "gcs":
            options = {**gcs.options(google_base_url=proxy.url), **RETRIES}
            store = objstore.from_url(f"gs://{bucket}", options)
        else:
            options = azure.options(azure_storage_endpoint=f"{proxy.url}/{account}", **RETRIES)
            store = objstore.from_url(f"az://{bucket}", options)
        await store.put("k", b"value")
        yield store, proxy
        await store.aclose()


async def timed(call: Any) -> tuple[Any, float]:
    start = time.monotonic()
    result = await call
    return result, time.monotonic() - start


async def test_retry_after_in_seconds_is_waited_for(proxied: tuple[Any, FaultProxy]) -> None:
    store, proxy = proxied
    proxy.rules = [Rule("status:503", "GET", headers={"Retry-After": "1"})]
    data, elapsed = await timed(store.get("k"))
    assert data == b"value"
    assert 0.95 <= elapsed < 4
    assert [fault for _, _, fault in proxy.log].count("status:503") == 1


async def test_a_long_retry_after_is_capped_at_backoff_max(
    proxied: tuple[Any, FaultProxy],
) -> None:
    store, proxy = proxied
    proxy.rules = [Rule("status:429", headers={"Retry-After": "3600"})]  # GCS heads with a GET
    meta, elapsed = await timed(store.head("k"))
    assert meta.size == 5
    assert 1.95 <= elapsed < 6


async def test_a_retry_after_past_the_deadline_gives_up_at_once(
    proxied: tuple[Any, FaultProxy],
) -> None:
    store, proxy = proxied
    short = objstore.from_url(store.url, {**store.config.explicit_options(with_secrets=True),
                                          "retry_timeout": "1s"})  # fmt: skip
    proxy.rules = [Rule("status:503", "GET", headers={"Retry-After": "2"})]
    with pytest.raises(objstore.ServiceUnavailableError) as info:
        await timed(short.get("k"))
    assert info.value.attempts == 1
    assert info.value.retry_after == 2.0
    await short.aclose()
