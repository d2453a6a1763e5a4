"""Azure specifics on Azurite: batch deletes, block uploads, SAS URLs and tokens, metadata rules,
error mapping, the emulator switch, and faults injected by a proxy on 127.0.0.1."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import objstore
from objstore import (
    AlreadyExistsError,
    BucketNotFoundError,
    BulkDeleteError,
    InvalidRequestError,
    NotSupportedError,
    PermissionDeniedError,
    PreconditionFailedError,
    UnauthenticatedError,
    UpdateVersion,
)
from objstore._inline import gather_bounded
from objstore.backends.azure import AzureStore
from objstore.testing.emulators import AzureServer
from objstore.testing.faultproxy import FaultProxy, Rule, split_endpoint
from objstore.testing.standin import serve_handler

MiB = 1024 * 1024
FAST_RETRIES = {"backoff_initial": "5ms", "backoff_max": "50ms", "max_retries": "5"}


@pytest.fixture
async def store(azure_server: AzureServer, azure_container: str) -> AsyncIterator[AzureStore]:
    made = objstore.from_url(f"az://{azure_container}", azure_server.options())
    assert isinstance(made, AzureStore)
    yield made
    await made.aclose()


async def _lease(store: AzureStore, key: str) -> None:
    """Take an infinite lease on a blob (a delete without the lease id then fails)."""
    await store._send(
        "PUT", store._blob_path(key), key, params=[("comp", "lease")],
        headers={"x-ms-lease-action": "acquire", "x-ms-lease-duration": "-1"}, ok=(201,),
    )  # fmt: skip


async def test_bulk_delete_goes_in_batches_of_256(
    store: AzureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [f"many/{i:04d}" for i in range(300)]
    await gather_bounded([store.put(k, b"x") for k in keys], 32)
    batches: list[int] = []
    original = store._delete_batch

    async def counted(batch: Any) -> Any:
        batches.append(len(batch))
        return await original(batch)

    monkeypatch.setattr(store, "_delete_batch", counted)
    assert await store.delete_many([*keys, "many/never-existed"]) == 301
    assert sorted(batches) == [45, 256]
    assert await store.list("many") == []


async def test_bulk_delete_reports_each_failure(store: AzureStore) -> None:
    for key in ("a", "leased", "b"):
        await store.put(key, b"x")
    await _lease(store, "leased")
    with pytest.raises(BulkDeleteError) as info:
        await store.delete_many(["a", "leased", "b"])
    assert set(info.value.errors) == {"leased"}
    assert info.value.errors["leased"].status == 412
    assert [m.location for m in await store.list()] == ["leased"]


async def test_blocks_commit_in_order_and_concurrently(store: AzureStore) -> None:
    data = bytes(range(256)) * (90 * 1024)  # 22.5 MiB: five 5 MiB blocks
    async with store.open_writer("big", part_size=5 * MiB, max_concurrency=4) as writer:
        for start in range(0, len(data), 3 * MiB + 7):
            await writer.write(data[start : start + 3 * MiB + 7])
    assert await store.get("big") == data
    assert await store.get_range("big", 5 * MiB - 3, 5 * MiB + 3) == data[5 * MiB - 3 : 5 * MiB + 3]


async def _abandoned_write(store: AzureStore, key: str) -> None:
    """Stage two blocks, then fail inside the writer."""
    async with store.open_writer(key, part_size=5 * MiB) as writer:
        await writer.write(b"n" * (11 * MiB))
        raise RuntimeError("boom")


async def test_aborted_block_upload_leaves_the_old_blob(store: AzureStore) -> None:
    await store.put("kept", b"old")
    with pytest.raises(RuntimeError, match="boom"):
        await _abandoned_write(store, "kept")
    assert await store.get("kept") == b"old"
    with pytest.raises(RuntimeError, match="boom"):
        await _abandoned_write(store, "fresh")
    assert not await store.exists("fresh")
    assert [m.location for m in await store.list()] == ["kept"]


async def _staged_then_aborted(store: AzureStore, key: str) -> None:
    writer = store.open_writer(key, part_size=5 * MiB, max_concurrency=1)
    await writer.write(b"n" * (6 * MiB))  # one block staged, awaited
    await writer.abort()


async def test_aborted_new_blob_leaves_blocks_that_cleanup_removes(store: AzureStore) -> None:
    # abort sends nothing (deleting the blob could take another writer's staged blocks), so
    # the uncommitted blob stays until cleanup, a commit, or the service's week
    await store.put("zero", b"")
    await store.put("kept", b"old")
    await _staged_then_aborted(store, "fresh")
    await _staged_then_aborted(store, "kept")  # blocks on a committed blob: not listable
    (left,) = await store.list_incomplete()
    assert (left.location, left.upload_id) == ("fresh", "fresh")
    await asyncio.sleep(1.0)
    assert await store.cleanup_incomplete(older_than=0) == 1
    assert await store.list_incomplete() == []
    assert {m.location: m.size for m in await store.list()} == {"kept": 3, "zero": 0}


async def test_cleanup_spares_a_blob_committed_after_the_listing(store: AzureStore) -> None:
    await _staged_then_aborted(store, "raced")
    (stale,) = await store.list_incomplete()
    await asyncio.sleep(1.0)  # Last-Modified has whole seconds
    await store.put("raced", b"committed meanwhile")
    assert await store._discard_incomplete(stale) is False  # If-Unmodified-Since refused it
    assert await store.get("raced") == b"committed meanwhile"


async def test_block_upload_create_mode_and_attributes(store: AzureStore) -> None:
    data = b"c" * (6 * MiB)
    async with store.open_writer(
        "made",
        mode="create",
        part_size=5 * MiB,
        attributes={"content_type": "text/csv", "team": "a"},
    ) as writer:
        await writer.write(data)
    got = await store.get_result("made")
    assert got.data == data
    assert got.attributes["content_type"] == "text/csv"
    assert got.attributes["team"] == "a"
    assert "objstore_write_token" not in got.attributes
    with pytest.raises(AlreadyExistsError):
        async with store.open_writer("made", mode="create", part_size=5 * MiB) as writer:
            await writer.write(data)
    assert await store.get("made") == data


async def test_metadata_keys_must_be_identifiers(store: AzureStore) -> None:
    with pytest.raises(InvalidRequestError, match="'team-a'"):
        await store.put("m", b"x", attributes={"team-a": "1"})
    with pytest.raises(InvalidRequestError, match="'9lives'"):
        await store.put("m", b"x", attributes={"9lives": "1"})
    assert not await store.exists("m")
    await store.put("m", b"x", attributes={"Team_A": "1"})
    assert (await store.get_result("m")).attributes["team_a"] == "1"  # names keep no case


async def test_update_needs_an_etag(store: AzureStore) -> None:
    first = await store.put("u", b"1")
    assert first.e_tag is not None
    assert first.e_tag.startswith('"')
    with pytest.raises(InvalidRequestError, match="e_tag"):
        await store.put("u", b"2", mode=UpdateVersion(version="some-version"))
    await store.put("u", b"2", mode=UpdateVersion(e_tag=first.e_tag.strip('"')))
    assert await store.get("u") == b"2"


async def test_copy_polls_and_honours_create_mode(store: AzureStore) -> None:
    await store.put("src", b"payload", attributes={"content_type": "text/plain"})
    await store.copy("src", "dst")
    got = await store.get_result("dst")
    assert (got.data, got.attributes["content_type"]) == (b"payload", "text/plain")
    with pytest.raises(AlreadyExistsError):
        await store.copy_if_not_exists("src", "dst")
    with pytest.raises(objstore.NotFoundError) as info:
        await store.copy("missing", "elsewhere")
    assert info.value.path == "missing"


async def test_missing_container_is_typed(azure_server: AzureServer) -> None:
    async with objstore.from_url("az://no-such-container", azure_server.options()) as store:
        with pytest.raises(BucketNotFoundError):
            await store.get("x")
        with pytest.raises(BucketNotFoundError):
            await store.list()
        with pytest.raises(BucketNotFoundError):  # a misspelt container is not a missing blob
            await store.exists("x")
        for move in (store.copy, store.rename, store.copy_if_not_exists):
            with pytest.raises(BucketNotFoundError):
                await move("x", "y")


async def test_a_feature_the_server_lacks_is_not_retried(
    azure_server: AzureServer, azure_container: str
) -> None:
    # Azurite answers a customer-provided key with 500 FeatureNotSupported: no retry can
    # change that, so it is NotSupportedError at once, naming what it lacks (not the key)
    key = "a2V5LWtleS1rZXkta2V5LWtleS1rZXkta2V5LWtleS0="
    options = azure_server.options(azure_storage_encryption_key=key, max_retries="3")
    async with objstore.from_url(f"az://{azure_container}", options) as store:
        with pytest.raises(NotSupportedError, match="x-ms-encryption-key") as info:
            await store.put("x", b"x")
    assert not isinstance(info.value, objstore.TransientError)
    assert (info.value.status, info.value.code) == (500, "FeatureNotSupported")
    assert key not in str(info.value)


async def test_wrong_key_is_a_permission_error_without_the_key(
    azure_server: AzureServer, azure_container: str
) -> None:
    wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nIQ=="
    options = azure_server.options(azure_storage_account_key=wrong)
    async with objstore.from_url(f"az://{azure_container}", options) as store:
        with pytest.raises(PermissionError) as info:
            await store.put("x", b"x")
        assert wrong not in str(info.value)
        assert wrong not in repr(info.value)
        assert info.value.status == 403  # type: ignore[attr-defined]
        assert wrong not in repr(store)
        assert wrong not in repr(store.config)


async def test_store_pickles_without_its_key(
    azure_server: AzureServer, azure_container: str
) -> None:
    store = objstore.from_url(f"az://{azure_container}", azure_server.options())
    assert azure_server.key.encode() not in pickle.dumps(store)
    without = pickle.loads(pickle.dumps(store))  # falls back to a managed identity: none here
    with pytest.raises(UnauthenticatedError) as caught:
        await without.get("p")
    assert "without its secrets (azure_storage_account_key)" in caught.value.__notes__[0]
    await without.aclose()
    allowed = objstore.from_url(
        f"az://{azure_container}", azure_server.options(allow_pickle_secrets="true")
    )
    clone = pickle.loads(pickle.dumps(allowed))
    await clone.put("p", b"pickled")
    assert await allowed.get("p") == b"pickled"
    await clone.aclose()
    await allowed.aclose()


async def test_emulator_switch_reads_azurite_url(
    azure_server: AzureServer, azure_container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    origin = azure_server.endpoint.rsplit("/", 1)[0]
    monkeypatch.setenv("AZURITE_BLOB_STORAGE_URL", origin)
    store = objstore.from_url(f"az://{azure_container}", {"azure_storage_use_emulator": "true"})
    assert isinstance(store, AzureStore)
    assert (store.account, store.credential_source) == ("devstoreaccount1", "shared key")
    await store.put("emulated", b"yes")
    assert await store.get("emulated") == b"yes"
    await store.aclose()


# ---- SAS -------------------------------------------------------------------------------------


async def _http(method: str, url: str, **kwargs: Any) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, session.request(method, url, **kwargs) as r:
        return r.status, await r.read()


async def test_signed_urls_read_write_delete(store: AzureStore) -> None:
    await store.put("signed", b"secret data")
    assert await _http("GET", await store.sign("GET", "signed")) == (200, b"secret data")
    status, _ = await _http("HEAD", await store.sign("HEAD", "signed"))
    assert status == 200
    put_url = await store.sign("PUT", "uploaded")
    status, _ = await _http(
        "PUT", put_url, data=b"via sas", headers={"x-ms-blob-type": "BlockBlob"}
    )
    assert status == 201
    assert await store.get("uploaded") == b"via sas"
    status, _ = await _http("DELETE", await store.sign("DELETE", "uploaded"))
    assert status == 202
    assert not await store.exists("uploaded")


async def test_signed_urls_refuse_tampering_other_verbs_and_expiry(store: AzureStore) -> None:
    await store.put("signed", b"secret data")
    url = await store.sign("GET", "signed")
    assert (await _http("GET", url.replace("sig=", "sig=A")))[0] == 403
    assert (await _http("GET", url.replace("/signed?", "/other?")))[0] in (403, 404)
    read_only = await store.sign("GET", "signed")
    status, _ = await _http(
        "PUT", read_only, data=b"overwrite", headers={"x-ms-blob-type": "BlockBlob"}
    )
    assert status == 403
    assert await store.get("signed") == b"secret data"
    short = await store.sign("GET", "signed", expires_in=1)
    await asyncio.sleep(2.2)
    assert (await _http("GET", short))[0] == 403


async def test_sas_token_store(azure_server: AzureServer, azure_container: str) -> None:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    token = generate_container_sas(
        account_name=azure_server.account, container_name=azure_container,
        account_key=azure_server.key,
        permission=ContainerSasPermissions(read=True, write=True, delete=True, list=True,
                                           add=True, create=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )  # fmt: skip
    options = {
        "azure_storage_endpoint": azure_server.endpoint,
        "azure_storage_sas_key": "?" + token,
        "allow_http": "true",
    }
    async with objstore.from_url(f"az://{azure_container}", options) as store:
        assert isinstance(store, AzureStore)
        assert store.credential_source == "SAS token"
        await store.put("a/1", b"one")
        await store.put("a/2", b"two")
        await store.copy("a/1", "a/3")
        assert [m.location for m in await store.list("a")] == ["a/1", "a/2", "a/3"]
        assert await store.get_range("a/2", 1, 3) == b"wo"
        await store.delete_many(["a/1", "a/2", "a/3"])
        assert await store.list("a") == []
        with pytest.raises(NotSupportedError, match="account key"):
            await store.sign("GET", "a/1")
        assert token.split("sig=")[1][:20] not in repr(store.config)


async def test_copy_through_a_sas_that_cannot_read_tags(
    store: AzureStore, azure_server: AzureServer, azure_container: str
) -> None:
    # Copy Blob leaves the source's tags behind, so the copy reads them first (Get Blob
    # Tags); a SAS without the tags permission still copies, without the tags
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    await store.put("t/src", b"one", tags={"team": "a"})
    token = generate_container_sas(
        account_name=azure_server.account, container_name=azure_container,
        account_key=azure_server.key, permission=ContainerSasPermissions(read=True, write=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )  # fmt: skip
    options = {"azure_storage_endpoint": azure_server.endpoint,
               "azure_storage_sas_key": token, "allow_http": "true"}  # fmt: skip
    async with objstore.from_url(f"az://{azure_container}", options) as sas_store:
        with pytest.raises(PermissionDeniedError):
            await sas_store.get_tags("t/src")
        await sas_store.copy("t/src", "t/dst")
    assert await store.get("t/dst") == b"one"
    assert await store.get_tags("t/dst") == {}
    await store.copy("t/src", "t/dst")
    assert await store.get_tags("t/dst") == {"team": "a"}


async def test_tags_are_narrower_than_on_s3(store: AzureStore) -> None:
    for tags in ({"who": "a@b"}, {"café": "1"}):
        with pytest.raises(InvalidRequestError, match="Azure tags take ASCII"):
            await store.put("t/narrow", b"x", tags=tags)
    assert not await store.exists("t/narrow")


async def test_disabled_tagging_has_no_tags_to_read(
    azure_server: AzureServer, azure_container: str
) -> None:
    options = azure_server.options(azure_disable_tagging="true")
    async with objstore.from_url(f"az://{azure_container}", options) as store:
        await store.put("t/off", b"x", tags={"team": "a"})
        with pytest.raises(NotSupportedError, match="azure_disable_tagging"):
            await store.get_tags("t/off")


# ---- faults ------------------------------------------------------------------------------------


@pytest.fixture
async def proxied(
    azure_server: AzureServer, azure_container: str
) -> AsyncIterator[tuple[AzureStore, FaultProxy]]:
    origin, path = split_endpoint(azure_server.endpoint)
    async with FaultProxy(origin) as proxy:
        options = azure_server.options(azure_storage_endpoint=proxy.url + path,
                                       **FAST_RETRIES)  # fmt: skip
        made = objstore.from_url(f"az://{azure_container}", options)
        assert isinstance(made, AzureStore)
        yield made, proxy
        await made.aclose()


async def test_transient_errors_and_truncation_are_retried(
    proxied: tuple[AzureStore, FaultProxy],
) -> None:
    store, proxy = proxied
    data = bytes(range(256)) * 4096
    await store.put("k", data)
    proxy.rules = [
        Rule("status:503", "GET", times=2),
        Rule("reset_before", "HEAD"),
        Rule("truncate", "GET", contains="/k", times=1),
    ]
    assert await store.get("k") == data
    assert (await store.head("k")).size == len(data)
    faults = [fault for _, _, fault in proxy.log]
    assert faults.count("status:503") == 2
    assert "truncate" in faults


async def test_lost_response_on_create_is_reconciled(
    proxied: tuple[AzureStore, FaultProxy],
) -> None:
    store, proxy = proxied
    proxy.rules = [Rule("reset_after", "PUT", contains="/created")]
    result = await store.put("created", b"mine", mode="create")
    assert await store.get("created") == b"mine"
    assert result.e_tag == (await store.head("created")).e_tag
    with pytest.raises(AlreadyExistsError):
        await store.put("created", b"someone else", mode="create")


async def test_lost_response_on_block_commit_is_reconciled(
    proxied: tuple[AzureStore, FaultProxy],
) -> None:
    store, proxy = proxied
    proxy.rules = [Rule("reset_after", "PUT", contains="comp=blocklist")]
    data = b"z" * (6 * MiB)
    async with store.open_writer("big", mode="create", part_size=5 * MiB) as writer:
        await writer.write(data)
    assert await store.get("big") == data


async def test_listings_follow_markers_across_pages(store: AzureStore) -> None:
    keys = [f"p/{i:02d}" for i in range(12)] + [f"p/sub{i}/x" for i in range(5)]
    for key in keys:
        await store.put(key, b"x")
    store.list_page_size = 4
    assert [m.location for m in await store.list("p")] == sorted(keys)
    assert [m.location for m in await store.list("p", offset="p/10")] == sorted(keys)[11:]
    result = await store.list_with_delimiter("p")
    assert [m.location for m in result.objects] == keys[:12]
    assert result.common_prefixes == [f"p/sub{i}" for i in range(5)]
    before = asyncio.all_tasks()
    listing = store.list_iter("p")
    assert (await anext(listing)).location == "p/00"
    assert len(asyncio.all_tasks() - before) == 1  # the next page is on its way
    await listing.aclose()  # cancels it
    assert not [t for t in asyncio.all_tasks() - before if not t.done()]


@pytest.mark.parametrize(
    ("tail", "marker"),
    [
        (b"<NextMarker/>", None),  # Azurite's last page
        (b"<NextMarker />", None),
        (b"<NextMarker></NextMarker>", None),  # Azure's last page
        (b"", None),
        (b"<NextMarker>2!a&amp;b</NextMarker>", "2!a&b"),
        (b"<NextMarker><![CDATA[2!x]]></NextMarker>", "2!x"),  # unusual: ElementTree reads it
    ],
)
def test_next_marker_is_read_without_parsing_the_page(
    tail: bytes, marker: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import xml.etree.ElementTree as ET

    from objstore.backends import azure

    body = (
        b'<?xml version="1.0"?><EnumerationResults><Blobs><Blob><Name>a</Name></Blob></Blobs>'
        + tail
        + b"</EnumerationResults>"
    )
    parse = ET.fromstring
    parsed: list[bytes] = []

    def counted(text: bytes) -> ET.Element:
        parsed.append(text)
        return parse(text)

    monkeypatch.setattr(ET, "fromstring", counted)
    assert azure._next_marker(body) == marker
    assert bool(parsed) == (b"CDATA" in tail)  # only the unusual page costs a full parse


async def test_deletes_in_a_missing_container_fail(azure_server: AzureServer) -> None:
    # a missing blob is no delete error; a container name with a typo must not pass for one
    async with objstore.from_url("az://no-such-container", azure_server.options()) as store:
        with pytest.raises(objstore.BucketNotFoundError):
            await store.delete("k")
        with pytest.raises(objstore.BucketNotFoundError):  # not a failure of each path
            await store.delete_many(["a", "b"])  # one Blob Batch


async def test_block_uploads_stay_within_the_block_count(
    store: AzureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a blob takes at most 50,000 blocks (8 MiB blocks: 390 GiB); here at most 3
    monkeypatch.setattr(store, "max_parts", 3)
    data = bytes(range(256)) * (64 * 1024)  # 16 MiB
    await store.put("blocks", data, part_size=5 * MiB)
    _, listing = await store._send(
        "GET", store._blob_path("blocks"), "blocks", params=[("comp", "blocklist")]
    )
    assert listing.count(b"<Block>") == 3
    assert await store.get("blocks") == data


def _version_page(blobs: list[tuple[str, str, bool, int]], marker: str) -> bytes:
    entries = "".join(
        f"<Blob><Name>{name}</Name><VersionId>{version}</VersionId>"
        + ("<IsCurrentVersion>true</IsCurrentVersion>" if current else "")
        + "<Properties><Last-Modified>Fri, 27 Nov 2026 10:00:00 GMT</Last-Modified>"
        f"<Etag>0x{size:X}</Etag><Content-Length>{size}</Content-Length></Properties>"
        "<Metadata /></Blob>"
        for name, version, current, size in blobs
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><EnumerationResults ContainerName="cont">'
        f"<Prefix>v/</Prefix><Blobs>{entries}</Blobs><NextMarker>{marker}</NextMarker>"
        "</EnumerationResults>"
    ).encode()


async def test_blob_versions_are_listed_newest_first() -> None:
    # Azurite keeps no versions, so a stand-in answers as Azure does with versioning on:
    # oldest first, the current one marked, a key's versions split over two pages
    t = "2026-11-27T10:00:0{}.1234567Z".format
    pages = {
        "": _version_page([("v/gone", t(1), False, 1), ("v/k", t(2), False, 2)], "m2"),
        "m2": _version_page([("v/k", t(3), False, 3), ("v/k", t(4), True, 4)], ""),
    }
    includes, deleted = [], []

    async def handler(request: web.Request) -> web.Response:
        if request.method == "DELETE":
            deleted.append((request.path, request.query.get("versionid")))
            return web.Response(status=202)
        includes.append(request.query.get("include"))
        return web.Response(body=pages[request.query.get("marker", "")],
                            content_type="application/xml")  # fmt: skip

    async with serve_handler(handler) as url:
        options = {"azure_storage_endpoint": f"{url}/acct", "azure_storage_account_name": "acct",
                   "azure_storage_account_key": "a2V5", "allow_http": "true"}  # fmt: skip
        async with objstore.from_url("az://cont", options) as store:
            versions = await store.list_versions("v")
            await store.delete("v/k", version=t(3))  # listed: deleted by its id
            await store.delete("v/k", version=t(9))  # not listed (Azurite would delete the blob)
    assert [(v.location, v.version, v.is_latest, v.size) for v in versions] == [
        ("v/gone", t(1), False, 1),
        ("v/k", t(4), True, 4),
        ("v/k", t(3), False, 3),
        ("v/k", t(2), False, 2),
    ]
    assert includes == ["metadata,versions"] * 6
    assert deleted == [("/acct/cont/v/k", t(3))]


class VersionedBlobServer:
    """One container of Azure Blob Storage with blob versioning on, as a stand-in (Azurite
    keeps no versions): Put Blob with If-Match, Get Blob Properties, and List Blobs with
    ``include=metadata,versions``. ``fault`` drops the connection of the next Put Blob
    ``"after"`` applying it (its reply lost) or ``"before"`` (not applied)."""

    def __init__(self) -> None:
        self.versions: list[dict[str, Any]] = []  # of the one blob the tests write, in order
        self.fault: str | None = None

    def _current(self) -> dict[str, Any] | None:
        return self.versions[-1] if self.versions else None

    def write(self, data: bytes, metadata: dict[str, str]) -> dict[str, Any]:
        n = len(self.versions) + 1
        version = {"id": f"2026-11-27T10:00:{n:02d}.0000000Z", "etag": f'"0x{n:X}"',
                   "data": data, "metadata": metadata}  # fmt: skip
        self.versions.append(version)
        return version

    async def handle(self, request: web.Request) -> web.StreamResponse:
        current = self._current()
        if request.query.get("comp") == "list":
            return web.Response(body=self._listing(), content_type="application/xml")
        if request.method == "PUT":
            fault, self.fault = self.fault, None
            if fault == "before" and request.transport is not None:
                request.transport.abort()
                return web.Response(status=500)
            wanted = request.headers.get("If-Match")
            if wanted is not None and (current is None or current["etag"] != wanted):
                return web.Response(status=412, headers={"x-ms-error-code": "ConditionNotMet"})
            metadata = {k[len("x-ms-meta-"):]: v for k, v in request.headers.items()
                        if k.lower().startswith("x-ms-meta-")}  # fmt: skip
            made = self.write(await request.read(), metadata)
            if fault == "after" and request.transport is not None:
                request.transport.abort()
            return web.Response(status=201, headers=self._headers(made))
        if current is None:
            return web.Response(status=404, headers={"x-ms-error-code": "BlobNotFound"})
        headers = {**self._headers(current), "Content-Length": str(len(current["data"]))}
        headers.update({f"x-ms-meta-{k}": v for k, v in current["metadata"].items()})
        return web.Response(status=200, headers=headers)

    @staticmethod
    def _headers(version: dict[str, Any]) -> dict[str, str]:
        return {"ETag": version["etag"], "x-ms-version-id": version["id"],
                "Last-Modified": "Fri, 27 Nov 2026 10:00:00 GMT"}  # fmt: skip

    def _listing(self) -> bytes:
        entries = "".join(
            f"<Blob><Name>counter</Name><VersionId>{v['id']}</VersionId>"
            + ("<IsCurrentVersion>true</IsCurrentVersion>" if v is self._current() else "")
            + "<Properties><Last-Modified>Fri, 27 Nov 2026 10:00:00 GMT</Last-Modified>"
            f"<Etag>{v['etag'].strip(chr(34))}</Etag>"
            f"<Content-Length>{len(v['data'])}</Content-Length></Properties><Metadata>"
            + "".join(f"<{k}>{val}</{k}>" for k, val in v["metadata"].items())
            + "</Metadata></Blob>"
            for v in self.versions
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?><EnumerationResults ContainerName="cont">'
            f"<Blobs>{entries}</Blobs><NextMarker /></EnumerationResults>"
        ).encode()


@pytest.mark.parametrize("applied", [True, False])
async def test_blob_versions_tell_a_lost_update_from_one_never_applied(applied: bool) -> None:
    # As on a versioned GCS bucket (test_gcs_specific): our update of the blob's state E loses
    # its reply, two other writers move the blob on, and the version after E's says whether
    # ours was applied (its own result) or not (a certain conflict)
    server = VersionedBlobServer()
    base = server.write(b"0", {})
    async with serve_handler(server.handle) as url:
        options = {"azure_storage_endpoint": f"{url}/acct", "azure_storage_account_name": "acct",
                   "azure_storage_account_key": "a2V5", "allow_http": "true"}  # fmt: skip
        store: Any = objstore.from_url("az://cont", {**options, **FAST_RETRIES})
        look = store._carried

        async def others_move_on(*args: Any) -> Any:
            store._carried = look  # once
            if not applied:  # another client (no token) replaced E first
                server.write(b"other", {})
            server.write(b"x", {"objstore_write_token": "someone"})
            server.write(b"y", {"objstore_write_token": "someone-else"})
            return await look(*args)

        store._carried = others_move_on
        server.fault = "after" if applied else "before"
        mode = UpdateVersion(e_tag=base["etag"])
        if applied:
            result = await store.put("counter", b"ours", mode=mode)
            assert (result.e_tag, result.version) == (server.versions[1]["etag"],
                                                      server.versions[1]["id"])  # fmt: skip
            assert server.versions[1]["data"] == b"ours"
        else:
            with pytest.raises(PreconditionFailedError):
                await store.put("counter", b"ours", mode=mode)
            assert b"ours" not in [v["data"] for v in server.versions]
        await store.aclose()
