"""The S3 backend: Amazon S3 and S3-compatible servers.

Data-plane requests (GET, HEAD, PUT, LIST, DELETE, copy, multipart) go over one aiohttp session
per (process, event loop), signed by :mod:`objstore.backends._sigv4`. That is about a tenth of
the client CPU of a botocore call. Every request runs under the core's retry policy, and every
S3 error is translated in :func:`_error`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, ClassVar, NamedTuple, TypeAlias, TypeVar
from urllib.parse import SplitResult, quote, urlsplit
from xml.sax.saxutils import escape

import aiohttp
from yarl import URL

from objstore._config import Config
from objstore._errors import (
    AlreadyExistsError,
    BucketNotFoundError,
    ChecksumMismatchError,
    ConfigError,
    IntegrityError,
    InvalidPathError,
    InvalidRangeError,
    InvalidRequestError,
    MultipartUploadError,
    NotFoundError,
    NotSupportedError,
    ObjstoreError,
    ObjstoreTimeoutError,
    PermissionDeniedError,
    PreconditionFailedError,
    ServiceUnavailableError,
    ThrottledError,
    TransientError,
    UnauthenticatedError,
    error_for_status,
)
from objstore._inline import gather_bounded
from objstore._multipart import MultipartUpload
from objstore._path import Path, listable, prefix_in_url
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
    UpdateVersion,
    make_meta,
    make_put_result,
)
from objstore.backends._aws_credentials import (
    CHAIN_KEYS,
    AnonymousSource,
    BotocoreSource,
    CredentialSource,
    StaticSource,
)
from objstore.backends._checksums import content_md5, s3_checksum
from objstore.backends._client_copy import copy_through_client
from objstore.backends._clock import ServerClock
from objstore.backends._conditions import check_served_version, empty_read, missing_version
from objstore.backends._http import (
    ResponseBody,
    delete_each,
    exchange,
    pages_ahead,
    parse_http_date,
    parse_iso_time,
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
    source_changed,
    still_there,
    write_token,
)
from objstore.backends._s3_checksum import checksum_for
from objstore.backends._s3_config import S3_TABLE, parse_s3_url, resolve_endpoint
from objstore.backends._sigv4 import (
    EMPTY_SHA256,
    UNSIGNED_PAYLOAD,
    Credentials,
    SigV4,
    canonical_query,
    encode_path,
)
from objstore.backends._tag_set import parse_tag_set

__all__ = ["S3Store"]

logger = logging.getLogger("objstore.s3")
T = TypeVar("T")
Markers: TypeAlias = list[tuple[str, str]]
"""The query parameters that continue a listing where its last page stopped."""


class _Request(NamedTuple):
    """A prepared request: what each attempt signs and sends (one object, not a closure)."""

    method: str
    key: str | None
    url: URL
    path: str
    query: str
    base: dict[str, str]
    to_sign: dict[str, str]
    payload: str
    body: bytes
    ok: tuple[int, ...]
    read: bool
    create_mode: bool
    conditional: bool
    once: bool
    """Not retried by the policy, so not resent by aiohttp either (``exchange``)."""


MiB = 1024 * 1024
_ATTRIBUTE_HEADERS = {
    "content_type": "Content-Type",
    "content_encoding": "Content-Encoding",
    "content_disposition": "Content-Disposition",
    "content_language": "Content-Language",
    "cache_control": "Cache-Control",
}
_META_PREFIX = "x-amz-meta-"
WRITE_TOKEN = "objstore-write-token"
"""User-metadata key of the per-write token that reconciles a retried conditional write."""
_CHECKSUM_MODE = "x-amz-checksum-mode"
"""Asks S3 for the object's checksum with a whole-object GET, which is then verified."""

_CODE_ERRORS: dict[str, type[ObjstoreError]] = {
    "NoSuchKey": NotFoundError,
    "NoSuchVersion": NotFoundError,
    "NoSuchBucket": BucketNotFoundError,
    "NoSuchUpload": MultipartUploadError,
    "PreconditionFailed": PreconditionFailedError,
    "ConditionalRequestConflict": ServiceUnavailableError,
    "AccessDenied": PermissionDeniedError,
    "AllAccessDisabled": PermissionDeniedError,
    "InvalidAccessKeyId": UnauthenticatedError,
    "SignatureDoesNotMatch": UnauthenticatedError,
    "ExpiredToken": UnauthenticatedError,
    "TokenRefreshRequired": UnauthenticatedError,
    "RequestTimeTooSkewed": UnauthenticatedError,
    "InvalidToken": UnauthenticatedError,
    "InvalidRange": InvalidRangeError,
    "SlowDown": ThrottledError,
    "Throttling": ThrottledError,
    "TooManyRequests": ThrottledError,
    "RequestLimitExceeded": ThrottledError,
    "InternalError": ServiceUnavailableError,
    "ServiceUnavailable": ServiceUnavailableError,
    "RequestTimeout": ObjstoreTimeoutError,
    "EntityTooSmall": InvalidRequestError,
    "EntityTooLarge": InvalidRequestError,
    "InvalidArgument": InvalidRequestError,
    "MalformedXML": InvalidRequestError,
    "InvalidRequest": InvalidRequestError,
    "InvalidPart": MultipartUploadError,
    "InvalidPartOrder": MultipartUploadError,
    "BadDigest": ChecksumMismatchError,  # the body was corrupted on the way: send it again
    "InvalidDigest": IntegrityError,
    "XAmzContentSHA256Mismatch": ChecksumMismatchError,
    "KeyTooLongError": InvalidPathError,
    "NotImplemented": NotSupportedError,
}


_SKEWED = b"<Code>RequestTimeTooSkewed</Code>"
_COPY_TOO_LARGE = "copy source is larger than the maximum allowable size"
"""What S3 says of a CopyObject source over 5 GiB (InvalidRequest): copied in parts instead."""


def _error(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    key: str | None,
    *,
    create_mode: bool = False,
    conditional: bool = False,
) -> ObjstoreError:
    """Translate an S3 error response (the one translation point of this backend)."""
    code = message = named_region = None
    if body:
        try:
            root = ET.fromstring(body)
            code = root.findtext("Code") or root.findtext("{*}Code")
            message = root.findtext("Message") or root.findtext("{*}Message")
            named_region = root.findtext("Region")  # in a wrong-region answer's body
        except ET.ParseError:
            message = None
    region = headers.get("x-amz-bucket-region") or named_region
    if region and (status == 301 or code in _WRONG_REGION):
        return ConfigError(  # AWS answers a request signed for another region so
            f"the bucket is in region {region!r}, not the one this store signs for: set "
            f"'aws_region' (AWS_REGION) to {region!r}",
            path=key,
            status=status,
            code=code or "PermanentRedirect",
            request_id=headers.get("x-amz-request-id"),
        )
    cls = _CODE_ERRORS.get(code or "") or error_for_status(status, create_mode=create_mode)
    if cls is PreconditionFailedError and create_mode:
        cls = AlreadyExistsError
    if conditional and cls is NotFoundError and code != "NoSuchBucket":
        cls = PreconditionFailedError  # If-Match on a missing key: S3 says 404
    what = f"{key!r}" if key else "the bucket"
    if cls is AlreadyExistsError:
        text = f"{what} already exists"
    elif cls is NotFoundError:
        text = f"object {what} not found"
    else:
        text = f"S3 {code or status} on {what}" + (f": {message}" if message else "")
        if code == "RequestTimeTooSkewed":
            text += " (this machine's clock is off, and the reply's Date could not correct it)"
    error = cls(
        text,
        path=key,
        status=status,
        code=code,
        request_id=headers.get("x-amz-request-id"),
    )
    return with_retry_after(error, headers)


_WRONG_REGION = frozenset({"PermanentRedirect", "AuthorizationHeaderMalformed"})
"""Codes AWS answers with when a request names the wrong region (with the right one)."""


def _version(headers: Mapping[str, str]) -> str | None:
    version = headers.get("x-amz-version-id")
    return None if version in (None, "", "null") else version


def _meta_from_headers(key: str, status: int, headers: Mapping[str, str]) -> ObjectMeta:
    content_range = headers.get("Content-Range", "")
    if status == 206 and "/" in content_range:
        size = int(content_range.rpartition("/")[2])
    else:
        size = int(headers.get("Content-Length", "0"))
    modified = headers.get("Last-Modified")
    when = parse_http_date(modified) if modified else datetime.now(UTC)
    return make_meta(key, size, when, headers.get("ETag"), _version(headers))


def _attributes(headers: Mapping[str, str]) -> dict[str, str]:
    out = {
        name: headers[header] for name, header in _ATTRIBUTE_HEADERS.items() if header in headers
    }
    for name, value in headers.items():
        lower = name.lower()
        if lower.startswith(_META_PREFIX) and lower != _META_PREFIX + WRITE_TOKEN:
            out[lower[len(_META_PREFIX) :]] = _metadata_value(value)
    return out


_WORD_BYTES = 45
"""UTF-8 bytes per RFC 2047 encoded word: 60 base64 characters, within its 75-character limit."""


def _metadata_header(value: str) -> str:
    """A user metadata value as S3 takes it: ASCII as it is; other text, and text that would
    read as an encoded word, as RFC 2047 encoded words, which S3 decodes to store the value
    (AWS documents US-ASCII for REST headers)."""
    if value.isascii() and "=?" not in value:
        return value
    words: list[bytes] = []
    word = b""
    for char in value:  # whole characters per word: each word decodes on its own
        data = char.encode()
        if len(word) + len(data) > _WORD_BYTES:
            words.append(word)
            word = b""
        word += data
    words.append(word)
    return " ".join(f"=?UTF-8?B?{base64.b64encode(w).decode('ascii')}?=" for w in words)


def _metadata_value(raw: str) -> str:
    """A user metadata value as written: S3 serves non-ASCII text as RFC 2047 encoded words."""
    if "=?" not in raw:
        return raw
    from email.errors import HeaderParseError
    from email.header import decode_header, make_header

    try:
        return str(make_header(decode_header(raw)))
    except (HeaderParseError, LookupError, UnicodeDecodeError):  # not encoded words after all
        return raw


_FIELDS = tuple(
    re.compile(rb"<%s>([^<]*)</%s>" % (name, name))
    for name in (b"Key", b"LastModified", b"ETag", b"Size")
)
_TOKEN = re.compile(rb"<NextContinuationToken>([^<]*)</NextContinuationToken>")
_TRUNCATED = re.compile(rb"<IsTruncated>\s*true\s*</IsTruncated>")


def _parse_listing(body: bytes) -> tuple[list[tuple[str, int, str, str | None]], str | None, bool]:
    """Extract ``(key, size, last_modified, e_tag)`` entries, the next token and truncation.

    Four regular-expression passes (one per field, so any element order works: SeaweedFS and
    AWS differ) zipped together; a page they do not fully explain (CDATA, comments, a missing
    field) raises ``ValueError`` and is parsed with ElementTree instead.
    """
    if b"<![CDATA[" in body or b"<!--" in body:
        raise ValueError("unusual listing XML")
    keys, modified, e_tags, sizes = (pattern.findall(body) for pattern in _FIELDS)
    count = body.count(b"<Contents>")
    if not len(keys) == len(modified) == len(e_tags) == len(sizes) == count:
        raise ValueError("unusual listing XML")
    entries: list[tuple[str, int, str, str | None]] = [
        (xml_text(key), int(size), when.decode(), xml_text(e_tag))
        for key, when, e_tag, size in zip(keys, modified, e_tags, sizes, strict=True)
    ]
    token = _TOKEN.search(body)
    truncated = _TRUNCATED.search(body) is not None
    return entries, (xml_text(token.group(1)) if token else None), truncated


def _continuation(body: bytes) -> str | None:
    """The token of the page after this one (``None`` on the last), found before the page is
    parsed; ElementTree reads pages the regular expressions do not fully explain."""
    if b"<![CDATA[" in body or b"<!--" in body:
        root = ET.fromstring(body)
        ns = _ns(root)
        if root.findtext(f"{ns}IsTruncated") != "true":
            return None
        return root.findtext(f"{ns}NextContinuationToken")
    token = _TOKEN.search(body)
    if token is None or _TRUNCATED.search(body) is None:
        return None
    return xml_text(token.group(1))


_COMMON_PREFIX = re.compile(rb"<CommonPrefixes>\s*<Prefix>([^<]*)</Prefix>\s*</CommonPrefixes>")


def _common_prefixes(body: bytes) -> list[str]:
    """The sub-prefixes of a delimited listing page, without their trailing ``/``."""
    found = _COMMON_PREFIX.findall(body)
    if len(found) == body.count(b"<CommonPrefixes>") and b"<![CDATA[" not in body:
        return [xml_text(p).rstrip("/") for p in found]
    root = ET.fromstring(body)
    ns = _ns(root)
    return [
        (item.findtext(f"{ns}Prefix") or "").rstrip("/")
        for item in root.iterfind(f"{ns}CommonPrefixes")
    ]


def _ns(root: ET.Element) -> str:
    return root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""


def _metas(entries: list[tuple[str, int, str, str | None]]) -> list[ObjectMeta]:
    out: list[ObjectMeta] = []
    for key, size, modified, e_tag in entries:
        if not listable(key, logger):
            continue
        out.append(make_meta(key, size, parse_iso_time(modified), e_tag, None))
    return out


class S3Store(ObjectStore):
    """A bucket (and prefix) of Amazon S3 or an S3-compatible server.

    ``S3Store("bucket", {"aws_region": "eu-west-1"})``, or through ``objstore.from_url``
    with ``s3://bucket/prefix`` and the other URL forms. Options: see the README's S3 table.
    """

    backend: ClassVar[str] = "s3"
    config_table = S3_TABLE
    content_keys: ClassVar[frozenset[str]] = frozenset({"aws_sse_customer_key_base64"})
    capabilities: Capabilities = Capabilities(versions=True, sign=True, incomplete_uploads=True)
    single_put_limit: ClassVar[int] = 8 * MiB
    part_size: ClassVar[int] = 8 * MiB
    part_concurrency: ClassVar[int] = 6
    """6 parts in flight + 1 filling: a streamed upload holds at most 56 MiB."""
    delete_batch: ClassVar[int] = 1000
    max_parts: ClassVar[int | None] = 10_000
    max_part_size: ClassVar[int | None] = 5 * 1024 * MiB
    copy_part_limit: ClassVar[int] = 5 * 1024 * MiB
    """The largest source CopyObject takes, and the largest UploadPartCopy part."""

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
            values.setdefault("aws_bucket", bucket)
        config = S3_TABLE.resolve(
            {**(options or {}), **kwargs}, values, os.environ if environ is None else environ
        )
        bucket = config.get("aws_bucket")
        if not bucket:
            raise ConfigError("the S3 store needs a bucket: s3://<bucket> or 'aws_bucket'")
        endpoint, region, virtual = resolve_endpoint(config, _profile_region)
        parts = urlsplit(endpoint)
        self._bucket = str(bucket)
        self._scheme = parts.scheme
        self._host = f"{self._bucket}.{parts.netloc}" if virtual else parts.netloc
        self._base_path = parts.path.rstrip("/") + (
            "" if virtual else f"/{encode_path(self._bucket)}"
        )
        self._signer = SigV4(region)
        self._clock = ServerClock()
        self._source = self._credential_source(config)
        self._retry = RetryPolicy.from_config(config)
        self._unsigned = bool(config["aws_unsigned_payload"])
        self._checksum = checksum_for(config.get("aws_checksum_algorithm"))
        # Content-MD5 on every body, where no stronger checksum goes: not every S3-compatible
        # server checks the signed payload hash, all check this; S3 Express refuses MD5s
        express = config["aws_s3_express"] or self._bucket.endswith("--x-s3")
        self._content_md5 = self._checksum is None and not express
        self._conditional = config["aws_conditional_put"] == "etag"
        self._tagging = not config["aws_disable_tagging"]
        self._bulk_delete = not config["aws_disable_bulk_delete"]
        self._copy_mode: str = config["aws_copy_if_not_exists"]
        self._fixed_headers = self._request_headers(config)
        self._sse_c = self._sse_c_headers(config)
        # a copy encrypts with the key and decrypts its source with it, named again for that
        self._copy_keys = {**self._sse_c, **{
            name.replace("x-amz-", "x-amz-copy-source-", 1): value
            for name, value in self._sse_c.items()
        }}  # fmt: skip
        self._whole_read = {**self._sse_c, _CHECKSUM_MODE: "ENABLED"}
        self._sse = self._sse_headers(config)
        self._write_static = {**self._sse, **self._sse_c}  # what every write carries
        self._content_type = str(config.get("default_content_type") or "application/octet-stream")
        self._http = session_pool(config)
        url = f"s3://{self._bucket}/{prefix_in_url(prefix)}" if prefix else f"s3://{self._bucket}"
        super().__init__(url=url, config=config, prefix=prefix)
        switched_off = {} if self._tagging else {"tags": "aws_disable_tagging"}
        if not self._conditional:
            switched_off |= dict.fromkeys(("create_mode", "update_mode"), "aws_conditional_put")
        self._switch_off(switched_off)

    @classmethod
    def _from_url(
        cls, url: SplitResult, options: Mapping[str, Any] | None, environ: Mapping[str, str]
    ) -> S3Store:
        bucket, prefix, values = parse_s3_url(url)
        return cls(bucket, options, prefix=prefix, url_values=values, environ=environ)

    # ---- configuration helpers ------------------------------------------------------------

    @staticmethod
    def _credential_source(config: Config) -> CredentialSource:
        if config["aws_skip_signature"]:
            return AnonymousSource()
        key, secret = config.get("aws_access_key_id"), config.get("aws_secret_access_key")
        if bool(key) != bool(secret):
            raise ConfigError(
                "static S3 credentials need both 'aws_access_key_id' and 'aws_secret_access_key'"
            )
        if not key:
            settings = {name: config.get(name) for name in CHAIN_KEYS}
            return BotocoreSource(config.get("aws_profile"), settings)
        assert secret is not None
        token = config.get("aws_session_token")
        return StaticSource(
            Credentials(str(key), secret.reveal(), token.reveal() if token else None)
        )

    @property
    def credential_source(self) -> str:
        """Which credential source signs this store's requests (no secrets)."""
        return self._source.description

    @staticmethod
    def _request_headers(config: Config) -> dict[str, str]:
        headers: dict[str, str] = {}
        if config["aws_request_payer"]:
            headers["x-amz-request-payer"] = "requester"
        if config.get("user_agent"):
            headers["User-Agent"] = str(config["user_agent"])
        return headers

    @staticmethod
    def _sse_c_headers(config: Config) -> dict[str, str]:
        key = config.get("aws_sse_customer_key_base64")
        if not key:
            return {}
        raw = base64.b64decode(key.reveal())
        return {
            "x-amz-server-side-encryption-customer-algorithm": "AES256",
            "x-amz-server-side-encryption-customer-key": key.reveal(),
            "x-amz-server-side-encryption-customer-key-md5": base64.b64encode(
                hashlib.md5(raw).digest()
            ).decode(),
        }

    @staticmethod
    def _sse_headers(config: Config) -> dict[str, str]:
        """SSE-S3 / SSE-KMS: what PutObject, CreateMultipartUpload and CopyObject ask for
        (never the parts: S3 refuses these headers on UploadPart and UploadPartCopy)."""
        sse = config.get("aws_server_side_encryption")
        if not sse or sse == "sse-c":
            return {}
        headers = {"x-amz-server-side-encryption": str(sse)}
        if config.get("aws_sse_kms_key_id"):
            headers["x-amz-server-side-encryption-aws-kms-key-id"] = str(
                config["aws_sse_kms_key_id"]
            )
        if config.get("aws_sse_bucket_key_enabled") is not None:
            headers["x-amz-server-side-encryption-bucket-key-enabled"] = str(
                bool(config["aws_sse_bucket_key_enabled"])
            ).lower()
        return headers

    def _write_headers(self, options: PutOptions) -> dict[str, str]:
        attributes = options.attributes
        headers = {"Content-Type": attributes.get("content_type") or self._content_type}
        for name, value in attributes.items():
            header = _ATTRIBUTE_HEADERS.get(name)
            if header is None:
                headers[_META_PREFIX + name.lower()] = _metadata_header(value)
            elif name != "content_type":
                headers[header] = value
        if options.tags and self._tagging:
            from urllib.parse import urlencode

            headers["x-amz-tagging"] = urlencode(options.tags)
        headers.update(self._write_static)
        return headers

    def _mode_headers(self, mode: Any) -> dict[str, str]:
        if mode == "overwrite":
            return {}
        if not self._conditional:
            raise NotSupportedError("conditional writes are disabled (aws_conditional_put)")
        if mode == "create":
            return {"If-None-Match": "*"}
        assert isinstance(mode, UpdateVersion)
        if mode.e_tag is None:
            raise InvalidRequestError("S3 updates need the object's e_tag")
        return {"If-Match": mode.e_tag}

    # ---- the HTTP layer -------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close this event loop's connections (the store reopens them when used again)."""
        await self._http.close()

    def _path(self, key: str | None) -> str:
        if key is None:
            return self._base_path + "/"
        return f"{self._base_path}/{encode_path(key)}"

    async def _send(
        self,
        method: str,
        key: str | None,
        *,
        params: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        ok: tuple[int, ...] = (200,),
        read: bool = True,
        idempotent: bool = True,
        create_mode: bool = False,
        conditional: bool = False,
    ) -> tuple[aiohttp.ClientResponse, bytes]:
        """Send a signed request; return the response and (when ``read``) its body."""
        path = self._path(key)
        query = canonical_query(params)
        url = URL(
            f"{self._scheme}://{self._host}{path}" + (f"?{query}" if query else ""), encoded=True
        )
        base = {**self._fixed_headers, **(headers or {})}
        if body:
            payload = UNSIGNED_PAYLOAD if self._unsigned else hashlib.sha256(body).hexdigest()
        else:
            payload = EMPTY_SHA256
        to_sign = {k: v for k, v in base.items() if k.lower().startswith("x-amz-")}
        request = _Request(
            method, key, url, path, query, base, to_sign, payload, body, ok, read, create_mode,
            conditional, not idempotent,
        )  # fmt: skip
        return await self._retry.call(self._attempt, request, idempotent=idempotent)

    async def _attempt(self, request: _Request) -> tuple[aiohttp.ClientResponse, bytes]:
        """One attempt of :meth:`_send`, signed afresh; sent once more, with the server's time,
        when the server refused this machine's clock (``backends/_clock.py``)."""
        (method, key, url, path, query, base, to_sign, payload, body, ok, read, create_mode,
         conditional, once) = request  # fmt: skip
        for _ in range(2):
            signed_at = self._clock.now()
            request_headers = dict(base)
            credentials = await self._source.get()
            if credentials is not None:
                request_headers.update(
                    self._signer.sign_headers(
                        method,
                        self._host,
                        path,
                        query=query,
                        headers=to_sign,
                        payload_hash=payload,
                        credentials=credentials,
                        now=signed_at,
                    )
                )
            response, data = await exchange(
                self._http, method, url, headers=request_headers, body=body, ok=ok,
                read=read, key=key, service="S3", logger=logger, once=once,
                checksum=s3_checksum if _CHECKSUM_MODE in to_sign else None,
            )  # fmt: skip
            if response.status in ok:
                return response, data
            if response.status != 403 or credentials is None:
                break
            skewed = _SKEWED in data
            if not self._clock.corrected(
                signed_at, response.headers.get("Date"), "S3", refused_for_skew=skewed
            ):
                break
        raise _error(
            response.status,
            data,
            response.headers,
            key,
            create_mode=create_mode,
            conditional=conditional,
        )

    # ---- reads ----------------------------------------------------------------------------

    def _read_headers(self, options: GetOptions) -> dict[str, str]:
        if options.range is None and not options.head:
            return {**self._whole_read, **read_headers(options)}
        return {**self._sse_c, **read_headers(options)}

    async def _get(self, key: Path, options: GetOptions) -> GetResponse:
        response, _ = await self._fetch(key, options, buffered=False)
        return response

    async def _get_buffered(self, key: Path, options: GetOptions) -> tuple[GetResponse, bytes]:
        return await self._fetch(key, options, buffered=True)

    async def _get_range_bytes(self, key: Path, request: ByteRange | OffsetRange) -> bytes:
        """A ranged GET whose reply is not parsed into metadata (the data tools' hot path)."""

        def send(wanted: str) -> Awaitable[tuple[aiohttp.ClientResponse, bytes]]:
            return self._send("GET", key, ok=(200, 206), headers={**self._sse_c, "Range": wanted})

        data = await ranged_get(send, request)
        return data if data is not None else await super()._get_range_bytes(key, request)

    async def _fetch(
        self, key: Path, options: GetOptions, *, buffered: bool
    ) -> tuple[GetResponse, bytes]:
        """GET or HEAD; ``buffered`` reads the body inside the retries (a truncated body is
        fetched again), otherwise the body streams."""
        result = await self._fetch_reply(key, options, buffered=buffered)
        if options.version is not None:  # a server may ignore it: see check_served_version
            await check_served_version(key, options.version, result[0])
        return result

    async def _fetch_reply(
        self, key: Path, options: GetOptions, *, buffered: bool
    ) -> tuple[GetResponse, bytes]:
        params = [("versionId", options.version)] if options.version else []
        request = options.range
        if options.head or (isinstance(request, ByteRange) and request.end == request.start):
            head_options = GetOptions(
                if_match=options.if_match,
                if_none_match=options.if_none_match,
                if_modified_since=options.if_modified_since,
                if_unmodified_since=options.if_unmodified_since,
                head=True,  # no checksum asked for: a HEAD has no body to check it against
            )
            response, _ = await self._send(
                "HEAD", key, params=params, headers=self._read_headers(head_options)
            )
            meta = _meta_from_headers(key, response.status, response.headers)
            head = GetResponse(
                meta=meta, range=(0, meta.size), attributes=_attributes(response.headers), body=None
            )
            if options.head:
                return head, b""
            assert isinstance(request, ByteRange)
            return empty_read(key, head, request.start), b""
        try:
            response, data = await self._send(
                "GET",
                key,
                params=params,
                ok=(200, 206),
                read=buffered,
                headers=self._read_headers(options),
            )
        except InvalidRangeError:
            head = await self._get(key, GetOptions(head=True, version=options.version))
            start = (
                request.offset if isinstance(request, OffsetRange) else getattr(request, "start", 0)
            )
            return empty_read(key, head, start), b""
        meta = _meta_from_headers(key, response.status, response.headers)
        result = GetResponse(
            meta=meta,
            range=served_range(response.headers, meta.size),
            attributes=_attributes(response.headers),
            body=BytesBody(data) if buffered else ResponseBody(response, "S3", self._http.timeout),
            checksum=None if buffered or response.status != 200 else s3_checksum(response.headers),
        )
        return result, data

    async def _get_bytes(self, key: Path) -> bytes:
        _, data = await self._send("GET", key, headers=self._whole_read)
        return data

    async def _head(self, key: Path) -> ObjectMeta:
        response, _ = await self._send("HEAD", key, headers=self._sse_c or None)
        return _meta_from_headers(key, response.status, response.headers)

    async def _get_tags(self, key: Path, version: str | None = None) -> dict[str, str]:
        if not self._tagging:
            raise NotSupportedError("tagging is turned off by aws_disable_tagging", path=key)
        params = [("tagging", ""), *([("versionId", version)] if version else [])]
        _, body = await self._send("GET", key, params=params)
        return parse_tag_set(body)

    # ---- listings -------------------------------------------------------------------------

    async def _list_body(
        self, prefix: str, token: str | None, start_after: str | None, delimiter: bool
    ) -> bytes:
        params = [("list-type", "2"), ("max-keys", "1000"), ("prefix", prefix)]
        if delimiter:
            params.append(("delimiter", "/"))
        if token:
            params.append(("continuation-token", token))
        elif start_after:
            params.append(("start-after", start_after))
        _, body = await self._send("GET", None, params=params)
        return body

    @staticmethod
    def _contents(root: ET.Element, ns: str) -> list[ObjectMeta]:
        entries = [
            (item.findtext(f"{ns}Key") or "", int(item.findtext(f"{ns}Size") or 0),
             item.findtext(f"{ns}LastModified") or "", item.findtext(f"{ns}ETag"))
            for item in root.iterfind(f"{ns}Contents")
        ]  # fmt: skip
        return _metas(entries)

    @staticmethod
    def _page(body: bytes) -> tuple[list[ObjectMeta], str | None]:
        try:
            entries, token, truncated = _parse_listing(body)
        except ValueError:
            root = ET.fromstring(body)
            ns = _ns(root)
            token = root.findtext(f"{ns}NextContinuationToken")
            truncated = root.findtext(f"{ns}IsTruncated") == "true"
            return S3Store._contents(root, ns), token if truncated else None
        return _metas(entries), token if truncated else None

    def _pages(
        self, prefix: str, start_after: str | None, delimiter: bool
    ) -> AsyncGenerator[bytes, None]:
        """The bodies of a listing's pages, each next one requested ahead."""

        def fetch(token: str | None) -> Awaitable[bytes]:
            return self._list_body(prefix, token, None if token else start_after, delimiter)

        return pages_ahead(fetch, _continuation)

    async def _list(
        self, prefix: Path, offset: Path | None
    ) -> AsyncGenerator[list[ObjectMeta], None]:
        async with contextlib.aclosing(
            self._pages(f"{prefix}/" if prefix else "", offset, False)
        ) as pages:
            async for body in pages:
                page, _ = self._page(body)
                if page:
                    yield page

    async def _list_with_delimiter(self, prefix: Path) -> ListResult:
        prefixes: list[str] = []
        objects: list[ObjectMeta] = []
        async with contextlib.aclosing(
            self._pages(f"{prefix}/" if prefix else "", None, True)
        ) as pages:
            async for body in pages:
                objects.extend(self._page(body)[0])
                prefixes.extend(p for p in _common_prefixes(body) if p)
        return ListResult(common_prefixes=prefixes, objects=objects)

    # ---- writes ---------------------------------------------------------------------------

    async def _put(self, key: Path, data: bytes, options: PutOptions) -> PutResult:
        headers = self._write_headers(options)
        headers.update(self._mode_headers(options.mode))
        if self._checksum is not None:
            headers[self._checksum.header] = self._checksum.value(data)
        elif self._content_md5:
            headers["Content-MD5"] = await content_md5(data)
        if options.mode == "overwrite":
            response, _ = await self._send("PUT", key, headers=headers, body=data)
            return make_put_result(response.headers.get("ETag"), _version(response.headers))
        token = write_token(key)  # no version named: S3 ETags are content hashes, which recur
        headers[_META_PREFIX + WRITE_TOKEN] = token

        async def once() -> PutResult:
            response, _ = await self._send(
                "PUT", key, headers=headers, body=data, idempotent=False,
                create_mode=options.mode == "create", conditional=True,
            )  # fmt: skip
            return make_put_result(response.headers.get("ETag"), _version(response.headers))

        return await reconciled(self._retry, once, partial(self._carried, key), token)

    async def _carried(self, key: Path) -> Carried | None:
        """The write token the object carries and its identity (``None``: cannot tell)."""
        try:
            response, _ = await self._send("HEAD", key, headers=self._sse_c or None)
        except ObjstoreError:  # cannot tell: the caller raises the write's own error
            return None
        identity = make_put_result(response.headers.get("ETag"), _version(response.headers))
        return response.headers.get(_META_PREFIX + WRITE_TOKEN), identity

    async def _delete_one(self, key: Path, version: str | None = None) -> None:
        """Delete one object (or its ``version``); a missing object is fine (some S3 servers
        answer 404 for it), a missing bucket is not."""
        params = [("versionId", version)] if version is not None else []
        response, body = await self._send("DELETE", key, params=params, ok=(200, 204, 404))
        raise_if_bucket_missing(response, body, key, _error)

    async def _delete(self, keys: Sequence[Path]) -> dict[Path, ObjstoreError]:
        if not self._bulk_delete or len(keys) == 1:
            return await delete_each(keys, self._delete_one, 16)
        body = (
            "<Delete><Quiet>true</Quiet>"
            + "".join(f"<Object><Key>{escape(k)}</Key></Object>" for k in keys)
            + "</Delete>"
        ).encode()
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        _, response = await self._send(
            "POST",
            None,
            params=[("delete", "")],
            body=body,
            headers={"Content-MD5": md5, "Content-Type": "application/xml"},
        )
        root = ET.fromstring(response)
        ns = _ns(root)
        by_key = {str(k): k for k in keys}
        out: dict[Path, ObjstoreError] = {}
        for item in root.iterfind(f"{ns}Error"):
            key = item.findtext(f"{ns}Key") or ""
            code = item.findtext(f"{ns}Code") or ""
            if code == "NoSuchKey" or key not in by_key:
                continue
            cls = _CODE_ERRORS.get(code, ObjstoreError)
            out[by_key[key]] = cls(
                f"S3 {code} deleting {key!r}: {item.findtext(f'{ns}Message')}", path=key, code=code
            )
        return out

    def _copy_source(self, src: str, version: str | None) -> str:
        source = f"/{encode_path(self._bucket)}/{encode_path(src)}"
        return f"{source}?versionId={quote(version, safe='')}" if version else source

    async def _copy(
        self, src: Path, dst: Path, overwrite: bool, version: str | None = None
    ) -> None:
        # a CopyObject without the store's encryption gets the bucket's default instead
        headers = {"x-amz-copy-source": self._copy_source(src, version), **self._copy_keys,
                   **self._sse}  # fmt: skip
        if not overwrite:
            if self._copy_mode == "multipart":
                await self._copy_in_parts(src, dst, create=True, version=version)
                return
            name, value, expected = _copy_header(self._copy_mode)
            # the copy carries a write token of its own, so that a retry that finds the
            # destination can tell this copy from another writer's
            token = write_token(dst)
            headers.update(await self._copy_headers(src, version, token))
            headers[name] = value

            async def once() -> None:
                try:
                    _, body = await self._send("PUT", dst, headers=headers, idempotent=False)
                except TransientError:
                    raise
                except ObjstoreError as exc:
                    if exc.status == expected:
                        raise AlreadyExistsError(
                            f"{dst!r} already exists", path=dst, status=exc.status, code=exc.code
                        ) from exc
                    raise self._source_error(exc, src, version) from None
                _raise_embedded_error(body, dst)

            try:
                await copied_if_absent(self._retry, once, partial(self._copy_carried, dst), token)
            except AlreadyExistsError as exc:
                # a source that changed since its attributes were read fails the copy with 412
                # as well: then the destination is not there
                if exc.status != 412 or await still_there(partial(self._head, dst)):
                    raise
                raise source_changed(src, exc) from None
            return
        try:
            _, body = await self._send("PUT", dst, headers=headers)
        except NotFoundError as exc:
            raise self._source_error(exc, src, version) from None
        except InvalidRequestError as exc:
            if _COPY_TOO_LARGE not in str(exc):
                raise
            await self._copy_in_parts(src, dst, create=False, version=version)
            return
        _raise_embedded_error(body, dst)

    async def _copy_headers(self, src: Path, version: str | None, token: str) -> dict[str, str]:
        """The headers that make a CopyObject carry ``token``: the source's attributes with
        the token in place of its own (metadata replaced, not copied), pinned to the
        source's ETag so that they belong together."""
        try:
            source = await self._get(src, GetOptions(head=True, version=version))
        except NotFoundError as exc:
            raise self._source_error(exc, src, version) from None
        headers = self._write_headers(PutOptions(attributes=source.attributes))
        headers[_META_PREFIX + WRITE_TOKEN] = token
        headers["x-amz-metadata-directive"] = "REPLACE"
        if source.meta.e_tag:
            headers["x-amz-copy-source-if-match"] = source.meta.e_tag
        return headers

    async def _copy_carried(self, dst: Path) -> tuple[str | None, None] | None:
        """The write token ``dst`` carries (``None``: cannot tell)."""
        seen = await self._carried(dst)
        return None if seen is None else (seen[0], None)

    @staticmethod
    def _source_error(exc: ObjstoreError, src: str, version: str | None) -> ObjstoreError:
        if isinstance(exc, NotFoundError) and not isinstance(exc, BucketNotFoundError):
            if version:
                return missing_version(src, version, status=exc.status, code=exc.code)
            return NotFoundError(
                f"object {src!r} not found", path=src, status=exc.status, code=exc.code
            )
        return exc

    async def _copy_in_parts(
        self, src: Path, dst: Path, *, create: bool, version: str | None = None
    ) -> None:
        """Copy ``src`` as a multipart upload of UploadPartCopy parts of at most
        ``copy_part_limit``, with its attributes and tags: copy-if-not-exists (completed with
        ``If-None-Match: *``), and objects CopyObject refuses (over 5 GiB). Every part is
        pinned to the ETag the attributes were read with."""
        try:
            source = await self._get(src, GetOptions(head=True, version=version))
        except NotFoundError as exc:
            raise self._source_error(exc, src, version) from None
        tags = await self._tags_to_copy(src, version)
        options = PutOptions(mode="create" if create else "overwrite",
                             attributes=source.attributes, tags=tags)  # fmt: skip
        if source.meta.size == 0:  # nothing to copy: one PUT (SeaweedFS's part copy of an
            await self._put(dst, b"", options)  # empty object with a customer key is no part)
            return
        upload = await self._create_multipart(dst, options)
        assert isinstance(upload, _S3Upload)
        size, limit = source.meta.size, self.copy_part_limit
        ranges = [(start, min(size, start + limit)) for start in range(0, max(size, 1), limit)]

        refused: list[NotSupportedError] = []  # the server cannot copy parts

        async def copy_part(index: int, start: int, end: int) -> None:
            headers = {"x-amz-copy-source": self._copy_source(src, version), **self._copy_keys}
            if source.meta.e_tag:
                headers["x-amz-copy-source-if-match"] = source.meta.e_tag
            if len(ranges) > 1:
                headers["x-amz-copy-source-range"] = f"bytes={start}-{end - 1}"
            try:
                _, body = await self._send("PUT", dst, params=upload.params(index), headers=headers)
            except PreconditionFailedError as exc:
                raise source_changed(src, exc) from None
            except NotSupportedError as exc:
                refused.append(exc)
                raise
            root = ET.fromstring(body)
            upload.etags[index] = root.findtext(f"{_ns(root)}ETag") or ""
            if self._checksum is not None:  # the upload declared one: its parts carry theirs
                found = root.findtext(f"{_ns(root)}{self._checksum.element}")
                if found:
                    upload.checksums[index] = found

        try:
            parts = [copy_part(i, start, end) for i, (start, end) in enumerate(ranges)]
            await gather_bounded(parts, self.part_concurrency)
            await upload.complete()
        except BaseException as exc:
            await upload.abort()
            if not refused or not isinstance(exc, NotSupportedError):
                raise
        else:
            return
        logger.debug("the server cannot copy parts (%s): %r goes through the client", refused[0],
                     src)  # fmt: skip
        try:
            await copy_through_client(self, src, dst, create=create, version=version)
        except NotFoundError as exc:
            raise self._source_error(exc, src, version) from None

    async def _create_multipart(self, key: Path, options: PutOptions) -> MultipartUpload:
        self._mode_headers(options.mode)
        headers = self._write_headers(options)
        # every upload carries its token: a complete whose reply is lost comes back
        # NoSuchUpload when retried (AWS), overwrite or not, and the token tells it succeeded
        token = write_token(key)
        headers[_META_PREFIX + WRITE_TOKEN] = token
        if self._checksum is not None:
            headers.update(self._checksum.upload_headers())
        _, body = await self._send("POST", key, params=[("uploads", "")], headers=headers)
        root = ET.fromstring(body)
        upload_id = root.findtext(f"{_ns(root)}UploadId")
        if not upload_id:
            raise MultipartUploadError(f"S3 returned no upload id for {key!r}", path=key)
        return _S3Upload(self, key, upload_id, options, token)

    # ---- uploads left by writers that died -------------------------------------------------

    def _list_versions(self, prefix: Path) -> AsyncGenerator[list[ObjectVersion], None]:
        return self._version_pages(f"{prefix}/" if prefix else "")

    async def _version_pages(self, prefix: str) -> AsyncGenerator[list[ObjectVersion], None]:
        """The ListObjectVersions pages of the keys starting with ``prefix``."""
        params = [("versions", ""), ("max-keys", "1000"), ("prefix", prefix)]
        async with contextlib.aclosing(self._marked_pages(params, _parse_versions)) as pages:
            async for _, versions in pages:
                if versions:
                    yield versions

    async def _delete_version(self, key: Path, version: str) -> None:
        """DeleteObject of one version, once the key's version listing shows it: a server
        that keeps no versions may ignore ``versionId`` and delete the current object
        (SeaweedFS on an unversioned bucket does), and a HEAD cannot confirm a delete marker
        (AWS answers 405, SeaweedFS 404)."""
        if await lists_version(self._version_pages(key), key, version, "null"):
            await self._delete_one(key, version)

    async def _list_incomplete(
        self, prefix: Path
    ) -> AsyncGenerator[tuple[list[IncompleteUpload], float], None]:
        params = [("uploads", ""), ("prefix", f"{prefix}/" if prefix else "")]
        async with contextlib.aclosing(self._marked_pages(params, _parse_uploads)) as pages:
            async for response, uploads in pages:
                yield uploads, reply_time(response.headers, self._clock.now())

    async def _marked_pages(
        self, params: list[tuple[str, str]], parse: Callable[[bytes], tuple[T, Markers]]
    ) -> AsyncGenerator[tuple[aiohttp.ClientResponse, T], None]:
        """The pages of a listing continued by markers (ListObjectVersions,
        ListMultipartUploads), each parsed, with its response; ``parse`` gives a page and
        the markers of the next (none on the last)."""
        markers: Markers = []
        while True:
            response, body = await self._send("GET", None, params=params + markers)
            page, after = parse(body)
            yield response, page
            if not after or after == markers:  # the last page, or a server going round
                return
            markers = after

    async def _discard_incomplete(self, upload: IncompleteUpload) -> bool:
        response, _ = await self._send(
            "DELETE", upload.location, params=[("uploadId", upload.upload_id)],
            ok=(200, 204, 404),
        )  # fmt: skip
        return response.status != 404

    async def _sign(self, key: Path, method: str, expires_in: int) -> str:
        credentials = await self._source.get()
        if credentials is None:
            raise UnauthenticatedError("signed URLs need S3 credentials", path=key)
        path = self._path(key)
        # who fetches the URL sends no headers of ours: a requester-pays bucket learns that
        # the requester accepts the charge from the (signed) query instead
        payer = self._fixed_headers.get("x-amz-request-payer")
        query = self._signer.presign(
            method,
            self._host,
            path,
            params=[("x-amz-request-payer", payer)] if payer else [],
            credentials=credentials,
            expires_in=expires_in,
            now=self._clock.now(),
            # S3 wants a customer key's headers signed: whoever uses the URL must send them
            headers=self._sse_c,
        )
        return f"{self._scheme}://{self._host}{path}?{query}"


def _profile_region(profile: str | None) -> str | None:
    """The region of a profile in ~/.aws/config (read by botocore; no network)."""
    import botocore.session

    try:
        region = botocore.session.Session(profile=profile).get_config_variable("region")
    except Exception:  # a missing or broken profile just has no region here
        return None
    return str(region) if region else None


def _copy_header(mode: str) -> tuple[str, str, int]:
    """Split ``header:<name>:<value>`` / ``header-with-status:<name>:<value>:<status>``."""
    kind, _, rest = mode.partition(":")
    name, _, value = rest.partition(":")
    if kind == "header-with-status":
        value, _, status = value.rpartition(":")
        return name, value, int(status)
    return name, value, 412


def _parse_uploads(body: bytes) -> tuple[list[IncompleteUpload], Markers]:
    """The uploads of a ListMultipartUploads page, and the markers of the next page (none
    on the last)."""
    root = ET.fromstring(body)
    ns = _ns(root)
    uploads = [
        IncompleteUpload(
            location=item.findtext(f"{ns}Key") or "",
            upload_id=item.findtext(f"{ns}UploadId") or "",
            initiated=parse_iso_time(item.findtext(f"{ns}Initiated")),
        )
        for item in root.iterfind(f"{ns}Upload")
    ]
    if root.findtext(f"{ns}IsTruncated") != "true":
        return uploads, []
    key_marker = root.findtext(f"{ns}NextKeyMarker") or (uploads[-1].location if uploads else "")
    id_marker = root.findtext(f"{ns}NextUploadIdMarker") or (
        uploads[-1].upload_id if uploads else ""
    )
    if not key_marker:
        return uploads, []
    return uploads, [("key-marker", key_marker), ("upload-id-marker", id_marker)]


def _parse_versions(body: bytes) -> tuple[list[ObjectVersion], Markers]:
    """The versions and delete markers of a ListObjectVersions page, in the order listed, and
    the markers of the next page (none on the last). The latest version's id ``null`` (an
    object written while versioning was off) is ``None``, as ``head`` gives it; an older
    one keeps ``null``, which reads it."""
    root = ET.fromstring(body)
    ns = _ns(root)
    out: list[ObjectVersion] = []
    for item in root:
        deleted = item.tag == f"{ns}DeleteMarker"
        if not deleted and item.tag != f"{ns}Version":
            continue
        key = item.findtext(f"{ns}Key") or ""
        if not listable(key, logger):
            continue
        latest = item.findtext(f"{ns}IsLatest") == "true"
        version = item.findtext(f"{ns}VersionId") or None
        out.append(
            ObjectVersion(
                location=key,
                version=None if latest and version == "null" else version,
                last_modified=parse_iso_time(item.findtext(f"{ns}LastModified")),
                size=int(item.findtext(f"{ns}Size") or 0),
                e_tag=None if deleted else item.findtext(f"{ns}ETag"),
                is_latest=latest,
                deleted=deleted,
            )
        )
    key_marker = root.findtext(f"{ns}NextKeyMarker")
    if root.findtext(f"{ns}IsTruncated") != "true" or not key_marker:
        return out, []
    version_marker = root.findtext(f"{ns}NextVersionIdMarker") or ""
    return out, [("key-marker", key_marker), ("version-id-marker", version_marker)]


def _raise_embedded_error(body: bytes, key: str) -> None:
    """Raise the error S3 may send with a 200 status (copy, complete multipart upload)."""
    if b"<Error>" in body[:512]:
        raise _error(500, body, {}, key)


class _S3Upload(MultipartUpload):
    def __init__(
        self, store: S3Store, key: Path, upload_id: str, options: PutOptions, token: str
    ) -> None:
        self._store = store
        self._key = key
        self._id = upload_id
        self._options = options
        self._token = token
        self.etags: dict[int, str] = {}
        self.checksums: dict[int, str] = {}

    def params(self, index: int) -> list[tuple[str, str]]:
        return [("partNumber", str(index + 1)), ("uploadId", self._id)]

    async def put_part(self, index: int, offset: int, data: bytes) -> None:
        headers = self._store._sse_c
        checksum = self._store._checksum
        if checksum is not None:
            self.checksums[index] = checksum.value(data)
            headers = {**headers, checksum.header: self.checksums[index]}
        elif self._store._content_md5:
            headers = {**headers, "Content-MD5": await content_md5(data)}
        response, _ = await self._store._send(
            "PUT", self._key, params=self.params(index), body=data, headers=headers
        )
        self.etags[index] = response.headers.get("ETag", "")

    async def complete(self) -> PutResult:
        parts = "".join(
            f"<Part><PartNumber>{i + 1}</PartNumber><ETag>{escape(self.etags[i])}</ETag>"
            f"{self._checksum_element(i)}</Part>"
            for i in sorted(self.etags)
        )
        body = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
        headers = {
            "Content-Type": "application/xml",
            **self._store._mode_headers(self._options.mode),
        }
        mode = self._options.mode

        async def once() -> PutResult:
            response, data = await self._store._send(
                "POST", self._key, params=[("uploadId", self._id)], body=body, headers=headers,
                idempotent=False, create_mode=mode == "create", conditional=mode != "overwrite",
            )  # fmt: skip
            _raise_embedded_error(data, self._key)
            root = ET.fromstring(data) if data.strip() else None
            e_tag = root.findtext(f"{_ns(root)}ETag") if root is not None else None
            return make_put_result(
                e_tag or response.headers.get("ETag"), _version(response.headers)
            )

        try:
            store = self._store
            return await reconciled(
                store._retry, once, partial(store._carried, self._key), self._token
            )
        except ObjstoreError:
            await self.abort()
            raise

    def _checksum_element(self, index: int) -> str:
        checksum, value = self._store._checksum, self.checksums.get(index)
        if checksum is None or value is None:
            return ""
        return f"<{checksum.element}>{value}</{checksum.element}>"

    async def abort(self) -> None:
        with contextlib.suppress(MultipartUploadError):
            await self._store._send(
                "DELETE", self._key, params=[("uploadId", self._id)], ok=(200, 204, 404)
            )
