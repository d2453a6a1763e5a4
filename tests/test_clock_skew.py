"""A machine whose clock is off: S3 and Azure refuse its signatures (SeaweedFS checks the
15-minute window as AWS does; in front of Azurite, which does not, a proxy checks it as Azure
does); the store adopts the server's time from the reply and sends the request again."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web

import objstore
from objstore import AlreadyExistsError, UnauthenticatedError
from objstore.backends import s3
from objstore.backends._clock import ServerClock
from objstore.backends._http import exchange, http_date, parse_http_date
from objstore.backends.azure import AzureStore
from objstore.backends.s3 import S3Store
from objstore.testing.emulators import AzureServer, S3Server
from objstore.testing.faultproxy import FaultProxy, split_endpoint

MiB = 1024 * 1024
TRUE_TIME = time.time  # the proxy's clock: the tests set the machine's off


@pytest.fixture
def machine_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Set how far this machine's clock (``time.time``) is from the true time (+ is ahead)."""
    true_time = time.time

    def set_skew(seconds: float) -> None:
        monkeypatch.setattr(time, "time", lambda: true_time() + seconds)

    return set_skew


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The methods of the requests the S3 store sends, in order."""
    sent: list[str] = []

    async def counting(http: Any, method: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(method)
        return await exchange(http, method, *args, **kwargs)

    monkeypatch.setattr(s3, "exchange", counting)
    return sent


def clock_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "machine's clock" in r.getMessage()]


@pytest.mark.parametrize("skew", [-1800, 1200, -86400])
async def test_every_operation_works_with_the_clock_off(
    s3_store: S3Store, machine_clock: Callable[[float], None], skew: float,
    caplog: pytest.LogCaptureFixture, sends: list[str],
) -> None:  # fmt: skip
    machine_clock(skew)
    caplog.set_level(logging.WARNING, logger="objstore")
    await s3_store.put("a/one", b"1")
    assert sends == ["PUT", "PUT"]  # refused once, then signed with the server's time
    assert abs(s3_store._clock.offset + skew) < 3
    assert await s3_store.get("a/one") == b"1"
    assert (await s3_store.head("a/one")).size == 1
    assert [m.location for m in await s3_store.list("a")] == ["a/one"]
    await s3_store.copy("a/one", "a/two")
    await s3_store.delete("a/one")
    assert not await s3_store.exists("a/one")
    assert sends.count("PUT") == 3  # nothing after the first request was refused
    warnings = clock_warnings(caplog)
    assert len(warnings) == 1
    assert ("ahead of" if skew > 0 else "behind") in warnings[0]


async def test_a_head_refused_without_a_body_is_corrected(
    s3_store: S3Store, machine_clock: Callable[[float], None], sends: list[str]
) -> None:
    await s3_store.put("k", b"v")
    machine_clock(-3600)
    assert (await s3_store.head("k")).size == 1  # a HEAD's 403 carries no error code
    assert sends == ["PUT", "HEAD", "HEAD"]


async def test_requests_signed_before_the_correction_are_sent_again(
    s3_store: S3Store, machine_clock: Callable[[float], None],
    caplog: pytest.LogCaptureFixture, s3_admin: Any, bucket: str,
) -> None:  # fmt: skip
    machine_clock(2400)
    caplog.set_level(logging.WARNING, logger="objstore")
    await asyncio.gather(*(s3_store.put(f"many/{i:02d}", b"x" * i) for i in range(40)))
    machine_clock(0)  # for botocore's own signatures
    listed = s3_admin.list_objects_v2(Bucket=bucket, Prefix="many/")["Contents"]
    expected = [(f"many/{i:02d}", i) for i in range(40)]
    assert sorted((item["Key"], item["Size"]) for item in listed) == expected
    assert len(clock_warnings(caplog)) == 1


async def test_a_create_mode_write_sent_again_is_not_a_conflict(
    s3_store: S3Store, machine_clock: Callable[[float], None], sends: list[str]
) -> None:
    machine_clock(-1800)
    await s3_store.put("once", b"first", mode="create")
    assert sends == ["PUT", "PUT"]
    assert await s3_store.get("once") == b"first"
    with pytest.raises(AlreadyExistsError):
        await s3_store.put("once", b"second", mode="create")


async def test_a_multipart_upload_with_the_clock_off(
    s3_store: S3Store, machine_clock: Callable[[float], None]
) -> None:
    machine_clock(1800)
    data = bytes(range(256)) * (48 * 1024)  # 12 MiB: parts of 5 MiB
    await s3_store.put("big", data, part_size=5 * MiB)
    assert await s3_store.get("big") == data


async def test_signed_urls_are_dated_with_the_servers_time(
    s3_store: S3Store, machine_clock: Callable[[float], None]
) -> None:
    machine_clock(-7200)
    await s3_store.put("shared", b"s")  # corrects the clock
    url = await s3_store.sign("GET", "shared", expires_in=120)
    dated = parse_qs(urlsplit(url).query)["X-Amz-Date"][0]
    machine_clock(0)
    signed = datetime.strptime(dated, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert abs(signed.timestamp() - time.time()) < 5
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert await response.read() == b"s"


async def test_a_refusal_for_another_reason_is_not_sent_again(
    s3_server: S3Server, bucket: str, machine_clock: Callable[[float], None], sends: list[str]
) -> None:
    wrong = objstore.from_url(
        f"s3://{bucket}", s3_server.options(aws_secret_access_key="not-the-key")
    )
    try:
        with pytest.raises(UnauthenticatedError):
            await wrong.get("k")
        assert sends == ["GET"]
        machine_clock(1800)  # skewed and wrong: corrected once, then the key's refusal stands
        with pytest.raises(UnauthenticatedError, match="SignatureDoesNotMatch"):
            await wrong.get("k")
        assert sends == ["GET", "GET", "GET"]
    finally:
        await wrong.aclose()


# ---- Azure: Shared Key requests are refused 15 minutes off; Azurite does not check ---------


def azure_date_window(request: web.Request, body: bytes) -> web.Response | None:
    """Azure Storage's check, which Azurite lacks: a Shared Key request (and each deletion in
    a Blob Batch) dated more than 15 minutes from the server's clock is refused."""

    def off(date: str) -> bool:
        return abs(parse_http_date(date).timestamp() - TRUE_TIME()) > 900

    now = formatdate(TRUE_TIME(), usegmt=True)  # aiohttp's own Date reads the skewed clock
    refused = {"x-ms-error-code": "AuthenticationFailed", "Date": now}
    if off(request.headers["x-ms-date"]):
        detail = f"Request date header too old: '{request.headers['x-ms-date']}'"
        xml = (f"<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>AuthenticationFailed"
               f"</Code><Message>Server failed to authenticate the request.</Message>"
               f"<AuthenticationErrorDetail>{detail}</AuthenticationErrorDetail>"
               "</Error>")  # fmt: skip
        return web.Response(status=403, headers=refused, body=b"" if request.method == "HEAD"
                            else xml.encode(), content_type="application/xml")  # fmt: skip
    inner = re.findall(rb"x-ms-date: ([^\r\n]+)", body) if "comp=batch" in request.path_qs else []
    if any(off(date.decode()) for date in inner):
        parts = [f"--batchresponse\r\nContent-Type: application/http\r\nContent-ID: {i}\r\n\r\n"
                 "HTTP/1.1 403 Server failed to authenticate the request.\r\n"
                 "x-ms-error-code: AuthenticationFailed\r\nContent-Length: 0\r\n\r\n"
                 for i in range(len(inner))]  # fmt: skip
        reply = "".join(parts) + "--batchresponse--\r\n"
        return web.Response(status=202, body=reply.encode(), headers={
            "Content-Type": "multipart/mixed; boundary=batchresponse", "Date": now})  # fmt: skip
    return None


@pytest.fixture
async def azure_skewed(
    azure_server: AzureServer, azure_container: str
) -> AsyncIterator[tuple[AzureStore, FaultProxy]]:
    """A store on Azurite behind the date check."""
    origin, path = split_endpoint(azure_server.endpoint)
    async with FaultProxy(origin, answer=azure_date_window) as proxy:
        options = azure_server.options(azure_storage_endpoint=proxy.url + path)
        store = objstore.from_url(f"az://{azure_container}", options)
        assert isinstance(store, AzureStore)
        yield store, proxy
        await store.aclose()


@pytest.mark.parametrize("skew", [-1800, 3600])
async def test_azure_operations_work_with_the_clock_off(
    azure_skewed: tuple[AzureStore, FaultProxy], machine_clock: Callable[[float], None],
    skew: float, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    store, proxy = azure_skewed
    machine_clock(skew)
    caplog.set_level(logging.WARNING, logger="objstore")
    await store.put("a/one", b"1")
    assert [method for method, _, _ in proxy.log] == ["PUT", "PUT"]
    assert abs(store._clock.offset + skew) < 3
    assert await store.get("a/one") == b"1"
    assert (await store.head("a/one")).size == 1
    await store.copy("a/one", "a/two")
    assert sorted(m.location for m in await store.list("a")) == ["a/one", "a/two"]
    await store.delete("a/one")
    assert not await store.exists("a/one")
    assert len(clock_warnings(caplog)) == 1


async def test_azure_head_refused_first_is_corrected(
    azure_skewed: tuple[AzureStore, FaultProxy], machine_clock: Callable[[float], None]
) -> None:
    store, proxy = azure_skewed
    await store.put("k", b"v")
    machine_clock(1200)
    assert (await store.head("k")).size == 1
    assert [method for method, _, _ in proxy.log] == ["PUT", "HEAD", "HEAD"]


async def test_azure_batch_built_before_the_correction_is_built_again(
    azure_skewed: tuple[AzureStore, FaultProxy], machine_clock: Callable[[float], None]
) -> None:
    store, proxy = azure_skewed
    keys = [f"gone/{i}" for i in range(5)]
    await asyncio.gather(*(store.put(k, b"x") for k in keys))
    machine_clock(-2400)
    proxy.log.clear()
    await store.delete_many(keys)
    batches = [path for method, path, _ in proxy.log if "comp=batch" in path]
    assert len(batches) == 3  # refused for its date; resent with old inner dates; rebuilt
    machine_clock(0)
    assert await store.list("gone") == []


async def test_azure_sas_expiry_counts_from_the_servers_time(
    azure_skewed: tuple[AzureStore, FaultProxy], machine_clock: Callable[[float], None]
) -> None:
    store, _ = azure_skewed
    machine_clock(-7200)
    await store.put("shared", b"s")  # corrects the clock
    url = await store.sign("GET", "shared", expires_in=600)
    expiry = datetime.strptime(parse_qs(urlsplit(url).query)["se"][0], "%Y-%m-%dT%H:%M:%SZ")
    machine_clock(0)
    assert abs(expiry.replace(tzinfo=UTC).timestamp() - (time.time() + 600)) < 5


# ---- the clock's rules --------------------------------------------------------------------


def server_date(seconds_from_now: float) -> str:
    return http_date(datetime.fromtimestamp(time.time() + seconds_from_now, UTC))


@pytest.mark.parametrize("header", [None, "", "yesterday", "Thu, 99 Nov 2026 25:61:00 GMT"])
def test_no_usable_date_changes_nothing(header: str | None) -> None:
    clock = ServerClock()
    assert not clock.corrected(time.time(), header, "S3", refused_for_skew=True)
    assert clock.offset == 0.0


def test_a_named_refusal_is_believed_at_any_skew_an_unnamed_one_past_five_minutes() -> None:
    clock = ServerClock()
    assert not clock.corrected(time.time(), server_date(0), "S3", refused_for_skew=True)
    assert not clock.corrected(time.time(), server_date(120), "S3", refused_for_skew=False)
    assert clock.offset == 0.0
    assert clock.corrected(time.time(), server_date(120), "S3", refused_for_skew=True)
    assert abs(clock.offset - 120) < 2
    later = ServerClock()
    assert later.corrected(time.time(), server_date(-400), "S3", refused_for_skew=False)
    assert abs(later.offset + 400) < 2
    assert abs(later.now() - (time.time() - 400)) < 2


def test_a_request_signed_with_the_old_offset_is_sent_again_without_a_new_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="objstore")
    clock = ServerClock()
    signed_at = time.time()  # before the correction, as a concurrent request
    assert clock.corrected(time.time(), server_date(900), "S3", refused_for_skew=True)
    assert clock.corrected(signed_at, server_date(900), "S3", refused_for_skew=True)
    assert not clock.corrected(clock.now(), server_date(900), "S3", refused_for_skew=True)
    assert len(clock_warnings(caplog)) == 1


def test_an_uncorrectable_skew_says_to_check_the_clock() -> None:
    body = b"<Error><Code>RequestTimeTooSkewed</Code><Message>too large</Message></Error>"
    error = s3._error(403, body, {}, "k")
    assert isinstance(error, UnauthenticatedError)
    assert "clock" in str(error)
