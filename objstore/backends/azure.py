"""The Azure Blob Storage backend (Blob and ADLS Gen2 accounts, through the Blob REST API).

Data-plane requests go over one aiohttp session per (process, event loop)
(:mod:`objstore.backends._http`), signed here with Shared Key, a SAS token or a bearer token
(:mod:`objstore.backends._azure_auth`), under the core's retry policy only: the Azure SDK spends
1.5-1.9 ms of CPU per small request and stacks its own retries. The SDK is used where it earns
its keep: azure-identity for token credentials, and azure-storage-blob for SAS URLs.

Mappings: ``e_tag`` is the blob's ETag (quoted, as the service sends it), ``version`` its
version id (accounts with versioning). Large writes stage blocks concurrently and commit the
block list in order; nothing is visible before the commit, and uncommitted blocks expire.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import logging
import os
import re
import secrets
import xml.etree.ElementTree as ET
from collections.abc import AsyncGenerator, Awaitable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, ClassVar, NamedTuple
from urllib.parse import SplitResult, quote, unquote, urlencode, urlsplit

import aiohttp
from yarl import URL

from objstore._errors import (
    AlreadyExistsError,
    BucketNotFoundError,
    ChecksumMismatchError,
    ConcurrentModificationError,
    ConfigError,
    InsufficientStorageError,
    InvalidRangeError,
    InvalidRequestError,
    NotFoundError,
    NotSupportedError,
    ObjstoreError,
    PreconditionFailedError,
    ThrottledError,
    UnauthenticatedError,
    error_for_status,
)
from objstore._inline import gather_bounded
from objstore._multipart import MultipartUpload
from objstore._path import Path, listable, prefix_in_url
from objstore._record import replace
from objstore._retry import RetryPolicy
from objstore._store import Capabilities, ObjectStore, lists_version
from objstore._types import (
    ByteRange,
    BytesBody,
    GetOptions,
    GetResponse,
    IncompleteUpload,
    ListResult,
    ObjectMeta,
    ObjectVersion,
    OffsetRange,
    PutOptions,
    PutResult,
    SuffixRange,
    UpdateVersion,
    make_meta,
)
from objstore.backends._azure_auth import SasAuth, SharedKeyAuth, auth_from_config
from objstore.backends._azure_config import (
    AZURE_TABLE,
    check_container,
    parse_azure_url,
    resolve_endpoint,
)
from objstore.backends._checksums import azure_checksum, content_md5
from objstore.backends._client_copy import copy_through_client
from objstore.backends._clock import ServerClock
from objstore.backends._conditions import check_read_conditions, check_served_version, empty_read
from objstore.backends._http import (
    ResponseBody,
    delete_each,
    exchange,
    http_date,
    pages_ahead,
    parse_http_date,
    raise_if_bucket_missing,
    ranged_get,
    read_headers,
    reply_time,
    served_range,
    session_pool,
    with_retry_after,
    xml_text,
)
from objstore.backends._reconcile import (
    Carried,
    copied_if_absent,
    reconciled,
    settled_by,
    source_changed,
    still_there,
    write_token,
)
from objstore.backends._tag_set import parse_tag_set

__all__ = ["AzureStore"]

logger = logging.getLogger("objstore.azure")


class _Request(NamedTuple):
    """A prepared request: what each attempt signs and sends (one object, not a closure)."""

    method: str
    path: str
    key: str | None
    params: Sequence[tuple[str, str]]
    headers: Mapping[str, str] | None
    body: bytes
    ok: tuple[int, ...]
    read: bool
    create_mode: bool
    once: bool
    """Not retried by the policy, so not resent by aiohttp either (``exchange``)."""


MiB = 1024 * 1024
API_VERSION = "2025-01-05"
WRITE_TOKEN = "objstore_write_token"
"""Metadata key of the per-write token that reconciles a retried conditional write."""
BATCH_SIZE = 256
"""Sub-requests per Blob Batch request (the service's limit)."""
DELETE_CONCURRENCY = 8
COPY_POLL_MAX = 2.0
_META_PREFIX = "x-ms-meta-"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ATTRIBUTE_HEADERS = {
    "content_type": ("x-ms-blob-content-type", "Content-Type"),
    "content_encoding": ("x-ms-blob-content-encoding", "Content-Encoding"),
    "content_disposition": ("x-ms-blob-content-disposition", "Content-Disposition"),
    "content_language": ("x-ms-blob-content-language", "Content-Language"),
    "cache_control": ("x-ms-blob-cache-control", "Cache-Control"),
}
_TAG_TEXT = re.compile(r"[A-Za-z0-9 +\-./:=_]*")
"""The characters Azure allows in a tag: S3's but for ``@`` and non-ASCII letters."""
_ERROR_CODE = re.compile(rb"<Code>([^<]*)</Code>")
_ERROR_MESSAGE = re.compile(rb"<Message>([^<\n]*)")


def _error(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    key: str | None,
    *,
    create_mode: bool = False,
) -> ObjstoreError:
    """Translate an Azure error response (the one translation point of this backend)."""
    code = headers.get("x-ms-error-code")
    found = _ERROR_CODE.search(body) if body else None
    if code is None and found is not None:
        code = found.group(1).decode()
    message_match = _ERROR_MESSAGE.search(body) if body else None
    message = message_match.group(1).decode().strip() if message_match else None
    cls = error_for_status(status, create_mode=create_mode)
    if code == "SourceConditionNotMet":  # the source of a copy changed, not its destination
        cls = PreconditionFailedError
    elif code == "BlobAlreadyExists" or (create_mode and code == "ConditionNotMet"):
        cls = AlreadyExistsError
    elif code == "ContainerNotFound":
        cls = BucketNotFoundError
    elif code == "AuthenticationFailed":
        cls = UnauthenticatedError
    elif code == "ServerBusy":
        cls = ThrottledError
    elif code == "MemoryExtentStoreAtSizeLimit":  # Azurite's memory store is full
        cls = InsufficientStorageError
    elif code in ("Md5Mismatch", "Crc64Mismatch"):  # corrupted on the way: send it again
        cls = ChecksumMismatchError
    elif code == "FeatureNotSupported":  # Azurite's 500 for what it lacks: no retry helps
        cls = NotSupportedError
    what = f"{key!r}" if key else "the container"
    if cls is AlreadyExistsError:
        text = f"{what} already exists"
    elif cls is BucketNotFoundError:
        text = "the container does not exist"
    elif cls is NotFoundError:
        text = f"blob {what} not found"
    else:
        text = f"Azure {code or status} on {what}" + (f": {message}" if message else "")
    error = cls(text, path=key, status=status, code=code,
                request_id=headers.get("x-ms-request-id"))  # fmt: skip
    return with_retry_after(error, headers)


def _meta_from_headers(key: str, status: int, headers: Mapping[str, str]) -> ObjectMeta:
    content_range = headers.get("Content-Range", "")
    if "/" in content_range and not content_range.endswith("/*"):
        size = int(content_range.rpartition("/")[2])
    else:
        size = int(headers.get("Content-Length", "0"))
    modified = headers.get("Last-Modified")
    return make_meta(
        key,
        size,
        parse_http_date(modified) if modified else datetime.now(UTC),
        headers.get("ETag"),
        headers.get("x-ms-version-id"),
    )


def _attributes_from_headers(headers: Mapping[str, str]) -> dict[str, str]:
    out = {n: headers[h] for n, (_, h) in _ATTRIBUTE_HEADERS.items() if headers.get(h)}
    for name, value in headers.items():
        if name.lower().startswith(_META_PREFIX):
            short = name[len(_META_PREFIX) :]
            if short.lower() != WRITE_TOKEN:
                out[short] = value
    return out


def _blob_download(method: str, key: str | None, params: Sequence[tuple[str, str]]) -> bool:
    """Whether a request reads a blob's bytes (not a listing or a block list)."""
    return method == "GET" and key is not None and not any(n in _OPERATIONS for n, _ in params)


_OPERATIONS = frozenset(("comp", "restype"))


def _quoted(e_tag: str | None) -> str | None:
    if e_tag is None or e_tag.startswith(('"', "W/")):
        return e_tag
    return f'"{e_tag}"'


_BLOB_FIELDS = tuple(
    re.compile(pattern)
    for pattern in (
        rb"<Blob><Name>([^<]*)</Name>",
        rb"<Last-Modified>([^<]*)</Last-Modified>",
        rb"<Etag>([^<]*)</Etag>",
        rb"<Content-Length>([^<]*)</Content-Length>",
    )
)
_PREFIXES = re.compile(rb"<BlobPrefix><Name>([^<]*)</Name></BlobPrefix>")
_NEXT_MARKER = re.compile(rb"<NextMarker>([^<]*)</NextMarker>")
_NO_MARKER = re.compile(rb"<NextMarker\s*/>")


def _parse_listing(body: bytes) -> tuple[list[ObjectMeta], list[str], str | None]:
    """Blobs (skipping ADLS directory markers), prefixes and the next marker of a page.

    Regular-expression passes zipped together; a page they do not fully explain (CDATA,
    encoded names, directory markers, another element order) is parsed with ElementTree.
    """
    unusual = b"<![CDATA[" in body or b'Encoded="true"' in body or b"hdi_isfolder" in body
    if not unusual:
        names, modified, e_tags, sizes = (pattern.findall(body) for pattern in _BLOB_FIELDS)
        prefixes = _PREFIXES.findall(body)
        if (len(names) == len(modified) == len(e_tags) == len(sizes) == body.count(b"<Blob>")
                and len(prefixes) == body.count(b"<BlobPrefix>")):  # fmt: skip
            marker = _NEXT_MARKER.search(body)
            entries = [
                (xml_text(n), int(s), parse_http_date(m.decode()), _quoted(e.decode()))
                for n, m, e, s in zip(names, modified, e_tags, sizes, strict=True)
            ]
            return (
                _valid_metas(entries),
                [xml_text(p) for p in prefixes],
                xml_text(marker.group(1)) if marker and marker.group(1) else None,
            )
    return _parse_listing_tree(body)


def _next_marker(body: bytes) -> str | None:
    """The marker of the page after this one (``None`` on the last), found before the page is
    parsed; ElementTree reads a marker the regular expression does not explain."""
    found = _NEXT_MARKER.search(body)
    if found is not None:
        return xml_text(found.group(1)) or None
    if _NO_MARKER.search(body) is not None or b"<NextMarker" not in body:
        return None  # the last page: <NextMarker/> (Azurite) or no element
    return ET.fromstring(body).findtext("NextMarker") or None


def _name_of(element: ET.Element) -> str:
    """The name of a listed ``Blob`` or ``BlobPrefix`` (percent-encoded when ``Encoded``)."""
    node = element.find("Name")
    text = (node.text or "") if node is not None else ""
    return unquote(text) if node is not None and node.get("Encoded") == "true" else text


def _is_folder(blob: ET.Element) -> bool:
    """Whether a listed blob is an ADLS Gen2 directory, not an object."""
    return (blob.findtext("Metadata/hdi_isfolder") or "").lower() == "true"


def _parse_versions(body: bytes) -> list[ObjectVersion]:
    """The blob versions of an ``include=versions`` page: the current one says so; a blob
    without a version id (versioning off, Azurite) is as it is now."""
    out = []
    for blob in ET.fromstring(body).iterfind("Blobs/Blob"):
        props, name = blob.find("Properties"), _name_of(blob)
        if props is None or _is_folder(blob):
            continue
        if not listable(name, logger):
            continue
        version = blob.findtext("VersionId") or None
        out.append(
            ObjectVersion(
                location=name,
                version=version,
                last_modified=parse_http_date(props.findtext("Last-Modified") or ""),
                size=int(props.findtext("Content-Length") or 0),
                e_tag=_quoted(props.findtext("Etag")),
                is_latest=version is None or blob.findtext("IsCurrentVersion") == "true",
            )
        )
    return out


def _version_tokens(body: bytes, name: str) -> list[tuple[str, str | None, str | None]]:
    """The versions of blob ``name`` on an ``include=metadata,versions`` page: each one's
    version id, ETag and write token."""
    out = []
    for blob in ET.fromstring(body).iterfind("Blobs/Blob"):
        version = blob.findtext("VersionId")
        if version and _name_of(blob) == name:
            e_tag = _quoted(blob.findtext("Properties/Etag"))
            out.append((version, e_tag, blob.findtext(f"Metadata/{WRITE_TOKEN}")))
    return out


def _parse_listing_tree(body: bytes) -> tuple[list[ObjectMeta], list[str], str | None]:
    root = ET.fromstring(body)
    entries = []
    for blob in root.iterfind("Blobs/Blob"):
        if _is_folder(blob):
            continue
        props = blob.find("Properties")
        if props is None:
            continue
        entries.append((
            _name_of(blob),
            int(props.findtext("Content-Length") or 0),
            parse_http_date(props.findtext("Last-Modified") or ""),
            _quoted(props.findtext("Etag")),
        ))  # fmt: skip
    prefixes = [_name_of(p) for p in root.iterfind("Blobs/BlobPrefix")]
    marker = root.findtext("NextMarker") or None
    return _valid_metas(entries), prefixes, marker


def _valid_metas(entries: Sequence[tuple[str, int, datetime, str | None]]) -> list[ObjectMeta]:
    out = []
    for name, size, modified, e_tag in entries:
        if not listable(name, logger):
            continue
        out.append(make_meta(name, size, modified, e_tag, None))
    return out


class AzureStore(ObjectStore):
    """A container (and prefix) of Azure Blob Storage, ADLS Gen2 or Azurite.

    ``AzureStore("container", {"azure_storage_account_name": ...})``, or through
    ``objstore.from_url`` with ``az://container/prefix``, ``abfss://fs@account.dfs.core.
    windows.net/dir``, ``https://account.blob.core.windows.net/container`` and the other
    forms. Options: the README's Azure table.
    """

    backend: ClassVar[str] = "azure"
    config_table = AZURE_TABLE
    content_keys: ClassVar[frozenset[str]] = frozenset({"azure_storage_encryption_key"})
    capabilities: Capabilities = Capabilities(
        versions=True, sign=True, incomplete_uploads=True, text_metadata=False
    )
    """Signing needs the account key (``azure_storage_account_key``)."""
    single_put_limit: ClassVar[int] = 8 * MiB
    part_size: ClassVar[int] = 8 * MiB
    part_concurrency: ClassVar[int] = 6
    max_parts: ClassVar[int | None] = 50_000
    max_part_size: ClassVar[int | None] = 4000 * MiB
    delete_batch: ClassVar[int] = BATCH_SIZE
    list_page_size: int | None = None
    """``maxresults`` of listings; ``None`` takes the service's page (5,000)."""

    def __init__(
        self,
        container: str | None = None,
        options: Mapping[str, Any] | None = None,
        *,
        prefix: str = "",
        url_values: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        values = dict(url_values or {})
        if container:
            values.setdefault("azure_container_name", container)
        env = os.environ if environ is None else environ
        config = AZURE_TABLE.resolve({**(options or {}), **kwargs}, values, env)
        container = config.get("azure_container_name")
        if not container:
            raise ConfigError(
                "the Azure store needs a container: az://<container> or 'azure_container_name'"
            )
        self._container = check_container(str(container), config)
        self._endpoint = resolve_endpoint(config, env)
        self._auth = auth_from_config(config, self._endpoint, env)
        self._retry = RetryPolicy.from_config(config)
        self._content_type = str(config.get("default_content_type") or "application/octet-stream")
        self._base_headers = {"x-ms-version": API_VERSION}
        if config.get("user_agent"):
            self._base_headers["User-Agent"] = str(config["user_agent"])
        self._encryption = _encryption_headers(config.get("azure_storage_encryption_key"))
        self._tagging = not config["azure_disable_tagging"]
        self._origin, self._root_path = _split_endpoint(self._endpoint.url)
        self._container_path = f"{self._root_path}/{quote(self._container, safe='')}"
        self._http = session_pool(config)
        self._date = (0, "")
        self._clock = ServerClock()
        url = (
            f"az://{self._container}/{prefix_in_url(prefix)}"
            if prefix
            else f"az://{self._container}"
        )
        super().__init__(url=url, config=config, prefix=prefix)
        if not self._tagging:
            self._switch_off({"tags": "azure_disable_tagging"})

    @classmethod
    def _from_url(
        cls, url: SplitResult, options: Mapping[str, Any] | None, environ: Mapping[str, str]
    ) -> AzureStore:
        container, prefix, values = parse_azure_url(url)
        return cls(container, options, prefix=prefix, url_values=values, environ=environ)

    @property
    def credential_source(self) -> str:
        """Which credential source authorizes this store's requests (no secrets)."""
        return self._auth.description

    @property
    def account(self) -> str:
        """The storage account."""
        return self._endpoint.account

    async def aclose(self) -> None:
        """Close this event loop's connections (the store reopens them when used again)."""
        await self._http.close()
        closer = getattr(self._auth, "close", None)
        if closer is not None:
            await closer()

    # ---- the HTTP layer -------------------------------------------------------------------

    def _blob_path(self, key: str) -> str:
        return f"{self._container_path}/{quote(key, safe='/~')}"

    def _now(self, at: float | None = None) -> str:
        """The ``x-ms-date`` of a request signed ``at`` (by default now, on the server's clock)."""
        second = int(self._clock.now() if at is None else at)
        if self._date[0] != second:
            self._date = (second, http_date(datetime.fromtimestamp(second, UTC)))
        return self._date[1]

    async def _signed(
        self,
        method: str,
        path: str,
        params: Sequence[tuple[str, str]],
        headers: Mapping[str, str] | None,
        body_length: int,
        *,
        at: float,
    ) -> tuple[URL, dict[str, str]]:
        """The URL and headers of a request dated ``at``, authorized."""
        request_headers = {**self._base_headers, "x-ms-date": self._now(at), **(headers or {})}
        if method in ("PUT", "POST"):
            request_headers.setdefault("Content-Type", "application/octet-stream")
            request_headers["Content-Length"] = str(body_length)
        await self._auth.authorize(method, path, params, request_headers)
        query = "&".join(
            [f"{quote(n, safe='')}={quote(v, safe='')}" for n, v in params]
            + [f"{n}={v}" for n, v in self._auth.query]
        )
        url = f"{self._origin}{path}?{query}" if query else f"{self._origin}{path}"
        return URL(url, encoded=True), request_headers

    async def _send(
        self,
        method: str,
        path: str,
        key: str | None,
        *,
        params: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        ok: tuple[int, ...] = (200,),
        read: bool = True,
        idempotent: bool = True,
        create_mode: bool = False,
    ) -> tuple[aiohttp.ClientResponse, bytes]:
        """Send a request; return the response and (when ``read``) its body."""

        request = _Request(
            method, path, key, params, headers, body, ok, read, create_mode, not idempotent
        )
        return await self._retry.call(self._attempt, request, idempotent=idempotent)

    async def _attempt(self, request: _Request) -> tuple[aiohttp.ClientResponse, bytes]:
        """One attempt of :meth:`_send`, signed afresh; sent once more, with the server's time,
        when a refusal came from this machine's clock (``backends/_clock.py``: Shared Key
        requests are refused 15 minutes off)."""
        method, path, key, params, headers, body, ok, read, create_mode, once = request
        for _ in range(2):
            signed_at = self._clock.now()
            url, request_headers = await self._signed(
                method, path, params, headers, len(body), at=signed_at
            )
            response, data = await exchange(
                self._http, method, url, headers=request_headers, body=body, ok=ok,
                read=read, key=key, service="Azure", logger=logger, once=once,
                checksum=azure_checksum if _blob_download(method, key, params) else None,
            )  # fmt: skip
            if response.status in ok:
                return response, data
            if response.status != 403 or not self._clock.corrected(
                signed_at, response.headers.get("Date"), "Azure", refused_for_skew=False
            ):
                break
        raise _error(response.status, data, response.headers, key, create_mode=create_mode)

    # ---- reads ----------------------------------------------------------------------------

    async def _properties(self, key: str, version: str | None = None) -> aiohttp.ClientResponse:
        params = [("versionid", version)] if version else []
        response, _ = await self._send(
            "HEAD", self._blob_path(key), key, params=params, headers=self._encryption
        )
        return response

    async def _head(self, key: Path) -> ObjectMeta:
        response = await self._properties(key)
        return _meta_from_headers(key, response.status, response.headers)

    async def _get_tags(self, key: Path, version: str | None = None) -> dict[str, str]:
        if not self._tagging:
            raise NotSupportedError("tagging is turned off by azure_disable_tagging", path=key)
        params = [("comp", "tags"), *([("versionid", version)] if version else [])]
        _, body = await self._send("GET", self._blob_path(key), key, params=params)
        return parse_tag_set(body)

    async def _get(self, key: Path, options: GetOptions) -> GetResponse:
        response, _ = await self._fetch(key, options, buffered=False)
        return response

    async def _get_buffered(self, key: Path, options: GetOptions) -> tuple[GetResponse, bytes]:
        return await self._fetch(key, options, buffered=True)

    async def _get_bytes(self, key: Path) -> bytes:
        _, data = await self._send("GET", self._blob_path(key), key, headers=self._encryption)
        return data

    async def _described(self, key: Path, options: GetOptions) -> GetResponse:
        """The object's metadata and attributes, conditions checked by the service."""
        params = [("versionid", options.version)] if options.version else []
        headers = {**read_headers(GetOptions(
            if_match=options.if_match, if_none_match=options.if_none_match,
            if_modified_since=options.if_modified_since,
            if_unmodified_since=options.if_unmodified_since,
        )), **self._encryption}  # fmt: skip
        response, _ = await self._send(
            "HEAD", self._blob_path(key), key, params=params, headers=headers
        )
        meta = _meta_from_headers(key, response.status, response.headers)
        attributes = _attributes_from_headers(response.headers)
        return GetResponse(meta=meta, range=(0, meta.size), attributes=attributes, body=None)

    async def _fetch(
        self, key: Path, options: GetOptions, *, buffered: bool
    ) -> tuple[GetResponse, bytes]:
        sent = _expressible(options)
        try:
            result = await self._fetch_checked(key, sent, buffered=buffered)
        except PreconditionFailedError:
            if sent.if_match is not None:  # Azure answers 412, not 404, for a missing blob
                await self._properties(key, options.version)
            raise
        response = result[0]
        try:
            if sent is not options:
                check_read_conditions(response.meta, options)
        except ObjstoreError:
            if response.body is not None:
                await response.body.aclose()
            raise
        if options.version is not None:
            await check_served_version(key, options.version, response)
        return result

    async def _get_range_bytes(self, key: Path, request: ByteRange | OffsetRange) -> bytes:
        """A ranged GET whose reply is not parsed into metadata."""

        def send(wanted: str) -> Awaitable[tuple[aiohttp.ClientResponse, bytes]]:
            return self._send(
                "GET", self._blob_path(key), key, headers={"Range": wanted, **self._encryption},
                ok=(200, 206),
            )  # fmt: skip

        data = await ranged_get(send, request)
        return data if data is not None else await super()._get_range_bytes(key, request)

    async def _fetch_checked(
        self, key: Path, options: GetOptions, *, buffered: bool
    ) -> tuple[GetResponse, bytes]:
        request = options.range
        if options.head or (isinstance(request, ByteRange) and request.end == request.start):
            described = await self._described(key, options)
            if options.head:
                return described, b""
            assert isinstance(request, ByteRange)
            return empty_read(key, described, request.start), b""
        if isinstance(request, SuffixRange):
            return await self._fetch_suffix(key, options, request, buffered=buffered)
        params = [("versionid", options.version)] if options.version else []
        try:
            response, data = await self._send(
                "GET", self._blob_path(key), key, params=params,
                headers={**read_headers(options), **self._encryption}, ok=(200, 206),
                read=buffered,
            )  # fmt: skip
        except InvalidRangeError:
            described = await self._described(key, replace(options, range=None))
            start = request.offset if isinstance(request, OffsetRange) else 0
            if isinstance(request, ByteRange):
                start = request.start
            return empty_read(key, described, start), b""
        meta = _meta_from_headers(key, response.status, response.headers)
        served = served_range(response.headers, meta.size)
        if served[0] >= meta.size > 0:  # Azurite answers 206 "bytes 100-99/100", Azure 416
            response.close()
            raise InvalidRangeError(
                f"range starts at {served[0]}, past the end of a {meta.size}-byte object", path=key
            )
        result = GetResponse(
            meta=meta,
            range=served,
            attributes=_attributes_from_headers(response.headers),
            body=(
                BytesBody(data) if buffered else ResponseBody(response, "Azure", self._http.timeout)
            ),
            checksum=None
            if buffered or response.status != 200
            else azure_checksum(response.headers),
        )
        return result, data

    async def _fetch_suffix(
        self, key: Path, options: GetOptions, request: SuffixRange, *, buffered: bool
    ) -> tuple[GetResponse, bytes]:
        """Azure has no suffix ranges: find the size, then read from that offset, pinned to
        the ETag it had (a blob replaced in between is looked at again)."""
        for _ in range(3):
            described = await self._described(key, options)
            size = described.meta.size
            if size == 0:
                return empty_read(key, described, 0), b""
            pinned = replace(
                options,
                range=OffsetRange(max(0, size - request.suffix)),
                if_match=options.if_match or described.meta.e_tag,
            )
            try:
                return await self._fetch_checked(key, pinned, buffered=buffered)
            except PreconditionFailedError:
                if options.if_match is not None:
                    raise
        raise ConcurrentModificationError(
            f"{key!r} kept changing while its last {request.suffix} bytes were read", path=key
        )

    # ---- listings -------------------------------------------------------------------------

    def _pages(
        self, prefix: str, delimiter: bool, include: str = "metadata", *, raw: bool = False
    ) -> AsyncGenerator[bytes, None]:
        """The bodies of a listing's pages, each next one requested ahead: the blobs under
        ``prefix`` (with ``raw``, the blobs whose names start with it)."""
        params = [("restype", "container"), ("comp", "list"), ("include", include)]
        if prefix:
            params.append(("prefix", prefix if raw else prefix + "/"))
        if delimiter:
            params.append(("delimiter", "/"))
        if self.list_page_size:
            params.append(("maxresults", str(self.list_page_size)))

        async def fetch(marker: str | None) -> bytes:
            extra = [("marker", marker)] if marker else []
            _, body = await self._send("GET", self._container_path, None, params=params + extra)
            return body

        return pages_ahead(fetch, _next_marker)

    async def _list(
        self, prefix: Path, offset: Path | None
    ) -> AsyncGenerator[list[ObjectMeta], None]:
        async with contextlib.aclosing(self._pages(prefix, False)) as pages:
            async for body in pages:
                metas, _, _ = _parse_listing(body)
                if offset is not None:
                    metas = [m for m in metas if m.location > offset]
                if metas:
                    yield metas

    def _list_versions(self, prefix: Path) -> AsyncGenerator[list[ObjectVersion], None]:
        return self._version_pages(f"{prefix}/" if prefix else "")

    async def _version_pages(self, prefix: str) -> AsyncGenerator[list[ObjectVersion], None]:
        """The versions of the blobs whose names start with ``prefix``."""
        pages = self._pages(prefix, False, "metadata,versions", raw=True)
        async with contextlib.aclosing(pages):
            async for body in pages:
                versions = _parse_versions(body)
                if versions:
                    yield versions

    async def _delete_version(self, key: Path, version: str) -> None:
        """Delete Blob of one version, once the blob's version listing shows it: Azurite
        keeps no versions and would delete the current blob."""
        if await lists_version(self._version_pages(key), key, version):
            await self._delete_one(key, version)

    def _newest_first(self, versions: list[ObjectVersion]) -> Iterable[ObjectVersion]:
        # version ids are the times they were made (ISO 8601, 7 decimals): they sort as text
        return sorted(versions, key=lambda v: (v.is_latest, v.version or ""), reverse=True)

    async def _list_with_delimiter(self, prefix: Path) -> ListResult:
        prefixes: list[str] = []
        objects: list[ObjectMeta] = []
        async with contextlib.aclosing(self._pages(prefix, True)) as pages:
            async for body in pages:
                metas, found, _ = _parse_listing(body)
                objects.extend(metas)
                prefixes.extend(p.rstrip("/") for p in found)
        return ListResult(common_prefixes=list(dict.fromkeys(prefixes)), objects=objects)

    # ---- uploads left by writers that died -------------------------------------------------

    async def _list_incomplete(
        self, prefix: Path
    ) -> AsyncGenerator[tuple[list[IncompleteUpload], float], None]:
        """Uncommitted blobs: listed (``include=uncommittedblobs``) with no content, and not
        found by a HEAD. Blocks staged on a blob that exists are not listable; the blob's
        next commit (or the service, after a week) discards them."""
        params = [("restype", "container"), ("comp", "list"), ("include", "uncommittedblobs")]
        if prefix:
            params.append(("prefix", prefix + "/"))
        marker: str | None = None
        while True:
            extra = [("marker", marker)] if marker else []
            response, body = await self._send(
                "GET", self._container_path, None, params=params + extra
            )
            metas, _, marker = _parse_listing(body)
            empty = [m for m in metas if m.size == 0]
            found = await gather_bounded([self._uncommitted(m.location) for m in empty], 8)
            uploads = [
                IncompleteUpload(location=m.location, upload_id=m.location,
                                 initiated=m.last_modified)
                for m, uncommitted in zip(empty, found, strict=True) if uncommitted
            ]  # fmt: skip
            yield uploads, reply_time(response.headers, self._clock.now())
            if not marker:
                return

    async def _uncommitted(self, key: str) -> bool:
        """Whether a listed blob has no committed content (a HEAD does not find it)."""
        try:
            await self._properties(key)
        except NotFoundError:
            return True
        return False

    async def _discard_incomplete(self, upload: IncompleteUpload) -> bool:
        # a blob committed since it was listed was modified since: the condition spares it
        # (an uncommitted blob counts as absent, so no ETag condition can name it)
        key = upload.location
        response, _ = await self._send(
            "DELETE", self._blob_path(key), key,
            headers={"If-Unmodified-Since": http_date(upload.initiated)}, ok=(202, 404, 412),
        )  # fmt: skip
        return response.status == 202

    # ---- writes ---------------------------------------------------------------------------

    def _write_headers(self, key: str, options: PutOptions, token: str | None) -> dict[str, str]:
        """The content settings, metadata, tags and encryption of a write."""
        headers = {"x-ms-blob-content-type": self._content_type, **self._encryption}
        for name, value in options.attributes.items():
            pair = _ATTRIBUTE_HEADERS.get(name)
            if pair is not None:
                headers[pair[0]] = value
                continue
            if not _IDENTIFIER.fullmatch(name):
                raise InvalidRequestError(
                    f"Azure metadata keys must be C# identifiers (letters, digits, '_', not "
                    f"starting with a digit): bad key {name!r}",
                    path=key,
                )
            if not value.isascii():
                raise InvalidRequestError(
                    f"Azure metadata values must be ASCII: key {name!r}", path=key
                )
            headers[_META_PREFIX + name] = value
        if token is not None:
            headers[_META_PREFIX + WRITE_TOKEN] = token
        if options.tags and self._tagging:
            _check_tags(key, options.tags)
            headers["x-ms-tags"] = urlencode(options.tags, quote_via=quote)
        return headers

    def _token(self, key: str, mode: Any) -> str | None:
        """A conditional write's token; an update's names the ETag it must replace."""
        if mode == "overwrite":
            return None
        return write_token(key, _quoted(mode.e_tag) if isinstance(mode, UpdateVersion) else None)

    def _mode_headers(self, key: str, mode: Any) -> dict[str, str]:
        if mode == "overwrite":
            return {}
        if mode == "create":
            return {"If-None-Match": "*"}
        assert isinstance(mode, UpdateVersion)
        if mode.e_tag is None:
            raise InvalidRequestError(
                "an Azure update needs the blob's e_tag (a version id cannot be a write condition)",
                path=key,
            )
        return {"If-Match": _quoted(mode.e_tag) or ""}

    async def _put(self, key: Path, data: bytes, options: PutOptions) -> PutResult:
        conditional = options.mode != "overwrite"
        token = self._token(key, options.mode)
        headers = {
            "x-ms-blob-type": "BlockBlob",
            **self._write_headers(key, options, token),
            **self._mode_headers(key, options.mode),
            "Content-MD5": await content_md5(data),  # Azure refuses a body that does not match
        }

        async def once() -> PutResult:
            response, _ = await self._send(
                "PUT", self._blob_path(key), key, headers=headers, body=data, ok=(201,),
                idempotent=not conditional, create_mode=options.mode == "create",
            )  # fmt: skip
            return _put_result(response.headers)

        history = settled_by(partial(self._successor, key), headers.get("If-Match"), token)
        return await reconciled(self._retry, once, partial(self._carried, key), token, history)

    async def _carried(self, key: str) -> Carried | None:
        """The write token the blob carries and its identity (``None``: cannot tell)."""
        try:
            response = await self._properties(key)
        except ObjstoreError:  # cannot tell: the caller raises the write's own error
            return None
        return response.headers.get(_META_PREFIX + WRITE_TOKEN), _put_result(response.headers)

    async def _successor(self, key: str, replaces: str) -> Carried | None:
        """The write that replaced the blob's state of ETag ``replaces``: the version after
        the one with that ETag, in the blob's version listing. ``None`` unless the listing
        holds that state (blob versioning on; without it a state made and replaced since
        would be missed)."""
        history: list[tuple[str, str | None, str | None]] = []  # (version id, ETag, token)
        pages = self._pages(key, False, "metadata,versions", raw=True)
        async with contextlib.aclosing(pages):
            async for body in pages:
                history += _version_tokens(body, key)
        history.sort()  # version ids are the times they were made
        for (_, e_tag, _), (version, after, token) in itertools.pairwise(history):
            if e_tag == replaces:
                return token, PutResult(e_tag=after, version=version)
        return None

    async def _delete(self, keys: Sequence[Path]) -> dict[Path, ObjstoreError]:
        if len(keys) == 1 or isinstance(self._auth, SasAuth):
            return await self._delete_each(keys)
        failures: dict[Path, ObjstoreError] = {}
        batches = [keys[i : i + BATCH_SIZE] for i in range(0, len(keys), BATCH_SIZE)]

        async def run(batch: Sequence[Path]) -> None:
            try:
                failures.update(await self._delete_batch(batch))
            except (InvalidRequestError, NotSupportedError) as exc:
                # a service without Blob Batch (Azure Stack, old emulators) or a reply we
                # cannot read: delete one by one (deleting twice is harmless)
                logger.debug("Blob Batch refused (%s): deleting one by one", exc.code or exc)
                failures.update(await self._delete_each(batch))

        await gather_bounded([run(b) for b in batches], DELETE_CONCURRENCY)
        return failures

    async def _delete_each(self, keys: Sequence[Path]) -> dict[Path, ObjstoreError]:
        return await delete_each(keys, self._delete_one, DELETE_CONCURRENCY)

    async def _delete_one(self, key: Path, version: str | None = None) -> None:
        """Delete one blob (or its ``version``); a missing blob is fine, a missing container
        is not (a typo in its name must not pass for a successful delete)."""
        params = [("versionid", version)] if version is not None else []
        response, data = await self._send(
            "DELETE", self._blob_path(key), key, params=params, ok=(202, 404)
        )
        raise_if_bucket_missing(response, data, key, _error)

    async def _delete_batch(self, keys: Sequence[Path]) -> dict[Path, ObjstoreError]:
        """Delete up to 256 blobs in one Blob Batch request; report each failure.

        Each deletion inside is signed with its own date. When the batch's own request had
        this machine's clock corrected (``_attempt``), the deletions it carried are refused
        (403) with the old date: the batch is built and sent once more.
        """
        for _ in range(2):
            offset = self._clock.offset
            statuses = await self._send_batch(keys)
            if not self._clock.moved_since(offset) or all(s != 403 for s, _, _ in statuses):
                break
        failures: dict[Path, ObjstoreError] = {}
        for key, (status, code, headers) in zip(keys, statuses, strict=True):
            if status == 202 or (status == 404 and code != "ContainerNotFound"):
                continue  # deleted, or already gone
            error_body = f"<Code>{code}</Code>".encode() if code else b""
            failures[key] = _error(status, error_body, headers, key)
        return failures

    async def _send_batch(
        self, keys: Sequence[Path]
    ) -> list[tuple[int, str | None, dict[str, str]]]:
        """Send one Blob Batch of deletions; return each one's status, code and headers."""
        boundary = f"batch_{secrets.token_hex(16)}"
        parts = []
        for index, key in enumerate(keys):
            path = self._blob_path(key)
            sub_headers = {"x-ms-date": self._now(), "Content-Length": "0"}
            await self._auth.authorize("DELETE", path, (), sub_headers)
            lines = [
                f"--{boundary}",
                "Content-Type: application/http",
                "Content-Transfer-Encoding: binary",
                f"Content-ID: {index}",
                "",
                f"DELETE {path} HTTP/1.1",
                *(f"{name}: {value}" for name, value in sub_headers.items()),
                "",
                "",
            ]
            parts.append("\r\n".join(lines))
        body = ("".join(parts) + f"--{boundary}--\r\n").encode()
        _, reply = await self._send(
            "POST", self._container_path, None,
            params=[("restype", "container"), ("comp", "batch")],
            headers={"Content-Type": f"multipart/mixed; boundary={boundary}"},
            body=body, ok=(202,),
        )  # fmt: skip
        return _batch_statuses(reply, len(keys))

    async def _copy(
        self, src: Path, dst: Path, overwrite: bool, version: str | None = None
    ) -> None:
        if self._encryption:  # Copy Blob takes no customer-provided key: it cannot read src
            await self._copy_with_key(src, dst, overwrite, version)
            return
        source = f"{self._origin}{self._blob_path(src)}"
        query = [*self._auth.query]
        headers: dict[str, str] = {}
        token: str | None = None
        if not overwrite:
            # a copy that must not overwrite carries a write token of its own, so that a
            # retry that finds the destination can tell this copy from another writer's
            token = write_token(dst)
            headers.update(await self._copy_headers(src, version, token))
        elif version is not None:
            # Azurite keeps no versions and would copy the current blob: look it up first
            await self._get(src, GetOptions(head=True, version=version))
        if version is not None:
            query.append(("versionid", quote(version, safe="")))
        if query:
            source += "?" + "&".join(f"{n}={v}" for n, v in query)
        headers["x-ms-copy-source"] = source
        try:
            tags = await self._tags_to_copy(src, version)  # Copy Blob leaves them behind
            if tags:
                headers["x-ms-tags"] = urlencode(tags, quote_via=quote)
            send = partial(
                self._send, "PUT", self._blob_path(dst), dst, headers=headers, ok=(202,),
                idempotent=overwrite, create_mode=not overwrite,
            )  # fmt: skip
            response, _ = await (
                send()
                if token is None
                else copied_if_absent(self._retry, send, partial(self._copy_carried, dst), token)
            )
        except BucketNotFoundError:
            raise
        except NotFoundError as exc:
            raise NotFoundError(f"blob {src!r} not found", path=src, status=exc.status,
                                code=exc.code) from None  # fmt: skip
        except (PreconditionFailedError, AlreadyExistsError) as exc:
            # the source changed since its metadata was read: Azure says SourceConditionNotMet;
            # Azurite says ConditionNotMet, as if the destination existed, so that is checked
            if exc.code == "SourceConditionNotMet" or (
                exc.code == "ConditionNotMet" and not await still_there(partial(self._head, dst))
            ):
                raise source_changed(src, exc) from None
            raise
        status = response.headers.get("x-ms-copy-status", "success")
        copy_id = response.headers.get("x-ms-copy-id")
        delay = 0.05
        while status == "pending":
            await asyncio.sleep(delay)
            delay = min(delay * 2, COPY_POLL_MAX)
            props = await self._properties(dst)
            if copy_id and props.headers.get("x-ms-copy-id") not in (None, copy_id):
                raise PreconditionFailedError(
                    f"{dst!r} was replaced while it was being copied", path=dst
                )
            status = props.headers.get("x-ms-copy-status", "success")
        if status != "success":
            raise InvalidRequestError(f"copy of {src!r} to {dst!r} ended as {status!r}", path=dst)

    async def _copy_with_key(
        self, src: Path, dst: Path, overwrite: bool, version: str | None
    ) -> None:
        """Copy a blob of a store with a customer-provided key through the client: Copy Blob
        takes no key, so the service could not decrypt the source (Azure answers 409 to a
        request without the key of a blob written with one)."""
        try:
            await copy_through_client(self, src, dst, create=not overwrite, version=version)
        except BucketNotFoundError:
            raise
        except NotFoundError as exc:  # the source's: a write makes what it writes
            raise NotFoundError(f"blob {src!r} not found", path=src, status=exc.status,
                                code=exc.code) from None  # fmt: skip

    async def _copy_headers(self, src: Path, version: str | None, token: str) -> dict[str, str]:
        """The headers that make a copy of ``src`` carry ``token``: the source's metadata
        with the token in place of its own (Copy Blob takes metadata given with it instead of
        the source's), pinned to the source's ETag so that they belong together."""
        source = await self._get(src, GetOptions(head=True, version=version))
        headers = {
            _META_PREFIX + name: value
            for name, value in source.attributes.items()
            if name not in _ATTRIBUTE_HEADERS
        }
        headers[_META_PREFIX + WRITE_TOKEN] = token
        headers["If-None-Match"] = "*"
        if source.meta.e_tag:
            headers["x-ms-source-if-match"] = _quoted(source.meta.e_tag) or ""
        return headers

    async def _copy_carried(
        self, dst: Path
    ) -> tuple[str | None, tuple[aiohttp.ClientResponse, bytes]] | None:
        """The write token ``dst`` carries, and its properties as a copy's reply (``None``:
        cannot tell)."""
        try:
            response = await self._properties(dst)
        except ObjstoreError:
            return None
        return response.headers.get(_META_PREFIX + WRITE_TOKEN), (response, b"")

    async def _create_multipart(self, key: Path, options: PutOptions) -> MultipartUpload:
        token = self._token(key, options.mode)
        headers = {
            **self._write_headers(key, options, token),
            **self._mode_headers(key, options.mode),
        }
        return _BlockUpload(self, key, headers, token, options.mode == "create")

    # ---- signed URLs ------------------------------------------------------------------------

    async def _sign(self, key: Path, method: str, expires_in: int) -> str:
        if not isinstance(self._auth, SharedKeyAuth):
            raise NotSupportedError(
                "Azure SAS URLs need the account key ('azure_storage_account_key'); this store "
                f"uses {self._auth.description}",
                path=key,
                operation="sign",
            )
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        permissions = {
            "GET": BlobSasPermissions(read=True),
            "HEAD": BlobSasPermissions(read=True),
            "PUT": BlobSasPermissions(create=True, write=True),
            "DELETE": BlobSasPermissions(delete=True),
        }[method]
        token = generate_blob_sas(
            account_name=self._endpoint.account,
            container_name=self._container,
            blob_name=key,
            account_key=self._auth.account_key,
            permission=permissions,
            expiry=datetime.fromtimestamp(self._clock.now() + expires_in, UTC),
            protocol="https" if self._origin.startswith("https") else "https,http",
        )
        return f"{self._origin}{self._blob_path(key)}?{token}"


def _split_endpoint(url: str) -> tuple[str, str]:
    """``(origin, path)`` of an account URL: ``("http://127.0.0.1:10000", "/devstoreaccount1")``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")


def _encryption_headers(key: Any) -> dict[str, str]:
    """The customer-provided-key headers of ``azure_storage_encryption_key`` (base64)."""
    if not key:
        return {}
    text = key.reveal()
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise ConfigError("azure_storage_encryption_key is not valid base64") from None
    if len(raw) != 32:
        raise ConfigError("azure_storage_encryption_key must be a 256-bit key (32 bytes, base64)")
    return {
        "x-ms-encryption-key": text,
        "x-ms-encryption-key-sha256": base64.b64encode(hashlib.sha256(raw).digest()).decode(),
        "x-ms-encryption-algorithm": "AES256",
    }


def _put_result(headers: Mapping[str, str]) -> PutResult:
    return PutResult(e_tag=headers.get("ETag"), version=headers.get("x-ms-version-id"))


_BATCH_STATUS = re.compile(rb"HTTP/1\.1 (\d{3})[^\r\n]*\r?\n((?:[^\r\n]+\r?\n)*)")


def _expressible(options: GetOptions) -> GetOptions:
    """``options`` without the ETag conditions Azure cannot take, which the reply is then
    checked against here: a list of ETags (Azure takes one; it refused a list in
    ``If-Match`` and ignored one in ``If-None-Match``) and ``If-None-Match: *`` on a read
    (refused as unsatisfiable where HTTP answers 304 for an object that exists)."""
    drop_match = options.if_match is not None and "," in options.if_match
    drop_none = options.if_none_match is not None and (
        "," in options.if_none_match or options.if_none_match.strip() == "*"
    )
    if not (drop_match or drop_none):
        return options
    return replace(
        options,
        if_match=None if drop_match else options.if_match,
        if_none_match=None if drop_none else options.if_none_match,
    )


def _check_tags(key: str, tags: Mapping[str, str]) -> None:
    for name, value in tags.items():
        if not (_TAG_TEXT.fullmatch(name) and _TAG_TEXT.fullmatch(value)):
            raise InvalidRequestError(
                f"Azure tags take ASCII letters, digits, spaces and + - . / : = _ only: "
                f"bad tag {name!r}",
                path=key,
            )


def _batch_statuses(reply: bytes, count: int) -> list[tuple[int, str | None, dict[str, str]]]:
    """Each sub-response's status, error code and headers, in request order.

    Raises:
        InvalidRequestError: the reply does not hold one response per sub-request.
    """
    found = []
    for match in _BATCH_STATUS.finditer(reply):
        headers: dict[str, str] = {}
        for line in match.group(2).decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            headers[name.strip()] = value.strip()
        found.append((int(match.group(1)), headers.get("x-ms-error-code"), headers))
    if len(found) != count:
        raise InvalidRequestError(
            f"the Blob Batch reply has {len(found)} responses for {count} deletes"
        )
    return found


class _BlockUpload(MultipartUpload):
    """Blocks staged concurrently, committed in order by one Put Block List."""

    def __init__(
        self,
        store: AzureStore,
        key: str,
        headers: dict[str, str],
        token: str | None,
        create: bool,
    ) -> None:
        self._store = store
        self._key = key
        self._headers = headers
        self._token = token
        self._create = create
        self._upload = secrets.token_hex(8)
        self._indexes: set[int] = set()

    def _block_id(self, index: int) -> str:
        # Block ids of one blob must all be the same length; the upload id keeps two
        # concurrent writers' blocks apart.
        return base64.b64encode(f"{self._upload}-{index:08d}".encode()).decode()

    async def put_part(self, index: int, offset: int, data: bytes) -> None:
        await self._store._send(
            "PUT", self._store._blob_path(self._key), self._key,
            params=[("comp", "block"), ("blockid", self._block_id(index))],
            headers={**self._store._encryption, "Content-MD5": await content_md5(data)},
            body=data, ok=(201,),
        )  # fmt: skip
        self._indexes.add(index)

    async def complete(self) -> PutResult:
        if not self._indexes:
            raise InvalidRequestError("a block upload needs at least one block", path=self._key)
        blocks = "".join(f"<Latest>{self._block_id(i)}</Latest>" for i in sorted(self._indexes))
        body = f'<?xml version="1.0" encoding="utf-8"?><BlockList>{blocks}</BlockList>'.encode()
        store, key = self._store, self._key

        async def once() -> PutResult:
            response, _ = await store._send(
                "PUT", store._blob_path(key), key, params=[("comp", "blocklist")],
                headers={**self._headers, "Content-Type": "application/xml"}, body=body,
                ok=(201,), idempotent=self._token is None, create_mode=self._create,
            )  # fmt: skip
            return _put_result(response.headers)

        history = settled_by(partial(store._successor, key), self._headers.get("If-Match"),
                             self._token)  # fmt: skip
        carried = partial(store._carried, key)
        return await reconciled(store._retry, once, carried, self._token, history)

    async def abort(self) -> None:
        """Nothing to send: uncommitted blocks never become visible and the service discards
        them (after a week, or at the blob's next commit)."""
        self._indexes.clear()
