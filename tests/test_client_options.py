"""The client keys that shape connections: TLS trust, proxies, HTTP version, address order.

Tested on SeaweedFS through the fault proxy, which also serves as a forward proxy and, with a
certificate from a test CA (trustme), as an HTTPS front.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator

import pytest
import trustme
from yarl import URL

import objstore
from objstore import ConfigError, TLSError
from objstore.backends._client_options import ProxyRoute, proxy_route, tls_context
from objstore.backends.s3 import S3Store
from objstore.testing.emulators import AzureServer, GCSServer, S3Server
from objstore.testing.faultproxy import FaultProxy
from objstore.testing.tunnel import ConnectProxy

SLOW_RETRIES = {"backoff_initial": "2s", "backoff_max": "2s", "max_retries": "3"}


@pytest.fixture(scope="module")
def test_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def https_front(s3_server: S3Server, test_ca: trustme.CA) -> AsyncIterator[FaultProxy]:
    """SeaweedFS behind TLS with a certificate for 127.0.0.1 from the test CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    test_ca.issue_cert("127.0.0.1").configure_cert(context)
    async with FaultProxy(s3_server.endpoint, tls=context) as front:
        yield front


# ---- TLS ----------------------------------------------------------------------------------


async def test_an_untrusted_certificate_fails_at_once_with_tls_error(
    s3_server: S3Server, bucket: str, https_front: FaultProxy
) -> None:
    store = objstore.from_url(
        f"s3://{bucket}", s3_server.options(aws_endpoint=https_front.url, **SLOW_RETRIES)
    )
    started = time.monotonic()
    with pytest.raises(TLSError, match="certificate") as caught:
        await store.put("k", b"v")
    assert time.monotonic() - started < 1.5  # not retried (each retry would wait 2 s)
    assert isinstance(caught.value, ConnectionError)
    assert https_front.log == []
    await store.aclose()


async def test_a_plain_http_server_addressed_as_https_is_a_tls_error(
    s3_server: S3Server, bucket: str
) -> None:
    endpoint = s3_server.endpoint.replace("http://", "https://")
    store = objstore.from_url(
        f"s3://{bucket}", s3_server.options(aws_endpoint=endpoint, **SLOW_RETRIES)
    )
    started = time.monotonic()
    with pytest.raises(TLSError):
        await store.head("k")
    assert time.monotonic() - started < 1.5
    await store.aclose()


async def test_proxy_ca_certificate_is_trusted(
    s3_server: S3Server, bucket: str, https_front: FaultProxy, test_ca: trustme.CA
) -> None:
    pem = test_ca.cert_pem.bytes().decode()
    for extra in ({}, {"disable_system_certificates": "true"}):
        options = s3_server.options(aws_endpoint=https_front.url, proxy_ca_certificate=pem, **extra)
        store = objstore.from_url(f"s3://{bucket}", options)
        await store.put("trusted", b"over tls")
        assert await store.get("trusted") == b"over tls"
        await store.aclose()
    assert ("PUT", f"/{bucket}/trusted", None) in https_front.log


async def test_disable_system_certificates_trusts_nothing_else(
    s3_server: S3Server, bucket: str, https_front: FaultProxy
) -> None:
    options = s3_server.options(aws_endpoint=https_front.url, disable_system_certificates="true")
    store = objstore.from_url(f"s3://{bucket}", options)
    with pytest.raises(TLSError):
        await store.head("k")
    await store.aclose()


async def test_allow_invalid_certificates_skips_the_checks(
    s3_server: S3Server, bucket: str, https_front: FaultProxy
) -> None:
    options = s3_server.options(aws_endpoint=https_front.url, allow_invalid_certificates="true")
    store = objstore.from_url(f"s3://{bucket}", options)
    await store.put("unchecked", b"x")
    assert (await store.head("unchecked")).size == 1
    await store.aclose()


def test_a_proxy_ca_certificate_that_is_not_pem_is_a_config_error(s3_server: S3Server) -> None:
    with pytest.raises(ConfigError, match="proxy_ca_certificate"):
        objstore.from_url("s3://bkt", s3_server.options(proxy_ca_certificate="not a certificate"))


# ---- proxies ------------------------------------------------------------------------------


async def test_requests_go_through_proxy_url_with_its_credentials(
    s3_server: S3Server, bucket: str
) -> None:
    async with FaultProxy(s3_server.endpoint) as proxy:
        proxy_url = proxy.url.replace("http://", "http://agent:p%40ss@")
        store = objstore.from_url(f"s3://{bucket}", s3_server.options(proxy_url=proxy_url))
        await store.put("via/proxy", b"proxied")
        assert await store.get("via/proxy") == b"proxied"
        assert "p%40ss" not in repr(store)
        assert "p@ss" not in repr(store)
        await store.aclose()
    target = f"{s3_server.endpoint}/{bucket}/via/proxy"
    assert (target, "Basic YWdlbnQ6cEBzcw==") in proxy.targets  # absolute-form, agent:p@ss
    assert {auth for _, auth in proxy.targets} == {"Basic YWdlbnQ6cEBzcw=="}


async def test_gcs_and_azure_requests_go_through_the_proxy(
    gcs_server: GCSServer, gcs_bucket: str, azure_server: AzureServer, azure_container: str
) -> None:
    targets = [
        (f"gs://{gcs_bucket}", gcs_server.options(), gcs_server.endpoint),
        (f"az://{azure_container}", azure_server.options(), azure_server.endpoint),
    ]
    for url, options, endpoint in targets:
        origin = str(URL(endpoint).origin())
        async with FaultProxy(origin) as proxy:
            store = objstore.from_url(url, {**options, "proxy_url": proxy.url})
            await store.put("via/proxy", b"proxied")
            assert await store.get("via/proxy") == b"proxied"
            assert [m.location for m in await store.list("via/")] == ["via/proxy"]
            await store.aclose()
        assert proxy.targets, url
        assert all(target.startswith(origin + "/") for target, _ in proxy.targets), url


async def test_https_goes_through_a_connect_tunnel(
    s3_server: S3Server, bucket: str, https_front: FaultProxy, test_ca: trustme.CA
) -> None:
    pem = test_ca.cert_pem.bytes().decode()
    async with ConnectProxy() as tunnel:
        proxy_url = tunnel.url.replace("http://", "http://agent:secret@")
        options = s3_server.options(
            aws_endpoint=https_front.url, proxy_url=proxy_url, proxy_ca_certificate=pem
        )
        store = objstore.from_url(f"s3://{bucket}", options)
        await store.put("tunnelled", b"through CONNECT")
        assert await store.get("tunnelled") == b"through CONNECT"
        await store.aclose()
    assert tunnel.tunnels
    assert set(tunnel.tunnels) == {(URL(https_front.url).raw_authority, "Basic YWdlbnQ6c2VjcmV0")}
    assert ("PUT", f"/{bucket}/tunnelled", None) in https_front.log  # decrypted only there


async def test_proxy_excludes_bypass_the_proxy(s3_server: S3Server, bucket: str) -> None:
    async with FaultProxy(s3_server.endpoint) as proxy:
        for excludes in ("127.0.0.1", "example.com, 127.0.0.0/8", "*"):
            options = s3_server.options(proxy_url=proxy.url, proxy_excludes=excludes)
            store = objstore.from_url(f"s3://{bucket}", options)
            await store.put("direct", b"d")
            await store.aclose()
        assert proxy.targets == []
        options = s3_server.options(proxy_url=proxy.url, proxy_excludes="example.com,10.0.0.0/8")
        store = objstore.from_url(f"s3://{bucket}", options)
        await store.head("direct")
        await store.aclose()
        assert len(proxy.targets) == 1


@pytest.mark.parametrize(
    ("host", "excludes", "proxied"),
    [
        ("s3.amazonaws.com", "", True),
        ("s3.amazonaws.com", "amazonaws.com", False),
        ("bucket.s3.amazonaws.com", ".amazonaws.com", False),
        ("bucket.s3.amazonaws.com", "*.amazonaws.com", False),
        ("notamazonaws.com", "amazonaws.com", True),
        ("storage.googleapis.com", "amazonaws.com,googleapis.com:443", False),
        ("10.1.2.3", "10.0.0.0/8", False),
        ("11.1.2.3", "10.0.0.0/8", True),
        ("::1", "::1", False),
        ("anything", "*", False),
        ("s3.amazonaws.com", "10.0.0.0/8", True),
    ],
)
def test_proxy_excludes_match_hosts_domains_and_networks(
    host: str, excludes: str, proxied: bool
) -> None:
    proxy = URL("http://proxy:3128")
    route = ProxyRoute(proxy, proxy, tuple(e.strip() for e in excludes.split(",")))
    assert route.applies_to(host) is proxied


async def test_the_environment_proxy_carries_requests_to_non_local_hosts(
    s3_server: S3Server, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a host that cannot resolve: only a proxy can deliver these requests (to SeaweedFS)
    port = URL(s3_server.endpoint).port
    remote = f"http://objstore-proxy-test.invalid:{port}"
    async with FaultProxy(s3_server.endpoint) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        store = objstore.from_url(f"s3://{bucket}", s3_server.options(aws_endpoint=remote))
        await store.put("via/env", b"e")
        assert await store.get("via/env") == b"e"
        await store.aclose()
        assert (f"{remote}/{bucket}/via/env", None) in proxy.targets
        seen = len(proxy.targets)
        local = objstore.from_url(f"s3://{bucket}", s3_server.options())  # 127.0.0.1: spared
        assert await local.get("via/env") == b"e"
        await local.aclose()
        assert len(proxy.targets) == seen


@pytest.mark.parametrize(
    ("environ", "url", "expected"),
    [
        ({"HTTPS_PROXY": "http://p:1"}, "https://s3.amazonaws.com/b", "http://p:1"),
        ({"HTTPS_PROXY": "http://p:1"}, "http://s3.amazonaws.com/b", None),
        ({"http_proxy": "http://low:1", "HTTP_PROXY": "http://up:1"}, "http://h/b", "http://low:1"),
        ({"ALL_PROXY": "http://all:1"}, "https://h/b", "http://all:1"),
        ({"ALL_PROXY": "http://all:1", "NO_PROXY": "h"}, "https://h/b", None),
        (
            {"ALL_PROXY": "http://all:1", "no_proxy": ".example.com"},
            "https://a.example.com/b",
            None,
        ),
        ({"ALL_PROXY": "http://all:1"}, "http://127.0.0.1:9000/b", None),
        ({"ALL_PROXY": "http://all:1"}, "http://localhost:9000/b", None),
        ({"ALL_PROXY": "http://all:1"}, "http://[::1]:9000/b", None),
        ({}, "https://h/b", None),
    ],
)
def test_environment_proxies(environ: dict[str, str], url: str, expected: str | None) -> None:
    config = S3Store.config_table.resolve({"aws_region": "us-east-1"})
    route = proxy_route(config, environ)
    found = route.for_url(URL(url)) if route is not None else None
    assert (str(found) if found is not None else None) == expected


def test_proxy_url_wins_over_the_environment() -> None:
    config = S3Store.config_table.resolve({"aws_region": "r", "proxy_url": "http://key:1"})
    route = proxy_route(config, {"HTTPS_PROXY": "http://env:1", "NO_PROXY": "*"})
    assert route is not None
    assert str(route.for_url(URL("https://h/b"))) == "http://key:1"


def test_an_unusable_environment_proxy_is_skipped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = S3Store.config_table.resolve({"aws_region": "us-east-1"})
    environ = {"HTTPS_PROXY": "socks5://user:hunter2@p:1080", "HTTP_PROXY": "http://p:3128"}
    route = proxy_route(config, environ)
    assert route is not None
    assert route.for_url(URL("https://h/b")) is None
    assert str(route.for_url(URL("http://h/b"))) == "http://p:3128"
    assert "HTTPS_PROXY" in caplog.text
    assert "hunter2" not in caplog.text


@pytest.mark.parametrize("bad", ["ftp://user:hunter2@proxy", "user:hunter2", "http://:hunter2@"])
def test_a_bad_proxy_url_is_a_config_error_that_hides_it(bad: str, s3_server: S3Server) -> None:
    with pytest.raises(ConfigError, match="proxy_url") as caught:
        objstore.from_url("s3://bkt", s3_server.options(proxy_url=bad))
    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in repr(caught.value)


def test_proxy_route_repr_hides_credentials(s3_server: S3Server) -> None:
    store = objstore.from_url("s3://bkt", s3_server.options(proxy_url="http://u:hunter2@proxy:1"))
    assert "hunter2" not in repr(store)
    route = proxy_route(store.config)
    assert route is not None
    assert "hunter2" not in repr(route)


# ---- HTTP version ---------------------------------------------------------------------------


def test_http2_only_is_refused_by_name(s3_server: S3Server) -> None:
    with pytest.raises(ConfigError, match="http2_only"):
        objstore.from_url("s3://bkt", s3_server.options(http2_only="true"))
    # HTTP/1.1 is always allowed, and the HTTP/2 tuning keys are accepted
    objstore.from_url(
        "s3://bkt", s3_server.options(http1_only="false", http2_max_frame_size="32768")
    )


async def test_addresses_in_either_order_and_a_short_idle_timeout(
    s3_server: S3Server, bucket: str
) -> None:
    for randomize in ("true", "false"):
        options = s3_server.options(
            aws_endpoint=s3_server.endpoint.replace("127.0.0.1", "localhost"),
            randomize_addresses=randomize,
            pool_idle_timeout="50ms",
        )
        store = objstore.from_url(f"s3://{bucket}", options)
        await store.put("named", b"n")
        await store.aclose()


def test_stores_share_tls_contexts(s3_server: S3Server, test_ca: trustme.CA) -> None:
    # building a context loads the system's roots (~50 ms): never once per store
    def tls_of(**extra: str) -> object:
        return tls_context(objstore.from_url("s3://bkt", s3_server.options(**extra)).config)

    assert tls_of() is True  # aiohttp's own verifying context
    assert tls_of(allow_invalid_certificates="true") is False
    pem = test_ca.cert_pem.bytes().decode()
    first = tls_of(proxy_ca_certificate=pem)
    assert isinstance(first, ssl.SSLContext)
    assert tls_of(proxy_ca_certificate=pem) is first
    assert tls_of(proxy_ca_certificate=pem, allow_invalid_certificates="true") is not first
