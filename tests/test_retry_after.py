"""A service's ``Retry-After`` is waited for (up to ``backoff_max``) on S3, GCS and Azure."""

from __future__ import annotations

import time
from typing import Any

import pytest

import objstore
from objstore.testing.faultproxy import FaultProxy, ProxiedBackend, Rule

# Backoff alone would wait at most 1 ms: any longer wait is the server's Retry-After.
RETRIES = {"backoff_initial": "1ms", "backoff_max": "2s", "max_retries": "3"}


@pytest.fixture
async def proxied(proxied_backend: ProxiedBackend) -> tuple[Any, FaultProxy]:
    """A store of each network backend behind a fault proxy, holding ``k``."""
    store = proxied_backend.open(**RETRIES)
    await store.put("k", b"value")
    return store, proxied_backend.proxy


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
