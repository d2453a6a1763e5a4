"""S3 specifics: URL forms, keys and environment, signed URLs, multipart edge cases, errors."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import pickle
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

import objstore
from objstore import (
    ConcurrentModificationError,
    ConfigError,
    InvalidRequestError,
    InvalidURLError,
    NotFoundError,
    NotSupportedError,
    UnauthenticatedError,
    UnknownOptionError,
)
from objstore._inline import gather_bounded
from objstore.backends.s3 import S3Store
from objstore.testing import StoreConformance
from objstore.testing.emulators import S3Server

MiB = 1024 * 1024


# ---- URL forms and configuration ------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "bucket", "prefix", "region", "virtual"),
    [
        ("s3://bucket/a/b", "bucket", "a/b", "eu-west-1", False),
        ("s3a://bucket", "bucket", "", "eu-west-1", False),
        ("https://s3.us-west-2.amazonaws.com/bucket/p", "bucket", "p", "us-west-2", False),
        ("https://bucket.s3.ap-south-1.amazonaws.com/p/q", "bucket", "p/q", "ap-south-1", True),
        ("https://bucket.s3.amazonaws.com", "bucket", "", "eu-west-1", True),
    ],
)
def test_url_forms(url: str, bucket: str, prefix: str, region: str, virtual: bool) -> None:
    store = objstore.from_url(url, {"aws_default_region": "eu-west-1"})
    assert isinstance(store, S3Store)
    assert (store._bucket, store.prefix, store._signer.region) == (bucket, prefix, region)
    host = f"{bucket}.s3.{region}.amazonaws.com" if virtual else f"s3.{region}.amazonaws.com"
    if virtual and "ap-south" not in url and "us-west" not in url:
        host = f"{bucket}.s3.eu-west-1.amazonaws.com"
    assert store._host == host
    assert store._path("k y") == ("/k%20y" if virtual else f"/{bucket}/k%20y")


def test_r2_and_custom_endpoints() -> None:
    r2 = objstore.from_url("https://acct.r2.cloudflarestorage.com/bucket/p")
    assert isinstance(r2, S3Store)
    assert (r2._host, r2._bucket, r2.prefix, r2._signer.region) == (
        "acct.r2.cloudflarestorage.com", "bucket", "p", "us-east-1",
    )  # fmt: skip
    custom = objstore.from_url("s3://bkt", {"endpoint": "http://127.0.0.1:9", "allow_http": True,
                                          "virtual_hosted_style_request": True})  # fmt: skip
    assert isinstance(custom, S3Store)
    assert (custom._host, custom._path("k")) == ("bkt.127.0.0.1:9", "/k")


def test_region_is_required_for_aws() -> None:
    with pytest.raises(ConfigError, match=r"aws_region.*aws_default_region"):
        objstore.from_url("s3://bucket")


def test_http_endpoint_needs_allow_http() -> None:
    with pytest.raises(ConfigError, match="allow_http"):
        objstore.from_url("s3://bucket", {"aws_endpoint": "http://127.0.0.1:9"})


@pytest.mark.parametrize(
    ("url", "message"),
    [("s3://", "names no bucket"), ("s3://Bad_Bucket", "invalid bucket name"),
     ("s3://ab", "invalid bucket name")],
)  # fmt: skip
def test_bad_s3_urls(url: str, message: str) -> None:
    with pytest.raises(InvalidURLError, match=message):
        objstore.from_url(url, {"aws_region": "x"})


def test_keys_from_options_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "env-region")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "canary-env-secret")
    monkeypatch.setenv("AWS_TIMEOUT", "12s")
    monkeypatch.setenv("AWS_DISABLE_BULK_DELETE", "true")
    store = objstore.from_url("s3://bucket", {"region": "opt-region", "unsigned_payload": "yes"})
    assert isinstance(store, S3Store)
    assert store._signer.region == "opt-region"
    assert store.config.source("aws_region") == "option"
    assert store.config["timeout"] == 12.0
    assert store.config.source("aws_access_key_id") == "env AWS_ACCESS_KEY_ID"
    assert store._bulk_delete is False
    assert store._unsigned is True
    for text in (repr(store), repr(store.config), str(store.config.describe())):
        assert "canary" not in text
    with pytest.raises(UnknownOptionError, match="did you mean 'aws_region'"):
        objstore.from_url("s3://bucket", {"aws_regoin": "x"})


def test_half_static_credentials_are_an_error() -> None:
    with pytest.raises(ConfigError, match="both"):
        objstore.from_url("s3://bucket", {"aws_region": "x", "aws_access_key_id": "AKID"})


def test_every_documented_key_is_accepted() -> None:
    options = {
        "aws_imdsv1_fallback": "true", "aws_metadata_endpoint": "http://127.0.0.1:1",
        "aws_container_credentials_relative_uri": "/v2", "aws_web_identity_token_file": "/t",
        "aws_role_arn": "arn:aws:iam::1:role/r", "aws_role_session_name": "s",
        "aws_endpoint_url_sts": "http://127.0.0.1:2", "aws_checksum_algorithm": "sha256",
        "aws_copy_if_not_exists": "header:cf-copy-destination-if-none-match:*",
        "aws_conditional_put": "disabled", "aws_disable_tagging": "true",
        "aws_request_payer": "requester", "aws_server_side_encryption": "aws:kms",
        "aws_sse_kms_key_id": "k", "aws_sse_bucket_key_enabled": "true",
        "aws_s3_express": "false", "aws_profile": "dev", "aws_region": "us-east-1",
    }  # fmt: skip
    store = objstore.from_url("s3://bucket", options)
    assert isinstance(store, S3Store)
    headers = store._write_headers(objstore._types.PutOptions(tags={"a": "b"}))
    assert headers["x-amz-server-side-encryption"] == "aws:kms"
    assert "x-amz-tagging" not in headers
    assert store._fixed_headers["x-amz-request-payer"] == "requester"


# ---- the real server ------------------------------------------------------------------------


async def test_presigned_urls(s3_store: S3Store) -> None:
    await s3_store.put("signed/file.bin", b"signed content")
    url = await s3_store.sign("GET", "signed/file.bin", expires_in=60)
    put_url = await s3_store.sign("put", "signed/upload.bin", expires_in=60)
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            assert response.status == 200
            assert await response.read() == b"signed content"
        tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
        async with session.get(tampered) as response:
            assert response.status == 403
        async with session.put(put_url, data=b"uploaded") as response:
            assert response.status == 200
    assert await s3_store.get("signed/upload.bin") == b"uploaded"
    credentials = await s3_store._source.get()
    assert credentials is not None
    expired = s3_store._signer.presign(
        "GET",
        s3_store._host,
        s3_store._path("signed/file.bin"),
        params=[],
        credentials=credentials,
        expires_in=1,
        now=time.time() - 3600,
    )
    async with aiohttp.ClientSession() as session:
        parts = urlsplit(url)
        async with session.get(
            f"{parts.scheme}://{parts.netloc}{parts.path}?{expired}"
        ) as response:
            assert response.status == 403
    with pytest.raises(InvalidRequestError, match="POST"):
        await s3_store.sign("POST", "x")


async def test_presigned_urls_of_a_requester_pays_store_say_who_pays(
    s3_server: S3Server, bucket: str
) -> None:
    # a requester-pays bucket refuses a request that does not accept the charge, and whoever
    # fetches a signed URL sends no headers: the URL itself must say it, under the signature
    options = s3_server.options(aws_request_payer="true")
    async with objstore.from_url(f"s3://{bucket}", options) as store:
        await store.put("paid", b"the requester pays")
        url = await store.sign("GET", "paid", expires_in=60)
    assert "x-amz-request-payer=requester" in urlsplit(url).query
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200  # SeaweedFS checks the signature over the whole query
        assert await response.read() == b"the requester pays"


async def test_presigned_urls_of_a_customer_key_store_are_signed_for_the_key(
    s3_server: S3Server, bucket: str
) -> None:
    # S3 wants a customer key's headers signed into the URL; whoever uses it sends them
    key = base64.b64encode(b"k" * 32).decode()
    options = s3_server.options(aws_server_side_encryption="sse-c",
                                aws_sse_customer_key_base64=key)  # fmt: skip
    key_headers = {"x-amz-server-side-encryption-customer-algorithm": "AES256",
                   "x-amz-server-side-encryption-customer-key": key,
                   "x-amz-server-side-encryption-customer-key-MD5": base64.b64encode(
                       hashlib.md5(b"k" * 32).digest()).decode()}  # fmt: skip
    async with objstore.from_url(f"s3://{bucket}", options) as store:
        await store.put("secret", b"encrypted with my key")
        get_url = await store.sign("GET", "secret", expires_in=60)
        put_url = await store.sign("PUT", "uploaded", expires_in=60)
        signed = parse_qs(urlsplit(get_url).query)["X-Amz-SignedHeaders"][0].split(";")
        assert sorted(signed) == sorted(["host", *(name.lower() for name in key_headers)])
        async with aiohttp.ClientSession() as session:
            async with session.get(get_url, headers=key_headers) as response:
                assert response.status == 200
                assert await response.read() == b"encrypted with my key"
            async with session.get(get_url) as response:  # without the key: refused
                assert response.status in (400, 403)
            async with session.put(put_url, data=b"up", headers=key_headers) as response:
                assert response.status == 200
        assert await store.get("uploaded") == b"up"  # encrypted with the store's key


async def test_wrong_secret_is_unauthenticated(s3_server: S3Server, bucket: str) -> None:
    bad = objstore.from_url(f"s3://{bucket}", s3_server.options(aws_secret_access_key="wrong"))
    with pytest.raises(UnauthenticatedError) as info:
        await bad.get("anything")
    assert info.value.code in ("SignatureDoesNotMatch", "InvalidAccessKeyId")
    assert "wrong" not in str(info.value)
    await bad.aclose()


async def test_missing_bucket(s3_server: S3Server) -> None:
    store = objstore.from_url("s3://no-such-bucket-here", s3_server.options())
    with pytest.raises(NotFoundError) as info:
        await store.list()
    assert isinstance(info.value, objstore.BucketNotFoundError)
    # a misspelt bucket is not a missing object: deletes and copies say so too (a HEAD's
    # 404 has no body to tell them apart, so head and exists cannot)
    for call in (
        lambda: store.get("x"),
        lambda: store.delete("x"),
        lambda: store.delete_many(["x"]),
        lambda: store.delete_many(["x", "y"]),
        lambda: store.copy("x", "y"),
        lambda: store.rename("x", "y"),
    ):
        with pytest.raises(objstore.BucketNotFoundError):
            await call()
    await store.aclose()


async def test_small_parts_are_rejected_and_aborted(
    s3_store: S3Store, s3_admin: Any, bucket: str
) -> None:
    with pytest.raises(InvalidRequestError):  # noqa: PT012
        async with s3_store.open_writer("tiny-parts", part_size=MiB) as writer:
            for _ in range(3):
                await writer.write(b"x" * MiB)
    assert not await s3_store.exists("tiny-parts")
    assert s3_admin.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


async def test_writer_failure_leaves_no_upload(
    s3_store: S3Store, s3_admin: Any, bucket: str
) -> None:
    with pytest.raises(RuntimeError):  # noqa: PT012
        async with s3_store.open_writer("failing", part_size=5 * MiB) as writer:
            await writer.write(b"y" * (6 * MiB))
            raise RuntimeError("boom")
    assert s3_admin.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert not await s3_store.exists("failing")


async def test_objects_are_readable_by_another_client(
    s3_store: S3Store, s3_admin: Any, bucket: str
) -> None:
    await s3_store.put("x/y z+%.bin", b"cross-check",
                    attributes={"content_type": "text/x-test", "owner": "me"})  # fmt: skip
    response = s3_admin.get_object(Bucket=bucket, Key="x/y z+%.bin")
    assert response["Body"].read() == b"cross-check"
    assert response["ContentType"] == "text/x-test"
    assert response["Metadata"] == {"owner": "me"}


async def test_concurrent_small_ops(s3_store: S3Store) -> None:
    keys = [f"c/{uuid.uuid4().hex}" for _ in range(200)]
    await asyncio.gather(*(s3_store.put(k, k.encode()) for k in keys))
    values = await asyncio.gather(*(s3_store.get(k) for k in keys))
    assert values == [k.encode() for k in keys]


def test_store_repr_and_pickle_hide_secrets(s3_server: S3Server) -> None:
    import pickle

    store = objstore.from_url("s3://bucket", s3_server.options(aws_secret_access_key="canary-1"))
    assert "canary" not in repr(store)
    assert b"canary" not in pickle.dumps(store)
    allowed = objstore.from_url("s3://bucket", s3_server.options(
        aws_secret_access_key="canary-2", allow_pickle_secrets="true"))  # fmt: skip
    clone: Any = pickle.loads(pickle.dumps(allowed))
    assert clone._source._credentials.secret_key == "canary-2"


def test_store_pickled_without_secrets_resolves_credentials_afresh(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pickle

    store = objstore.from_url("s3://bucket", s3_server.options(aws_access_key_id="id-parent"))
    payload = pickle.dumps(store)
    assert b"id-parent" not in payload
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "id-worker")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-worker")
    clone: Any = pickle.loads(payload)
    assert clone.config["aws_access_key_id"] == "id-worker"
    assert clone.config["aws_endpoint"] == s3_server.endpoint


async def test_profile_credentials_from_shared_files(
    s3_server: S3Server, bucket: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[dev]\naws_access_key_id = {s3_server.access_key}\n"
        f"aws_secret_access_key = {s3_server.secret_key}\n"
    )
    config = tmp_path / "config"
    config.write_text("[profile dev]\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    options = {"aws_endpoint": s3_server.endpoint, "allow_http": "true", "aws_profile": "dev"}
    store = objstore.from_url(f"s3://{bucket}", options)
    assert isinstance(store, S3Store)
    await store.put("from-profile", b"ok")
    assert await store.get("from-profile") == b"ok"
    assert "shared-credentials-file" in store.credential_source
    assert "dev" in store.credential_source
    assert s3_server.secret_key not in store.credential_source
    await store.aclose()
    regional = objstore.from_url("s3://some-bucket", {"aws_profile": "dev"})
    assert isinstance(regional, S3Store)
    assert regional._signer.region == "us-east-1"


async def test_no_credentials_anywhere_is_unauthenticated(s3_server: S3Server, bucket: str) -> None:
    options = {"aws_endpoint": s3_server.endpoint, "allow_http": "true"}
    store = objstore.from_url(f"s3://{bucket}", options)
    with pytest.raises(UnauthenticatedError, match="aws_profile") as info:
        await store.get("x")
    assert info.value.operation == "get"
    await store.aclose()


def test_credential_source_descriptions(s3_server: S3Server) -> None:
    static = objstore.from_url("s3://bucket", s3_server.options())
    anonymous = objstore.from_url("s3://bucket", {"aws_region": "x", "skip_signature": "true"})
    assert isinstance(static, S3Store)
    assert isinstance(anonymous, S3Store)
    assert static.credential_source.startswith("static keys")
    assert s3_server.secret_key not in static.credential_source
    assert anonymous.credential_source.startswith("anonymous")


# ---- listings over many pages ----------------------------------------------------------------


async def test_listings_across_pages_and_an_abandoned_listing(s3_store: S3Store) -> None:
    keys = [f"pages/{i:05d}" for i in range(1100)]
    await gather_bounded([s3_store.put(k, b"") for k in [*keys, "pages/sub/x", "pages/zz/y"]], 32)
    result = await s3_store.list_with_delimiter("pages")
    assert sorted(m.location for m in result.objects) == keys  # two pages, the second prefetched
    assert sorted(result.common_prefixes) == ["pages/sub", "pages/zz"]

    before = asyncio.all_tasks()
    listing = s3_store.list_iter("pages")
    assert await anext(listing) is not None
    assert len(asyncio.all_tasks() - before) == 1  # the second page is being fetched already
    await listing.aclose()
    await asyncio.sleep(0)
    assert not [t for t in asyncio.all_tasks() - before if not t.done()]


# ---- additional checksums (aws_checksum_algorithm), checked by SeaweedFS ----------------------


@pytest.mark.parametrize("algorithm", ["sha256", "crc64nvme"])
async def test_checksummed_writes_are_verified_by_the_server(
    s3_server: S3Server, bucket: str, algorithm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from objstore import IntegrityError
    from objstore.backends._s3_checksum import Checksum

    store = objstore.from_url(
        f"s3://{bucket}", s3_server.options(aws_checksum_algorithm=algorithm, max_retries="0")
    )
    assert isinstance(store, S3Store)
    try:
        small, large = b"small payload", bytes(range(256)) * (48 * 1024)  # 12 MiB: 3 parts
        await store.put("small", small)
        for mode in ("overwrite", "create"):
            async with store.open_writer(f"large-{mode}", mode=mode, part_size=5 * MiB) as w:
                await w.write(large)
        assert await store.get("small") == small
        assert await store.get("large-overwrite") == large
        assert await store.get("large-create") == large

        # a checksum that does not match the bytes is refused, single and multipart
        right = Checksum.value
        monkeypatch.setattr(Checksum, "value", lambda self, data: right(self, data + b"!"))
        with pytest.raises(IntegrityError):
            await store.put("bad", small)
        with pytest.raises(IntegrityError):
            async with store.open_writer("bad-large", part_size=5 * MiB) as w:
                await w.write(large)
        assert not await store.exists("bad")
        assert not await store.exists("bad-large")
    finally:
        await store.aclose()


def test_crc64nvme_is_the_nvme_polynomial() -> None:
    from objstore.backends._s3_checksum import checksum_for

    checksum = checksum_for("crc64nvme")
    assert checksum is not None
    # the CRC-64/NVME check value of "123456789" (its catalogue entry: 0xAE8B14860A799888)
    assert checksum.value(b"123456789") == "rosUhgp5mIg="
    assert checksum.upload_headers() == {
        "x-amz-checksum-algorithm": "CRC64NVME",
        "x-amz-checksum-type": "FULL_OBJECT",
    }


# ---- uploads left by writers that died ----------------------------------------------------------


async def test_uploads_left_by_another_client_are_listed_and_cleaned(
    s3_store: S3Store, s3_admin: Any, bucket: str
) -> None:
    for key in ("logs/a", "logs/b", "data/c"):
        s3_admin.create_multipart_upload(Bucket=bucket, Key=key)
    listed = await s3_store.list_incomplete("logs")
    assert sorted(u.location for u in listed) == ["logs/a", "logs/b"]
    theirs = s3_admin.list_multipart_uploads(Bucket=bucket, Prefix="logs/")["Uploads"]
    assert {u.upload_id for u in listed} == {u["UploadId"] for u in theirs}
    await asyncio.sleep(1.0)
    assert await s3_store.cleanup_incomplete("logs", older_than=0) == 2
    left = s3_admin.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["Key"] for u in left] == ["data/c"]
    assert await s3_store.cleanup_incomplete(older_than=0) == 1


def test_upload_listing_pages_follow_the_markers() -> None:
    from objstore.backends.s3 import _parse_uploads

    ns = "http://s3.amazonaws.com/doc/2006-03-01/"
    page = (
        f'<ListMultipartUploadsResult xmlns="{ns}"><IsTruncated>true</IsTruncated>'
        "<NextKeyMarker>k/2</NextKeyMarker><NextUploadIdMarker>id2</NextUploadIdMarker>"
        "<Upload><Key>k/1</Key><UploadId>id1</UploadId>"
        "<Initiated>2026-11-20T10:00:00.000Z</Initiated></Upload>"
        "<Upload><Key>k/2</Key><UploadId>id2</UploadId>"
        "<Initiated>2026-11-21T10:00:00.000Z</Initiated></Upload>"
        "</ListMultipartUploadsResult>"
    ).encode()
    uploads, markers = _parse_uploads(page)
    assert [(u.location, u.upload_id, u.initiated.day) for u in uploads] == [
        ("k/1", "id1", 20), ("k/2", "id2", 21),
    ]  # fmt: skip
    assert markers == [("key-marker", "k/2"), ("upload-id-marker", "id2")]
    last = page.replace(b"<IsTruncated>true", b"<IsTruncated>false")
    assert _parse_uploads(last)[1] == []


async def test_a_prefixed_store_lists_its_own_uploads_relative_to_it(
    s3_server: S3Server, s3_admin: Any, bucket: str
) -> None:
    for key in ("pre/x", "pre/sub/y", "prefix/z", "other/w"):
        s3_admin.create_multipart_upload(Bucket=bucket, Key=key)
    store = objstore.from_url(f"s3://{bucket}/pre", s3_server.options())
    assert sorted(u.location for u in await store.list_incomplete()) == ["sub/y", "x"]
    assert [u.location for u in await store.list_incomplete("sub")] == ["sub/y"]
    await asyncio.sleep(1.0)
    assert await store.cleanup_incomplete(older_than=0) == 2
    left = s3_admin.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert sorted(u["Key"] for u in left) == ["other/w", "prefix/z"]
    await store.aclose()


async def test_text_metadata_travels_as_rfc2047_encoded_words(
    s3_store: S3Store, s3_admin: Any, bucket: str
) -> None:
    # raw UTF-8 in a header breaks the signature on AWS, which decodes RFC 2047 words itself
    author = "José 日本 " + "ü" * 40
    await s3_store.put("meta", b"x", attributes={"author": author, "plain": "ascii"})
    sent = s3_admin.head_object(Bucket=bucket, Key="meta")["Metadata"]
    assert sent["plain"] == "ascii"
    words = sent["author"].split(" ")
    assert len(words) == 3
    assert all(w.startswith("=?UTF-8?B?") for w in words)
    assert all(len(w) <= 75 and w.isascii() for w in words)
    assert (await s3_store.get_result("meta")).attributes["author"] == author
    # what a tool that sent raw UTF-8 left, or S3 served undecoded, reads as written
    s3_admin.put_object(Bucket=bucket, Key="other", Body=b"x", Metadata={"note": "a =? b"})
    assert (await s3_store.get_result("other")).attributes["note"] == "a =? b"


async def test_a_bucket_in_another_region_is_a_config_error_naming_it() -> None:
    # what AWS answers a request signed for the wrong region (SeaweedFS has no regions)
    from aiohttp import web

    from objstore.testing.standin import serve_handler

    seen: list[str] = []

    async def wrong_region(request: web.Request) -> web.Response:
        seen.append(request.method)
        await request.read()
        if request.method == "GET":  # signed for us-east-1 at the bucket's endpoint
            body = ("<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region "
                    "'us-east-1' is wrong; expecting 'eu-west-1'</Message>"
                    "<Region>eu-west-1</Region></Error>")  # fmt: skip
            return web.Response(status=400, text=body, content_type="application/xml")
        headers = {"x-amz-bucket-region": "eu-west-1"}  # the wrong endpoint: a redirect
        body = "" if request.method == "HEAD" else "<Error><Code>PermanentRedirect</Code></Error>"
        return web.Response(status=301, text=body, headers=headers)

    async with serve_handler(wrong_region) as endpoint:
        options = {"aws_endpoint": endpoint, "aws_region": "us-east-1", "allow_http": "true",
                   "aws_access_key_id": "AKID", "aws_secret_access_key": "secret"}  # fmt: skip
        async with objstore.from_url("s3://bucket", options) as store:
            for call in (store.get("k"), store.head("k"), store.put("k", b"x")):
                with pytest.raises(objstore.ConfigError, match="'eu-west-1'") as caught:
                    await call
                assert "aws_region" in str(caught.value)
    assert seen == ["GET", "HEAD", "PUT"]  # refused at once: nothing retried


async def test_copy_if_not_exists_copies_the_object_it_looked_at(s3_store: S3Store) -> None:
    # the multipart copy reads the source's attributes and tags first, then copies its data:
    # a source replaced in between must not give a copy of new data with old attributes
    await s3_store.put("race/src", b"old", attributes={"content_type": "text/old"})
    looked = s3_store._get

    async def look_then_replace(key: Any, options: Any) -> Any:
        found = await looked(key, options)
        await s3_store.put("race/src", b"new", attributes={"content_type": "text/new"})
        return found

    s3_store._get = look_then_replace  # type: ignore[method-assign]
    with pytest.raises(ConcurrentModificationError, match="'race/src' changed while"):
        await s3_store.copy_if_not_exists("race/src", "race/dst")
    del s3_store._get
    assert not await s3_store.exists("race/dst")
    assert await s3_store.list_incomplete("race") == []


async def test_disabled_tagging_writes_and_reads_no_tags(s3_server: S3Server, bucket: str) -> None:
    options = s3_server.options(aws_disable_tagging="true")
    async with objstore.from_url(f"s3://{bucket}", options) as store:
        await store.put("untagged", b"x", tags={"team": "a"})
        with pytest.raises(NotSupportedError, match="aws_disable_tagging"):
            await store.get_tags("untagged")
    async with objstore.from_url(f"s3://{bucket}", s3_server.options()) as store:
        assert await store.get_tags("untagged") == {}


async def test_a_store_unpickled_without_its_secrets_says_so(
    s3_server: S3Server, bucket: str
) -> None:
    store = objstore.from_url(f"s3://{bucket}", s3_server.options())
    clone = pickle.loads(pickle.dumps(store))  # no credentials here: the chain finds none
    with pytest.raises(UnauthenticatedError) as caught:
        await clone.get("anything")
    (note,) = caught.value.__notes__
    assert "without its secrets (aws_access_key_id, aws_secret_access_key)" in note
    assert "allow_pickle_secrets" in note
    assert s3_server.secret_key not in note
    await clone.aclose()
    await store.aclose()


async def test_a_store_unpickled_without_its_customer_key_says_so(
    s3_server: S3Server, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a dask worker's clone finds credentials of its own, but not the key its objects are
    # encrypted with: S3 answers "400" (a HEAD has no body to say why), and the error says
    # which secret stayed behind
    key = base64.b64encode(b"c" * 32).decode()
    options = s3_server.options(aws_server_side_encryption="sse-c", aws_sse_customer_key_base64=key)
    async with objstore.from_url(f"s3://{bucket}", options) as store:
        await store.put("encrypted", b"x")
        payload = pickle.dumps(store)
    assert key.encode() not in payload
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    clone = pickle.loads(payload)
    for read in (clone.get, clone.head):
        with pytest.raises(InvalidRequestError) as caught:
            await read("encrypted")
        (note,) = caught.value.__notes__
        assert "without its secrets (" in note
        assert "aws_sse_customer_key_base64" in note
    with pytest.raises(NotFoundError) as missing:  # other errors get no such note
        await clone.get("missing")
    assert not getattr(missing.value, "__notes__", [])
    await clone.aclose()


@pytest.fixture
async def versioned(s3_server: S3Server, s3_admin: Any, bucket: str) -> AsyncIterator[Any]:
    """A store on a bucket with versioning on."""
    s3_admin.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    store = objstore.from_url(f"s3://{bucket}", s3_server.options())
    yield store
    await store.aclose()


async def test_versions_and_delete_markers_are_listed(
    versioned: Any, s3_server: S3Server, s3_admin: Any, bucket: str
) -> None:
    store = versioned
    first = await store.put("v/k", b"one")
    second = await store.put("v/k", b"second")
    gone = await store.put("v/gone", b"x")
    await store.delete("v/gone")
    (marker,) = s3_admin.list_object_versions(Bucket=bucket, Prefix="v/")["DeleteMarkers"]
    versions = await store.list_versions("v")
    assert [(v.location, v.version, v.is_latest, v.deleted, v.size) for v in versions] == [
        ("v/gone", marker["VersionId"], True, True, 0),
        ("v/gone", gone.version, False, False, 1),
        ("v/k", second.version, True, False, 6),
        ("v/k", first.version, False, False, 3),
    ]
    assert versions[0].e_tag is None
    assert versions[1].e_tag == gone.e_tag
    older = await store.get_result("v/k", version=versions[-1].version)
    assert older.data == b"one"
    rooted = objstore.from_url(f"s3://{bucket}/v", s3_server.options())
    assert [(v.location, v.version) for v in await rooted.list_versions()] == [
        ("gone", marker["VersionId"]), ("gone", gone.version),
        ("k", second.version), ("k", first.version),
    ]  # fmt: skip
    await rooted.aclose()


async def test_versions_of_one_key_over_many_pages(
    versioned: Any, s3_admin: Any, bucket: str
) -> None:
    # 1,000 to a page: one key's versions span two, and keep the service's order (newest
    # first) across the page boundary; the listing ends
    store = versioned
    await gather_bounded([store.put("many", str(i).encode()) for i in range(1010)], 16)
    await store.put("next", b"x")
    expected = [
        item["VersionId"]
        for page in s3_admin.get_paginator("list_object_versions").paginate(Bucket=bucket)
        for item in page.get("Versions", [])
        if item["Key"] == "many"
    ]
    versions = await store.list_versions()
    assert [v.version for v in versions if v.location == "many"] == expected
    assert len(expected) == 1010
    assert [v.location for v in versions][-2:] == ["many", "next"]
    assert sum(v.is_latest for v in versions) == 2


async def test_versions_are_deleted_one_by_one(versioned: Any, s3_admin: Any, bucket: str) -> None:
    store = versioned
    first = await store.put("k", b"one")
    second = await store.put("k", b"two")
    await store.delete("k", version=first.version)  # an older one: the object stays
    assert [v.version for v in await store.list_versions()] == [second.version]
    assert await store.get("k") == b"two"
    await store.put("k", b"three")
    latest = (await store.head("k")).version
    await store.delete("k", version=latest)  # the latest: the one before is current again
    assert await store.get("k") == b"two"
    await store.delete("k")  # a delete marker, which removing brings the object back
    (marker,) = [v for v in await store.list_versions() if v.deleted]
    assert not await store.exists("k")
    await store.delete("k", version=marker.version)
    assert await store.get("k") == b"two"
    await store.delete("k", version="not-one-of-its-versions")
    assert await store.get("k") == b"two"


async def test_an_unversioned_bucket_deletes_only_by_null(s3_store: S3Store) -> None:
    # SeaweedFS ignores versionId on an unversioned bucket and would delete the object for
    # any id: the version is looked up first. ``null`` names the object there, as on S3.
    await s3_store.put("k", b"kept")
    await s3_store.delete("k", version="3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY")
    assert await s3_store.get("k") == b"kept"
    await s3_store.delete("k", version="null")
    assert not await s3_store.exists("k")


async def test_an_older_version_is_copied_and_restored(versioned: Any) -> None:
    store = versioned
    first = await store.put("k", b"one", attributes={"content_type": "text/x-one"},
                            tags={"state": "first"})  # fmt: skip
    await store.put("k", b"two")
    await store.copy("k", "c", version=first.version)
    copied = await store.get_result("c")
    assert (copied.data, copied.attributes["content_type"]) == (b"one", "text/x-one")
    assert await store.get_tags("c") == {"state": "first"}
    with pytest.raises(objstore.AlreadyExistsError):
        await store.copy("k", "c", overwrite=False, version=first.version)
    await store.copy("k", "k", version=first.version)  # the old version made current again
    assert await store.get("k") == b"one"
    assert len(await store.list_versions()) == 4  # k: one, two, one again; c


@pytest.mark.parametrize("copy_mode", ["multipart", "header:If-None-Match:*"])
async def test_an_older_version_is_copied_with_its_attributes(
    s3_server: S3Server, s3_admin: Any, bucket: str, copy_mode: str
) -> None:
    # copy-if-not-exists — as a multipart copy (like CopyObject's 5 GiB refusal), or as a
    # CopyObject whose metadata is replaced to carry a write token — reads the attributes
    # and tags of the version asked for, and copies its bytes
    s3_admin.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    options = s3_server.options(aws_copy_if_not_exists=copy_mode)
    async with objstore.from_url(f"s3://{bucket}", options) as store:
        first = await store.put("k", b"one", attributes={"cache_control": "no-store"},
                                tags={"state": "first"})  # fmt: skip
        await store.put("k", b"two", tags={"state": "second"})
        await store.copy("k", "c", overwrite=False, version=first.version)
        copied = await store.get_result("c")
        assert (copied.data, copied.attributes.get("cache_control")) == (b"one", "no-store")
        assert await store.get_tags("c") == {"state": "first"}
        with pytest.raises(objstore.NotFoundError, match="no version"):
            await store.copy("k", "d", overwrite=False, version="123456")


@pytest.mark.parametrize(
    "test",
    [
        StoreConformance.test_copy,
        StoreConformance.test_rename,
        StoreConformance.test_copy_and_rename_onto_itself_keep_the_object,
        StoreConformance.test_copies_keep_the_attributes_of_the_bytes_they_copied,
    ],
    ids=lambda test: test.__name__,
)
@pytest.mark.parametrize("customer_key", [False, True], ids=["", "sse-c"])
async def test_header_copy_mode_passes_the_copy_conformance(
    s3_server: S3Server,
    bucket: str,
    test: Callable[[Any, Any], Awaitable[None]],
    customer_key: bool,
) -> None:
    # the conformance suite runs in the default (multipart) mode; its copy tests also in the
    # header mode, where a source rewritten mid-copy fails the pinned CopyObject (with a
    # customer key too: the copy sends it twice, for its source and for itself)
    key = {"aws_server_side_encryption": "sse-c",
           "aws_sse_customer_key_base64": base64.b64encode(b"k" * 32).decode()}  # fmt: skip
    options = s3_server.options(aws_copy_if_not_exists="header:If-None-Match:*",
                                **(key if customer_key else {}))  # fmt: skip
    async with objstore.from_url(f"s3://{bucket}", options) as store:
        await test(StoreConformance(), store)


@pytest.mark.parametrize(
    "test",
    [
        StoreConformance.test_create_mode,
        StoreConformance.test_update_mode,
        StoreConformance.test_copy,
        StoreConformance.test_rename,
    ],
    ids=lambda test: test.__name__,
)
async def test_switched_off_features_are_not_capabilities(
    s3_server: S3Server, bucket: str, test: Callable[[Any, Any], Awaitable[None]]
) -> None:
    # a server without conditional writes or tags (aws_conditional_put, aws_disable_tagging):
    # the store says so in its capabilities, refuses them naming the key, and copies that
    # must not overwrite still work where they need no conditional write (header mode)
    options = s3_server.options(aws_conditional_put="disabled", aws_disable_tagging="true",
                                aws_copy_if_not_exists="header:If-None-Match:*")  # fmt: skip
    async with objstore.from_url(f"s3://{bucket}", options) as store:
        caps = store.capabilities
        assert (caps.tags, caps.create_mode, caps.update_mode) == (False, False, False)
        assert type(store).capabilities.tags  # other stores keep theirs
        await test(StoreConformance(), store)
        with pytest.raises(NotSupportedError, match="turned off by 'aws_conditional_put'"):
            await store.put("k", b"x", mode="create")
        await store.put("k", b"x", tags={"team": "a"})  # dropped, as documented
        with pytest.raises(NotSupportedError, match="turned off by 'aws_disable_tagging'"):
            await store.get_tags("k")


@pytest.mark.parametrize("copy_mode", ["multipart", "header:If-None-Match:*"])
async def test_every_write_of_an_sse_s3_store_is_encrypted(
    s3_server: S3Server, s3_admin: Any, bucket: str, copy_mode: str
) -> None:
    # aws_server_side_encryption applies to whatever the store writes, copies included: a
    # CopyObject that does not ask for it gets the bucket's default (AWS), or none (SeaweedFS)
    options = s3_server.options(aws_server_side_encryption="AES256",
                                aws_copy_if_not_exists=copy_mode)  # fmt: skip
    async with objstore.from_url(f"s3://{bucket}", s3_server.options()) as plain:
        await plain.put("plain", b"not encrypted")
    async with objstore.from_url(f"s3://{bucket}", options) as store:
        await store.put("put", b"small")
        await store.put("created", b"small", mode="create")
        await store.put("large", bytes(12 * MiB))
        async with store.open_writer("written") as writer:
            await writer.write(bytes(6 * MiB))
        for src, dst in [("plain", "copy"), ("put", "copy-of-encrypted")]:
            await store.copy(src, dst)
        await store.copy_if_not_exists("plain", "copy-if-absent")
        await store.copy("plain", "to-rename")
        await store.rename("to-rename", "renamed")
        await store.copy("plain", "to-rename")
        await store.rename_if_not_exists("to-rename", "renamed-if-absent")
    written = ["put", "created", "large", "written", "copy", "copy-of-encrypted",
               "copy-if-absent", "renamed", "renamed-if-absent"]  # fmt: skip
    encryption = {key: s3_admin.head_object(Bucket=bucket, Key=key).get("ServerSideEncryption")
                  for key in ["plain", *written]}  # fmt: skip
    assert encryption == {"plain": None, **dict.fromkeys(written, "AES256")}
