"""The Google Cloud Storage backend, over the JSON API.

Requests go over one aiohttp session per (process, event loop) (:mod:`objstore.backends._http`),
under the core's retry policy: gcloud-aio-storage retries nothing (RELIABILITY.md #13), and its
per-call overhead is what this backend avoids on the data plane. gcloud-aio-auth supplies OAuth
tokens for service accounts, application-default credentials and the metadata server.

Mappings: an object's ``version`` is its generation, its ``e_tag`` the JSON API's ``etag``.
Writes go as ``uploadType=multipart`` (conditions included: ``ifGenerationMatch=0`` to create,
``=<generation>`` to update), large streams as resumable uploads. Read conditions are sent to
the service and also checked against the response headers, so they hold on servers that ignore
them (fake-gcs-server).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, BinaryIO, ClassVar, NamedTuple
from urllib.parse import SplitResult, quote

import aiohttp
from yarl import URL

from objstore._config import Config
from objstore._errors import (
    AlreadyExistsError,
    BucketNotFoundError,
    ChecksumMismatchError,
    ConfigError,
    IntegrityError,
    InvalidRangeError,
    InvalidRequestError,
    MultipartUploadError,
    NotFoundError,
    NotSupportedError,
    ObjstoreError,
    PreconditionFailedError,
    error_for_status,
)
from objstore._inline import offload
from objstore._multipart import MultipartUpload
from objstore._path import Path, listable, prefix_in_url
from objstore._retry import RetryPolicy
from objstore._store import Capabilities, ObjectStore, source_file_error, source_shrank
from objstore._types import (
    ByteRange,
    BytesBody,
    GetOptions,
    GetResponse,
    ListResult,
    ObjectMeta,
    ObjectVersion,
    OffsetRange,
    PutOptions,
    PutResult,
    UpdateVersion,
    make_meta,
)
from objstore.backends._checksums import RunningCrc32c, gcs_checksum, upload_checksum
from objstore.backends._clock import ServerClock
from objstore.backends._conditions import (
    check_read_conditions,
    empty_read,
    missing_version,
    update_refused,
)
from objstore.backends._gcs_auth import (
    BearerSource,
    GcloudAuthSource,
    MetadataServerSource,
    TokenSource,
    well_known_adc_file,
)
from objstore.backends._gcs_config import (
    DEFAULT_BASE_URL,
    GCS_TABLE,
    parse_gcs_url,
    resolve_base_url,
)
from objstore.backends._gcs_sign import ServiceAccount, sign_url
from objstore.backends._http import (
    BufferPayload,
    FilePayload,
    ResponseBody,
    delete_each,
    exchange,
    pages_ahead,
    parse_http_date,
    parse_iso_time,
    raise_if_bucket_missing,
    ranged_get,
    read_headers,
    served_range,
    session_pool,
    with_retry_after,
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

__all__ = ["GCSStore"]

Body = bytes | aiohttp.payload.Payload
BodyFactory = Callable[[], Awaitable[tuple[Body, dict[str, str]]]]
"""Gives each attempt of a request its body and extra headers."""

logger = logging.getLogger("objstore.gcs")


class _Request(NamedTuple):
    """A prepared request: what each attempt sends (one object, not a closure)."""

    method: str
    target: URL
    key: str | None
    headers: Mapping[str, str] | None
    body: bytes | BodyFactory
    ok: tuple[int, ...]
    read: bool
    create_mode: bool
    once: bool
    """Not retried by the policy, so not resent by aiohttp either (``exchange``)."""


MiB = 1024 * 1024
WRITE_TOKEN = "objstore-write-token"
"""User-metadata key of the per-write token that reconciles a retried conditional write."""
DELETE_CONCURRENCY = 16
_ATTRIBUTE_FIELDS = {
    "content_type": "contentType",
    "content_encoding": "contentEncoding",
    "content_disposition": "contentDisposition",
    "content_language": "contentLanguage",
    "cache_control": "cacheControl",
}
_ATTRIBUTE_HEADERS = {
    "content_type": "Content-Type",
    "content_encoding": "Content-Encoding",
    "content_disposition": "Content-Disposition",
    "content_language": "Content-Language",
    "cache_control": "Cache-Control",
}
_META_PREFIX = "x-goog-meta-"
_META_FIELDS = "name,size,updated,etag,generation"  # what _meta_from_json reads
_LIST_FIELDS = f"items({_META_FIELDS}),prefixes,nextPageToken"
_VERSION_FIELDS = f"items({_META_FIELDS},timeCreated,timeDeleted),nextPageToken"
_HISTORY_FIELDS = f"items({_META_FIELDS},metadata),nextPageToken"


def _error(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    key: str | None,
    *,
    create_mode: bool = False,
    upload: bool = False,
) -> ObjstoreError:
    """Translate a GCS error response (the one translation point of this backend). An
    ``upload`` (a new object's POST) has no object to miss: its 404 is the bucket's."""
    reason = message = None
    with contextlib.suppress(ValueError, KeyError, AttributeError, TypeError, IndexError):
        error = json.loads(body)["error"]
        message = error.get("message")
        reason = (error.get("errors") or [{}])[0].get("reason")
    if message is None and body and not body.lstrip().startswith((b"{", b"<")):
        message = body[:200].decode("utf-8", "replace").strip() or None  # a media reply's text
    cls = error_for_status(status, create_mode=create_mode)
    lowered = (message or "").lower()
    if status == 400 and ("crc32c" in lowered or "md5" in lowered) and "match" in lowered:
        cls = ChecksumMismatchError  # the upload was corrupted on the way: send it again
    if status == 404 and (
        key is None or upload or ("bucket" in lowered and "object" not in lowered)
    ):
        cls = BucketNotFoundError  # a listing's 404 can only be the bucket's
    what = f"{key!r}" if key else "the bucket"
    if cls is AlreadyExistsError:
        text = f"{what} already exists"
    elif cls is BucketNotFoundError:
        text = "the bucket does not exist"
    elif cls is NotFoundError:
        text = f"object {what} not found"
    else:
        text = f"GCS {reason or status} on {what}" + (f": {message}" if message else "")
    return with_retry_after(cls(text, path=key, status=status, code=reason), headers)


def _bare(e_tag: str | None) -> str | None:
    return e_tag.strip('"') if e_tag else None


def _meta_from_json(key: str, item: Mapping[str, Any]) -> ObjectMeta:
    return make_meta(
        key,
        int(item.get("size", 0)),
        parse_iso_time(item.get("updated")),
        _bare(item.get("etag")),
        str(item["generation"]) if item.get("generation") else None,
    )


def _replaced(condition: Sequence[tuple[str, str]]) -> str | None:
    """The generation an update's ``ifGenerationMatch`` names (``None`` for a create's 0)."""
    generation = dict(condition).get("ifGenerationMatch")
    return None if generation in (None, "0") else generation


def _is_generation(version: str) -> bool:
    """Whether ``version`` can be a GCS generation (a number: GCS refuses others with 400)."""
    return version.isascii() and version.isdigit()


def _version_from_json(item: Mapping[str, Any]) -> ObjectVersion:
    """One generation of a ``versions=true`` listing, dated by its creation."""
    return ObjectVersion(
        location=item["name"],
        version=str(item["generation"]) if item.get("generation") else None,
        last_modified=parse_iso_time(item.get("timeCreated") or item.get("updated")),
        size=int(item.get("size", 0)),
        e_tag=_bare(item.get("etag")),
        is_latest="timeDeleted" not in item,
    )


def _attributes_from_json(item: Mapping[str, Any]) -> dict[str, str]:
    out = {name: item[field] for name, field in _ATTRIBUTE_FIELDS.items() if item.get(field)}
    for name, value in (item.get("metadata") or {}).items():
        if name != WRITE_TOKEN:
            out[name] = value
    return out


def _meta_from_headers(key: str, status: int, headers: Mapping[str, str]) -> ObjectMeta:
    content_range = headers.get("Content-Range", "")
    if "/" in content_range and not content_range.endswith("/*"):
        size = int(content_range.rpartition("/")[2])
    else:
        stored = headers.get("x-goog-stored-content-length")
        size = int(
            stored if stored is not None and status == 200 else headers.get("Content-Length", "0")
        )
    modified = headers.get("Last-Modified")
    return make_meta(
        key,
        size,
        parse_http_date(modified) if modified else datetime.now(UTC),
        _bare(headers.get("ETag")),
        headers.get("x-goog-generation"),
    )


def _attributes_from_headers(headers: Mapping[str, str]) -> dict[str, str]:
    out = {n: headers[h] for n, h in _ATTRIBUTE_HEADERS.items() if headers.get(h)}
    for name, value in headers.items():
        lower = name.lower()
        if lower.startswith(_META_PREFIX) and lower != _META_PREFIX + WRITE_TOKEN:
            out[lower[len(_META_PREFIX) :]] = value
    return out


class GCSStore(ObjectStore):
    """A bucket (and prefix) of Google Cloud Storage, or of a JSON-API emulator.

    ``GCSStore("bucket", {...})``, or through ``objstore.from_url`` with ``gs://bucket/prefix``,
    ``gcs://``, or ``https://storage.googleapis.com/bucket/prefix``. Options: the README's
    Google table.
    """

    backend: ClassVar[str] = "gcs"
    config_table = GCS_TABLE
    capabilities: Capabilities = Capabilities(tags=False, versions=True, sign=True)
    """Signing needs a service-account key (``google_service_account[_key]``)."""
    single_put_limit: ClassVar[int] = 8 * MiB
    part_size: ClassVar[int] = 8 * MiB
    part_granularity: ClassVar[int] = 256 * 1024  # GCS keeps chunks in multiples of 256 KiB
    part_concurrency: ClassVar[int] = 1
    """A resumable upload takes its chunks in order."""
    delete_batch: ClassVar[int] = 1000
    list_page_size: int | None = None
    """``maxResults`` of listings; ``None`` takes the service's page (1,000 on GCS, everything
    at once on fake-gcs-server, which then lists 10,000 keys 4x faster)."""

    def __init__(
        self,
        bucket: str | None = None,
        options: Mapping[str, Any] | None = None,
        *,
        prefix: str = "",
        url_values: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        values = dict(url_values or {})
        if bucket:
            values.setdefault("google_bucket", bucket)
        env = os.environ if environ is None else environ
        config = GCS_TABLE.resolve({**(options or {}), **kwargs}, values, env)
        bucket = config.get("google_bucket")
        if not bucket:
            raise ConfigError("the GCS store needs a bucket: gs://<bucket> or 'google_bucket'")
        self._bucket = str(bucket)
        self._account = _service_account(config)
        account_base = self._account.gcs_base_url if self._account is not None else None
        self._base = resolve_base_url(config, env, account_base)
        self._source = self._token_source(config, self._base, self._account, env)
        self._retry = RetryPolicy.from_config(config)
        self._clock = ServerClock()
        self._content_type = str(config.get("default_content_type") or "application/octet-stream")
        self._user_agent = (
            {"User-Agent": str(config["user_agent"])} if config.get("user_agent") else {}
        )
        bucket_path = quote(self._bucket, safe="")
        self._objects = f"{self._base}/storage/v1/b/{bucket_path}/o"
        self._media = f"{self._base}/download/storage/v1/b/{bucket_path}/o"
        self._uploads = f"{self._base}/upload/storage/v1/b/{bucket_path}/o"
        self._uploads_path = URL(self._uploads, encoded=True).path
        self._http = session_pool(config)
        url = f"gs://{self._bucket}/{prefix_in_url(prefix)}" if prefix else f"gs://{self._bucket}"
        super().__init__(url=url, config=config, prefix=prefix)

    @classmethod
    def _from_url(
        cls, url: SplitResult, options: Mapping[str, Any] | None, environ: Mapping[str, str]
    ) -> GCSStore:
        bucket, prefix, values = parse_gcs_url(url)
        return cls(bucket, options, prefix=prefix, url_values=values, environ=environ)

    @staticmethod
    def _token_source(
        config: Config, base: str, account: ServiceAccount | None, env: Mapping[str, str]
    ) -> TokenSource:
        if config["google_skip_signature"] or (account is not None and account.disable_oauth):
            return TokenSource()
        bearer = config.get("google_bearer_token")
        if bearer:
            return BearerSource(bearer.reveal())
        path, key = config.get("google_service_account"), config.get("google_service_account_key")
        adc = config.get("google_application_credentials")
        if path or key or adc:
            return GcloudAuthSource(str(path or adc) if path or adc else None,
                                    key.reveal() if key else None)  # fmt: skip
        if base != DEFAULT_BASE_URL:
            return TokenSource()  # an emulator or a proxy without credentials
        well_known = well_known_adc_file(env)
        if well_known is not None:
            return GcloudAuthSource(well_known, None)
        return MetadataServerSource(env, tried=(
            "; no google_bearer_token, google_service_account[_key], "
            "google_application_credentials or gcloud application-default file was found, so "
            "the metadata server was the last resort"
        ))  # fmt: skip

    @property
    def credential_source(self) -> str:
        """Which credential source authorizes this store's requests (no secrets)."""
        return self._source.description

    async def aclose(self) -> None:
        """Close this event loop's connections (the store reopens them when used again)."""
        await self._http.close()

    async def _sign(self, key: Path, method: str, expires_in: int) -> str:
        if self._account is None or not self._account.private_key:
            raise NotSupportedError(
                "GCS signed URLs need a service-account key: set 'google_service_account' "
                "or 'google_service_account_key'",
                path=key,
                operation="sign",
            )
        base = DEFAULT_BASE_URL if self._base == DEFAULT_BASE_URL else self._base
        return sign_url(
            self._account, base, self._bucket, key, method=method, expires_in=expires_in,
            now=self._clock.now(),
        )  # fmt: skip

    # ---- the HTTP layer -------------------------------------------------------------------

    def _object_url(self, base: str, key: str) -> str:
        return f"{base}/{quote(key, safe='')}"

    async def _send(
        self,
        method: str,
        url: str,
        key: str | None,
        *,
        params: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        body: bytes | BodyFactory = b"",
        ok: tuple[int, ...] = (200,),
        read: bool = True,
        idempotent: bool = True,
        create_mode: bool = False,
    ) -> tuple[aiohttp.ClientResponse, bytes]:
        """Send a request; return the response and (when ``read``) its body.

        ``body`` may be a coroutine function giving each attempt its body and extra headers
        (a file streamed from where the service says it stopped).
        """
        target = URL(url, encoded=True)
        if params:
            target = target.update_query(list(params))

        request = _Request(
            method, target, key, headers, body, ok, read, create_mode, not idempotent
        )
        return await self._retry.call(self._attempt, request, idempotent=idempotent)

    async def _attempt(self, request: _Request) -> tuple[aiohttp.ClientResponse, bytes]:
        """One attempt of :meth:`_send`, with a fresh token (and body, from a factory)."""
        method, target, key, headers, body, ok, read, create_mode, once = request
        session = self._http.session()
        request_headers = {**self._user_agent, **(headers or {})}
        payload: bytes | aiohttp.payload.Payload
        if callable(body):
            payload, extra = await body()
            request_headers.update(extra)
        else:
            payload = body
        request_headers.update(await self._source.headers(session))
        media = method == "GET" and "alt=media" in target.raw_query_string
        response, data = await exchange(
            self._http, method, target, headers=request_headers, body=payload, ok=ok,
            read=read, key=key, service="GCS", logger=logger, once=once,
            checksum=gcs_checksum if media else None,
        )  # fmt: skip
        self._clock.observe(response.headers, "GCS")  # what signed URLs are dated with
        if response.status not in ok:
            upload = method == "POST" and target.path == self._uploads_path
            raise _error(
                response.status, data, response.headers, key, create_mode=create_mode,
                upload=upload,
            )  # fmt: skip
        return response, data

    # ---- reads ----------------------------------------------------------------------------

    async def _metadata(
        self, key: str, version: str | None = None, fields: str | None = None
    ) -> dict[str, Any]:
        params = [("generation", version)] if version else []
        if fields:
            params.append(("fields", fields))
        _, body = await self._send("GET", self._object_url(self._objects, key), key, params=params)
        item: dict[str, Any] = json.loads(body)
        return item

    async def _head(self, key: Path) -> ObjectMeta:
        # only the fields the metadata needs: GCS's full resource is ~1 KB of JSON
        return _meta_from_json(key, await self._metadata(key, fields=_META_FIELDS))

    async def _get(self, key: Path, options: GetOptions) -> GetResponse:
        response, _ = await self._fetch(key, options, buffered=False)
        return response

    async def _get_buffered(self, key: Path, options: GetOptions) -> tuple[GetResponse, bytes]:
        return await self._fetch(key, options, buffered=True)

    async def _get_bytes(self, key: Path) -> bytes:
        _, data = await self._send(
            "GET", self._object_url(self._media, key), key, params=[("alt", "media")]
        )
        return data

    async def _get_range_bytes(self, key: Path, request: ByteRange | OffsetRange) -> bytes:
        """A ranged media GET whose reply is not parsed into metadata."""

        def send(wanted: str) -> Awaitable[tuple[aiohttp.ClientResponse, bytes]]:
            return self._send(
                "GET", self._object_url(self._media, key), key, params=[("alt", "media")],
                headers={"Range": wanted}, ok=(200, 206),
            )  # fmt: skip

        data = await ranged_get(send, request)
        return data if data is not None else await super()._get_range_bytes(key, request)

    async def _fetch(
        self, key: Path, options: GetOptions, *, buffered: bool
    ) -> tuple[GetResponse, bytes]:
        request = options.range
        if options.head or (isinstance(request, ByteRange) and request.end == request.start):
            item = await self._metadata(key, options.version)
            meta = _meta_from_json(key, item)
            check_read_conditions(meta, options)
            described = GetResponse(
                meta=meta, range=(0, meta.size), attributes=_attributes_from_json(item), body=None
            )
            if options.head:
                return described, b""
            assert isinstance(request, ByteRange)
            return empty_read(key, described, request.start), b""
        params = [("alt", "media")]
        if options.version:
            params.append(("generation", options.version))
        try:
            response, data = await self._send(
                "GET", self._object_url(self._media, key), key, params=params,
                headers=read_headers(options), ok=(200, 206), read=buffered,
            )  # fmt: skip
        except InvalidRangeError:
            head = await self._fetch(key, GetOptions(head=True, version=options.version),
                                     buffered=True)  # fmt: skip
            start = (
                request.offset if isinstance(request, OffsetRange) else getattr(request, "start", 0)
            )
            return empty_read(key, head[0], start), b""
        meta = _meta_from_headers(key, response.status, response.headers)
        try:
            check_read_conditions(meta, options)  # for servers that ignore the headers
        except ObjstoreError:
            if not buffered:
                response.close()
            raise
        result = GetResponse(
            meta=meta,
            range=served_range(response.headers, meta.size),
            attributes=_attributes_from_headers(response.headers),
            body=BytesBody(data) if buffered else ResponseBody(response, "GCS", self._http.timeout),
            checksum=None if buffered or response.status != 200 else gcs_checksum(response.headers),
        )
        return result, data

    # ---- listings -------------------------------------------------------------------------

    def _pages(
        self,
        prefix: str,
        *,
        delimiter: bool = False,
        offset: str | None = None,
        versions: bool = False,
        fields: str | None = None,
        raw: bool = False,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """A listing's pages, parsed; each next one is requested once this one's token is known,
        while the caller turns this one's items into metadata. The objects under ``prefix``
        (with ``raw``, those whose names start with it)."""
        params = [("fields", fields or (_VERSION_FIELDS if versions else _LIST_FIELDS))]
        if versions:
            params.append(("versions", "true"))
        if self.list_page_size:
            params.append(("maxResults", str(self.list_page_size)))
        if prefix:
            params.append(("prefix", prefix if raw else prefix + "/"))
        if delimiter:
            params.append(("delimiter", "/"))
        if offset is not None:
            params.append(("startOffset", offset))

        async def fetch(token: str | None) -> dict[str, Any]:
            extra = [("pageToken", token)] if token else []
            _, body = await self._send("GET", self._objects, None, params=params + extra)
            page: dict[str, Any] = json.loads(body)
            return page

        return pages_ahead(fetch, lambda page: page.get("nextPageToken") or None)

    async def _list(
        self, prefix: Path, offset: Path | None
    ) -> AsyncGenerator[list[ObjectMeta], None]:
        async with contextlib.aclosing(self._pages(prefix, offset=offset)) as pages:
            async for page in pages:
                metas = []
                for item in page.get("items", []):
                    name = item["name"]
                    if offset is not None and name <= offset:
                        continue  # startOffset is inclusive; ours is not
                    if not listable(name, logger):
                        continue
                    metas.append(_meta_from_json(name, item))
                if metas:
                    yield metas

    async def _list_versions(self, prefix: Path) -> AsyncGenerator[list[ObjectVersion], None]:
        """Every generation (``versions=true``): the live one has no ``timeDeleted``; a
        deleted object has none live (GCS keeps no delete markers)."""
        async with contextlib.aclosing(self._pages(prefix, versions=True)) as pages:
            async for page in pages:
                versions = []
                for item in page.get("items", []):
                    if listable(item["name"], logger):
                        versions.append(_version_from_json(item))
                if versions:
                    yield versions

    def _newest_first(self, versions: list[ObjectVersion]) -> Iterable[ObjectVersion]:
        return sorted(versions, key=lambda v: (not v.is_latest, -int(v.version or 0)))

    async def _list_with_delimiter(self, prefix: Path) -> ListResult:
        prefixes: list[str] = []
        objects: list[ObjectMeta] = []
        async with contextlib.aclosing(self._pages(prefix, delimiter=True)) as pages:
            async for page in pages:
                prefixes.extend(p.rstrip("/") for p in page.get("prefixes", []))
                objects.extend(
                    _meta_from_json(item["name"], item)
                    for item in page.get("items", [])
                    if listable(item["name"], logger)
                )
        return ListResult(common_prefixes=list(dict.fromkeys(prefixes)), objects=objects)

    # ---- writes ---------------------------------------------------------------------------

    def _resource(self, key: str, options: PutOptions, token: str | None) -> dict[str, Any]:
        if options.tags:
            raise NotSupportedError("GCS objects have no tags", path=key, operation="put")
        resource: dict[str, Any] = {"name": key}
        metadata: dict[str, str] = {}
        for name, value in options.attributes.items():
            field = _ATTRIBUTE_FIELDS.get(name)
            if field is None:
                metadata[name] = value
            else:
                resource[field] = value
        resource.setdefault("contentType", self._content_type)
        if token is not None:
            metadata[WRITE_TOKEN] = token
        if metadata:
            resource["metadata"] = metadata
        return resource

    async def _generation_for(self, key: str, mode: UpdateVersion) -> str:
        """The generation an update must match: the given version, or the one whose etag is
        ``mode.e_tag`` (checked now; the write is then conditioned on that generation)."""
        if mode.version is not None:
            return mode.version
        if mode.e_tag is None:
            raise InvalidRequestError("a GCS update needs the object's e_tag or version")
        try:
            meta = await self._head(Path(key))
        except NotFoundError:
            raise PreconditionFailedError(
                f"{key!r} does not exist, so it cannot be updated", path=key, status=412
            ) from None
        if _bare(mode.e_tag) != meta.e_tag or meta.version is None:
            raise update_refused(key, mode)
        return meta.version

    async def _mode_params(self, key: str, mode: Any) -> tuple[list[tuple[str, str]], str | None]:
        """A write's condition parameters, and its write token (``None`` for an overwrite; an
        update's names the generation it must replace)."""
        if mode == "overwrite":
            return [], None
        if mode == "create":
            return [("ifGenerationMatch", "0")], write_token(key)
        generation = await self._generation_for(key, mode)
        return [("ifGenerationMatch", generation)], write_token(key, generation)

    async def _put(self, key: Path, data: bytes, options: PutOptions) -> PutResult:
        conditional = options.mode != "overwrite"
        condition, token = await self._mode_params(key, options.mode)
        resource = self._resource(key, options, token)
        resource.update(await upload_checksum(data))  # GCS refuses a body that does not match
        params = [("uploadType", "multipart"), *condition]
        boundary = secrets.token_hex(16)
        body = b"".join((
            f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
            json.dumps(resource).encode(),
            f"\r\n--{boundary}\r\nContent-Type: {resource['contentType']}\r\n\r\n".encode(),
            data,
            f"\r\n--{boundary}--\r\n".encode(),
        ))  # fmt: skip
        headers = {"Content-Type": f"multipart/related; boundary={boundary}"}

        async def once() -> PutResult:
            _, reply = await self._send(
                "POST", self._uploads, key, params=params, headers=headers, body=body,
                idempotent=not conditional, create_mode=options.mode == "create",
            )  # fmt: skip
            return _put_result(reply)

        history = settled_by(partial(self._successor, key), _replaced(condition), token)
        return await reconciled(self._retry, once, partial(self._carried, key), token, history)

    async def _carried(self, key: str) -> Carried | None:
        """The write token the object carries and its identity (``None``: cannot tell)."""
        try:
            item = await self._metadata(key)
        except ObjstoreError:  # cannot tell: the caller raises the write's own error
            return None
        return (item.get("metadata") or {}).get(WRITE_TOKEN), _put_result_from(item)

    async def _successor(self, key: str, replaces: str) -> Carried | None:
        """The write that replaced generation ``replaces`` of ``key``: the next generation, as
        the bucket's history lists it. ``None`` unless the history still holds ``replaces``
        (versioning on): without it, a generation made and replaced since would be missed."""
        base, kept, after = int(replaces), False, None
        pages = self._pages(key, versions=True, fields=_HISTORY_FIELDS, raw=True)
        async with contextlib.aclosing(pages):
            async for page in pages:
                for item in page.get("items", []):
                    if item.get("name") != key or not item.get("generation"):
                        continue
                    generation = int(item["generation"])
                    kept = kept or generation == base
                    if base < generation and (after is None or generation < after[0]):
                        after = generation, item
        if not kept or after is None:
            return None
        return (after[1].get("metadata") or {}).get(WRITE_TOKEN), _put_result_from(after[1])

    async def _delete(self, keys: Sequence[Path]) -> dict[Path, ObjstoreError]:
        return await delete_each(keys, self._delete_one, DELETE_CONCURRENCY)

    async def _delete_one(self, key: Path, generation: str | None = None) -> None:
        """Delete one object (or its ``generation``); a missing object is fine, a missing
        bucket is not (GCS says which; fake-gcs-server answers both with "Not Found")."""
        url = self._object_url(self._objects, key)
        params = [("generation", generation)] if generation is not None else []
        response, data = await self._send("DELETE", url, key, params=params, ok=(200, 204, 404))
        raise_if_bucket_missing(response, data, key, _error)

    async def _delete_version(self, key: Path, version: str) -> None:
        """Delete one generation (``generation=``)."""
        if _is_generation(version):
            await self._delete_one(key, version)

    async def _copy(
        self, src: Path, dst: Path, overwrite: bool, version: str | None = None
    ) -> None:
        url = (
            f"{self._object_url(self._objects, src)}/rewriteTo/b/"
            f"{quote(self._bucket, safe='')}/o/{quote(dst, safe='')}"
        )
        base: list[tuple[str, str]] = []
        if version is not None:
            if not _is_generation(version):
                raise missing_version(src, version)
            base.append(("sourceGeneration", version))
        token, body, headers = None, b"", None
        try:
            if not overwrite:
                # a copy that must not overwrite carries a write token of its own, so that a
                # retry that finds the destination can tell this copy from another writer's
                token = write_token(dst)
                resource, generation = await self._copy_resource(src, dst, version, token)
                base = [("sourceGeneration", generation), ("ifGenerationMatch", "0")]
                body = json.dumps(resource).encode()
                headers = {"Content-Type": "application/json; charset=UTF-8"}
            rewrite_token: str | None = None
            while True:
                params = [*base, ("rewriteToken", rewrite_token)] if rewrite_token else base
                once = partial(
                    self._rewrite, url, src, params, body, headers, create_mode=not overwrite
                )
                reply = await (
                    once()
                    if token is None
                    else copied_if_absent(
                        self._retry, once, partial(self._copy_carried, dst), token
                    )
                )
                if reply.get("done", True):
                    return
                rewrite_token = reply.get("rewriteToken")
        except BucketNotFoundError:
            raise
        except NotFoundError as exc:
            if version is not None:
                raise missing_version(src, version, status=exc.status, code=exc.code) from None
            if token is None or not await still_there(partial(self._head, src)):
                raise
            # the generation whose attributes were read has been replaced since
            raise source_changed(src, exc) from None

    async def _rewrite(
        self,
        url: str,
        src: str,
        params: list[tuple[str, str]],
        body: bytes,
        headers: dict[str, str] | None,
        *,
        create_mode: bool,
    ) -> dict[str, Any]:
        """One rewrite call (sent at most once in create mode), its reply parsed."""
        _, reply = await self._send(
            "POST", url, src, params=params, body=body, headers=headers,
            create_mode=create_mode, idempotent=not create_mode,
        )  # fmt: skip
        parsed: dict[str, Any] = json.loads(reply)
        return parsed

    async def _copy_resource(
        self, src: str, dst: str, version: str | None, token: str
    ) -> tuple[dict[str, Any], str]:
        """The destination resource of a copy of ``src`` that carries ``token``: the source's
        attributes and metadata with the token in place of its own (GCS takes the resource
        given with a rewrite instead of the source's), and the generation they were read
        from, which is the one copied (``ifSourceGenerationMatch`` would do as well on GCS,
        but fake-gcs-server ignores it)."""
        item = await self._metadata(src, version)
        options = PutOptions(attributes=_attributes_from_json(item))
        return self._resource(dst, options, token), str(item["generation"])

    async def _copy_carried(self, dst: str) -> tuple[str | None, dict[str, Any]] | None:
        """The write token ``dst`` carries, with a finished rewrite's reply (``None``: cannot
        tell)."""
        seen = await self._carried(dst)
        return None if seen is None else (seen[0], {"done": True})

    async def _put_file_of_size(
        self,
        key: Path,
        source: os.PathLike[str],
        size: int,
        options: PutOptions,
        writer_args: dict[str, Any],
    ) -> PutResult:
        """A large file goes as one resumable upload request streamed from disk (a failure
        resumes from the offset the service reports), not chunk by chunk."""
        if size <= self.single_put_limit or any(writer_args.values()):
            return await super()._put_file_of_size(key, source, size, options, writer_args)
        upload = await self._start_resumable(key, options)
        handle = await offload(open, source, "rb")
        try:
            return await upload.send_file(handle, size)
        except BaseException:
            await upload.abort()
            raise
        finally:
            await offload(handle.close)

    async def _create_multipart(self, key: Path, options: PutOptions) -> MultipartUpload:
        return await self._start_resumable(key, options)

    async def _start_resumable(self, key: Path, options: PutOptions) -> _ResumableUpload:
        """Open a resumable upload session (retried: a session nobody uses just expires). The
        upload carries a write token, so that a lost final response can be told from a
        failure."""
        condition, token = await self._mode_params(key, options.mode)
        token = token or write_token(key)
        resource = self._resource(key, options, token)
        params = [("uploadType", "resumable"), *condition]
        response, _ = await self._send(
            "POST", self._uploads, key, params=params,
            headers={"Content-Type": "application/json; charset=UTF-8",
                     "X-Upload-Content-Type": resource["contentType"]},
            body=json.dumps(resource).encode(), create_mode=options.mode == "create",
        )  # fmt: skip
        session_url = response.headers.get("Location")
        if not session_url:
            raise InvalidRequestError("GCS started no resumable upload (no Location header)")
        return _ResumableUpload(
            self, key, session_url, token, options.mode == "create", replaces=_replaced(condition)
        )


def _service_account(config: Config) -> ServiceAccount | None:
    """The service account of ``google_service_account[_key]``, read once at construction."""
    path, key = config.get("google_service_account"), config.get("google_service_account_key")
    if path and key:
        raise ConfigError(
            "give 'google_service_account' (a path) or 'google_service_account_key', not both"
        )
    if key:
        return ServiceAccount.from_json(key.reveal(), "google_service_account_key")
    if path:
        try:
            with open(str(path), encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise ConfigError(
                f"cannot read google_service_account {str(path)!r}: {exc.strerror}"
            ) from None
        return ServiceAccount.from_json(text, f"google_service_account {str(path)!r}")
    return None


def _held(headers: Mapping[str, str]) -> int:
    """How many bytes a resumable upload's ``308`` reply says the service holds."""
    held = headers.get("Range", "")
    return int(held.rpartition("-")[2]) + 1 if held.startswith("bytes=") else 0


def _put_result(reply: bytes) -> PutResult:
    return _put_result_from(json.loads(reply))


def _put_result_from(item: Mapping[str, Any]) -> PutResult:
    generation = item.get("generation")
    return PutResult(e_tag=_bare(item.get("etag")), version=str(generation) if generation else None)


class _ResumableUpload(MultipartUpload):
    """A resumable upload: chunks in order, the last one held back to send with the total."""

    def __init__(
        self,
        store: GCSStore,
        key: str,
        url: str,
        token: str,
        create: bool,
        *,
        replaces: str | None = None,
    ) -> None:
        self._store = store
        self._key = key
        self._url = url
        self._token = token
        self._create = create
        self._replaces = replaces
        self._held: tuple[int, bytes] | None = None
        self._crc = RunningCrc32c()

    async def _upload(
        self,
        offset: int,
        end: int,
        total: int | None,
        rest: Callable[[int], Awaitable[Body]],
        last: Mapping[str, str] | None = None,
    ) -> bytes:
        """Send bytes ``offset..end`` of the upload (``rest(start)`` gives them from
        ``start``); return the reply that finishes it, or ``b""`` when more is to come.

        The service may keep fewer bytes than a request sent (its ``Range`` says how many), and
        a failed request may have left some: a retry asks the session first and sends only
        what it lacks, as GCS's resumable protocol prescribes (fake-gcs-server would store a
        re-sent chunk twice). ``last`` is sent with the bytes that end the upload (the whole
        object's ``x-goog-hash``)."""
        size = "*" if total is None else str(total)
        start, tries = offset, 0

        async def body() -> tuple[Body, dict[str, str]]:
            nonlocal start, tries
            tries += 1
            if tries > 1:
                start = max(start, await self._persisted(size))
            if start > end:  # all there: a status query confirms (or finishes) it
                return b"", {"Content-Range": f"bytes */{size}"}
            return await rest(start), {
                "Content-Length": str(end - start + 1),  # a file's body stops there
                "Content-Range": f"bytes {start}-{end}/{size}",
                **(last or {}),
            }

        while True:
            response, reply = await self._store._send(
                "PUT", self._url, self._key, body=body, ok=(200, 201, 308),
                create_mode=self._create,
            )  # fmt: skip
            if response.status != 308:
                return self._finished(reply, size)
            held = _held(response.headers)
            if held > end and total is None:
                return b""
            if held <= start:
                raise MultipartUploadError(
                    f"the resumable upload of {self._key!r} took none of bytes {start}-{end}",
                    path=self._key,
                )
            start, tries = held, 0

    def _finished(self, reply: bytes, size: str) -> bytes:
        """The reply that finished the upload, checked to hold all ``size`` bytes."""
        kept = json.loads(reply).get("size")
        if size == "*" or str(kept) != size:  # fake-gcs-server finishes on a status query
            raise IntegrityError(
                f"the service finished the upload of {self._key!r} early, with {kept} bytes "
                f"of {size}",
                path=self._key,
            )
        return reply

    async def _send_chunk(
        self, offset: int, data: bytes, total: int | None, last: Mapping[str, str] | None = None
    ) -> bytes:
        async def rest(start: int) -> Body:  # sent once: a retry first asks what arrived
            return BufferPayload(data if start == offset else data[start - offset :], once=True)

        return await self._upload(offset, offset + len(data) - 1, total, rest, last)

    async def put_part(self, index: int, offset: int, data: bytes) -> None:
        if self._held is not None:
            held_offset, held = self._held
            await self._send_chunk(held_offset, held, None)
        await self._crc.update(data)
        self._held = (offset, data)

    async def complete(self) -> PutResult:
        if self._held is None:
            raise InvalidRequestError("a resumable upload needs at least one chunk")
        offset, data = self._held
        whole = self._crc.header()  # the whole object's, checked when the last chunk lands
        return await self._finish(lambda: self._send_chunk(offset, data, offset + len(data), whole))

    async def send_file(self, handle: BinaryIO, total: int) -> PutResult:
        """Send the file in one request but for its last bytes (under 256 KiB), which follow
        with the whole file's CRC32C, read from the file alongside the first request: GCS
        refuses the upload if what arrived is not what the file holds. A retry sends only
        what the service lacks."""

        async def rest(start: int) -> Body:
            held = (await offload(os.fstat, handle.fileno())).st_size
            if held < total:  # else the request would wait for bytes that never come
                raise source_shrank(handle.name, total, held)
            await offload(handle.seek, start)
            return FilePayload(handle)

        if not self._crc.fast:
            return await self._finish(lambda: self._upload(0, total - 1, total, rest))
        last = (total - 1) // GCSStore.part_granularity * GCSStore.part_granularity
        hashing = asyncio.ensure_future(self._crc.update_from_file(handle.fileno(), total))
        try:
            if last:
                await self._upload(0, last - 1, None, rest)
            try:
                hashed = await hashing
            except OSError as exc:  # the file could not be read (pread's own error)
                raise source_file_error(exc, handle.name, self._key) from None
        finally:
            hashing.cancel()
            await asyncio.gather(hashing, return_exceptions=True)
        if hashed < total:
            raise source_shrank(handle.name, total, hashed)
        whole = self._crc.header()
        return await self._finish(lambda: self._upload(last, total - 1, total, rest, whole))

    async def _finish(self, send: Callable[[], Awaitable[bytes]]) -> PutResult:
        """Send the upload's last bytes; a lost reply is told from a failure by the token."""

        async def once() -> PutResult:
            try:
                return _put_result(await send())
            except NotFoundError:  # a retry after a lost reply may find the session finished
                raise self._gone() from None

        store = self._store
        history = settled_by(partial(store._successor, self._key), self._replaces, self._token)
        carried = partial(store._carried, self._key)
        return await reconciled(store._retry, once, carried, self._token, history)

    async def _persisted(self, size: str) -> int:
        """How many bytes of the upload (of ``size``, or ``*``) the service holds."""
        try:
            response, reply = await self._store._send(
                "PUT", self._url, self._key, headers={"Content-Range": f"bytes */{size}"},
                ok=(200, 201, 308),
            )  # fmt: skip
        except NotFoundError:  # the session is gone (finished, on fake-gcs-server, or expired)
            raise self._gone() from None
        if response.status == 308:
            return _held(response.headers)
        self._finished(reply, size)
        return int(size)

    def _gone(self) -> MultipartUploadError:
        return MultipartUploadError(
            f"the resumable upload of {self._key!r} is gone", path=self._key
        )

    async def abort(self) -> None:
        with contextlib.suppress(ObjstoreError):
            await self._store._send("DELETE", self._url, self._key, ok=(200, 204, 404, 499))
