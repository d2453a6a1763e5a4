"""S3 configuration keys (object_store's names, aliases and environment variables) and URLs."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from objstore._config import (
    COMMON_KEYS,
    ConfigKey,
    ConfigTable,
    cloud_client_keys,
    parse_bool,
    parse_choice,
)
from objstore._errors import ConfigError, InvalidURLError
from objstore._path import prefix_from_url

if TYPE_CHECKING:
    from urllib.parse import SplitResult

    from objstore._config import Config

__all__ = ["S3_TABLE", "parse_s3_url", "resolve_endpoint"]


def _copy_if_not_exists(value: object) -> str:
    text = str(value).strip()
    if (
        text == "multipart"
        or re.fullmatch(r"header:[^:]+:.+", text)
        or re.fullmatch(r"header-with-status:[^:]+:[^:]+:\d{3}", text)
    ):
        return text
    raise ValueError(
        "expected 'multipart', 'header:<name>:<value>' or "
        "'header-with-status:<name>:<value>:<status>'"
    )


def _request_payer(value: object) -> bool:
    text = str(value).strip().lower()
    return text == "requester" or parse_bool(text)


def _sse(value: object) -> str:
    text = str(value).strip().lower()
    if text not in ("aes256", "aws:kms", "aws:kms:dsse", "sse-c"):
        raise ValueError("expected AES256, aws:kms, aws:kms:dsse or sse-c")
    return "AES256" if text == "aes256" else text


def _key(name: str, *aliases: str, env: tuple[str, ...] = (), **kw: Any) -> ConfigKey:
    return ConfigKey(name, aliases=aliases, env=env or (name.upper(),), **kw)


_AWS_KEYS = (
    _key("aws_access_key_id", "access_key_id", credential=True,
         doc="Static credentials (with the secret)."),
    _key("aws_secret_access_key", "secret_access_key", secret=True),
    _key("aws_session_token", "aws_token", "session_token", "token",
         env=("AWS_SESSION_TOKEN", "AWS_TOKEN"), secret=True),
    _key("aws_region", "region", doc="Required unless a custom endpoint is set (then us-east-1)."),
    _key("aws_default_region", "default_region"),
    _key("aws_bucket", "aws_bucket_name", "bucket", "bucket_name",
         env=("AWS_BUCKET", "AWS_BUCKET_NAME")),
    _key("aws_endpoint", "aws_endpoint_url", "endpoint", "endpoint_url",
         env=("AWS_ENDPOINT", "AWS_ENDPOINT_URL"), doc="S3-compatible servers (MinIO, R2 ...)."),
    _key("aws_endpoint_url_s3", doc="Takes precedence over aws_endpoint."),
    _key("aws_virtual_hosted_style_request", "virtual_hosted_style_request", parse=parse_bool,
         default=False, doc="Address buckets as <bucket>.<host> instead of <host>/<bucket>."),
    _key("aws_s3_express", "s3_express", parse=parse_bool, default=False,
         doc="Accepted; S3 Express One Zone sessions come with the credentials work."),
    _key("aws_imdsv1_fallback", "imdsv1_fallback", parse=parse_bool, default=False),
    _key("aws_metadata_endpoint", "metadata_endpoint"),
    _key("aws_container_credentials_relative_uri", "container_credentials_relative_uri"),
    _key("aws_container_credentials_full_uri", "container_credentials_full_uri"),
    _key("aws_container_authorization_token_file", "container_authorization_token_file"),
    _key("aws_web_identity_token_file", "web_identity_token_file"),
    _key("aws_role_arn", "role_arn"),
    _key("aws_role_session_name", "role_session_name"),
    _key("aws_endpoint_url_sts", "endpoint_url_sts"),
    _key("aws_unsigned_payload", "unsigned_payload", parse=parse_bool, default=False,
         doc="Send UNSIGNED-PAYLOAD instead of hashing request bodies."),
    _key("aws_checksum_algorithm", "checksum_algorithm", parse=parse_choice("sha256", "crc64nvme"),
         doc="`sha256` or `crc64nvme`: a checksum the server verifies on every PUT and part."),
    _key("aws_skip_signature", "skip_signature", parse=parse_bool, default=False,
         doc="Anonymous requests."),
    _key("aws_copy_if_not_exists", "copy_if_not_exists", parse=_copy_if_not_exists,
         default="multipart", doc="How copy-if-not-exists is done."),
    _key("aws_conditional_put", "conditional_put", parse=parse_choice("etag", "disabled"),
         default="etag", doc="Conditional writes by ETag (If-None-Match / If-Match)."),
    _key("aws_disable_tagging", "disable_tagging", parse=parse_bool, default=False),
    _key("aws_disable_bulk_delete", "disable_bulk_delete", parse=parse_bool, default=False,
         doc="One DELETE per key (for servers without DeleteObjects)."),
    _key("aws_request_payer", "request_payer", parse=_request_payer, default=False,
         doc="`true` or `requester`: requester-pays buckets."),
    _key("aws_server_side_encryption", "server_side_encryption", parse=_sse,
         doc="AES256, aws:kms, aws:kms:dsse or sse-c."),
    _key("aws_sse_kms_key_id", "sse_kms_key_id"),
    _key("aws_sse_bucket_key_enabled", "sse_bucket_key_enabled", parse=parse_bool),
    _key("aws_sse_customer_key_base64", "sse_customer_key_base64", secret=True,
         doc="SSE-C key, base64."),
    _key("aws_profile", "profile", doc="Named profile of ~/.aws/config (credentials work)."),
)  # fmt: skip

_CLIENT = cloud_client_keys("aws")

S3_TABLE = ConfigTable("s3", (*COMMON_KEYS, *_AWS_KEYS, *_CLIENT), env_prefix="AWS_")

_AWS_HOST = re.compile(r"^(?:(?P<vbucket>.+)\.)?s3(?:[.-](?P<region>[a-z0-9-]+))?\.amazonaws\.com$")
_R2_HOST = re.compile(r"^[a-z0-9]+\.r2\.cloudflarestorage\.com$")


def parse_s3_url(url: SplitResult) -> tuple[str, str, dict[str, Any]]:
    """Return ``(bucket, prefix, url_values)`` for every S3 URL form.

    Raises:
        InvalidURLError: no bucket, or a host that is not S3's.
    """
    scheme = url.scheme.lower()
    path = prefix_from_url(url.path)
    values: dict[str, Any] = {}
    if scheme in ("s3", "s3a"):
        bucket, prefix = url.netloc, path
    else:
        host = (url.hostname or "").lower()
        aws = _AWS_HOST.match(host)
        if aws and aws.group("vbucket"):
            bucket, prefix = aws.group("vbucket"), path
            values["aws_virtual_hosted_style_request"] = "true"
        elif aws or _R2_HOST.match(host):
            bucket, _, prefix = path.partition("/")
            if _R2_HOST.match(host):
                values["aws_endpoint"] = f"https://{host}"
        else:
            raise InvalidURLError(f"not an S3 URL: {url.geturl()!r}")
        if aws and aws.group("region") and aws.group("region") not in ("external-1",):
            values["aws_region"] = aws.group("region")
    if not bucket:
        raise InvalidURLError(f"S3 URL {url.geturl()!r} names no bucket")
    _check_bucket(bucket)
    values["aws_bucket"] = bucket
    return bucket, prefix, values


def _check_bucket(bucket: str) -> None:
    if not re.fullmatch(r"[a-z0-9][a-z0-9.\-_]{1,254}[a-z0-9]", bucket):
        raise InvalidURLError(
            f"invalid bucket name {bucket!r}: 3-63 lowercase letters, digits, '.' and '-'"
        )


def resolve_endpoint(
    config: Config, profile_region: Callable[[str | None], str | None] | None = None
) -> tuple[str, str, bool]:
    """Return ``(endpoint_base, region, virtual_hosted)`` from a resolved S3 configuration.

    Raises:
        ConfigError: no region for AWS, an ``http://`` endpoint without ``allow_http``.
    """
    endpoint = config.get("aws_endpoint_url_s3") or config.get("aws_endpoint")
    region = config.get("aws_region") or config.get("aws_default_region")
    if not region and not endpoint and profile_region is not None:
        region = profile_region(config.get("aws_profile"))
    if not region:
        if not endpoint:
            raise ConfigError(
                "S3 needs a region: set 'aws_region' or 'aws_default_region' "
                "(or AWS_REGION / AWS_DEFAULT_REGION, or a region in the profile)"
            )
        region = "us-east-1"
    virtual = bool(config.get("aws_virtual_hosted_style_request"))
    if not endpoint:
        endpoint = f"https://s3.{region}.amazonaws.com"
    endpoint = str(endpoint).rstrip("/")
    if endpoint.startswith("http://") and not config.get("allow_http"):
        raise ConfigError(
            f"endpoint {endpoint!r} is plain HTTP: set 'allow_http' (AWS_ALLOW_HTTP) to allow it"
        )
    if not endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"endpoint {endpoint!r} must start with http:// or https://")
    return endpoint, str(region), virtual
