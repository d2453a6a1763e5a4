"""Google Cloud Storage configuration keys (object_store's names, aliases, environment) and URLs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from objstore._config import (
    COMMON_KEYS,
    ConfigKey,
    ConfigTable,
    cloud_client_keys,
    parse_bool,
)
from objstore._errors import ConfigError, InvalidURLError
from objstore._path import prefix_from_url

if TYPE_CHECKING:
    from urllib.parse import SplitResult

    from objstore._config import Config

__all__ = ["DEFAULT_BASE_URL", "GCS_TABLE", "parse_gcs_url", "resolve_base_url"]

DEFAULT_BASE_URL = "https://storage.googleapis.com"

_GOOGLE_KEYS = (
    ConfigKey("google_service_account",
              aliases=("service_account", "google_service_account_path", "service_account_path"),
              env=("GOOGLE_SERVICE_ACCOUNT", "GOOGLE_SERVICE_ACCOUNT_PATH", "SERVICE_ACCOUNT"),
              doc="Path to a service-account JSON file."),
    ConfigKey("google_service_account_key", aliases=("service_account_key",),
              env=("GOOGLE_SERVICE_ACCOUNT_KEY",), secret=True,
              doc="A service-account JSON document, as a string."),
    ConfigKey("google_bucket", aliases=("google_bucket_name", "bucket", "bucket_name"),
              env=("GOOGLE_BUCKET", "GOOGLE_BUCKET_NAME"), doc="The bucket (or in the URL)."),
    ConfigKey("google_base_url", aliases=("base_url",), env=("GOOGLE_BASE_URL",),
              doc="Service root, for emulators (also `STORAGE_EMULATOR_HOST`)."),
    ConfigKey("google_application_credentials", aliases=("application_credentials",),
              env=("GOOGLE_APPLICATION_CREDENTIALS",),
              doc="Application-default credentials file."),
    ConfigKey("google_bearer_token", aliases=("bearer_token",), env=("GOOGLE_BEARER_TOKEN",),
              secret=True, doc="A static OAuth token (never refreshed)."),
    ConfigKey("google_skip_signature", aliases=("skip_signature",),
              env=("GOOGLE_SKIP_SIGNATURE",), parse=parse_bool, default=False,
              doc="Send requests without credentials (public buckets, emulators)."),
)  # fmt: skip

_CLIENT = cloud_client_keys("google")

GCS_TABLE = ConfigTable("gcs", (*COMMON_KEYS, *_GOOGLE_KEYS, *_CLIENT), env_prefix="GOOGLE_")

_HOSTS = ("storage.googleapis.com", "storage.cloud.google.com")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9._\-]{1,220}[a-z0-9]")


def parse_gcs_url(url: SplitResult) -> tuple[str, str, dict[str, Any]]:
    """Return ``(bucket, prefix, url_values)`` for ``gs://``, ``gcs://`` and the https forms.

    Raises:
        InvalidURLError: no bucket, an invalid bucket name, or a host that is not GCS's.
    """
    scheme = url.scheme.lower()
    path = prefix_from_url(url.path)
    if scheme in ("gs", "gcs"):
        bucket, prefix = url.netloc, path
    elif (url.hostname or "").lower() in _HOSTS:
        bucket, _, prefix = path.partition("/")
    else:
        raise InvalidURLError(f"not a GCS URL: {url.geturl()!r}")
    if not bucket:
        raise InvalidURLError(f"GCS URL {url.geturl()!r} names no bucket")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise InvalidURLError(
            f"invalid bucket name {bucket!r}: 3-222 lowercase letters, digits, '.', '-', '_'"
        )
    return bucket, prefix, {"google_bucket": bucket}


def resolve_base_url(
    config: Config, environ: Mapping[str, str], account_base: str | None = None
) -> str:
    """The JSON API root: ``google_base_url``, else ``STORAGE_EMULATOR_HOST``, else the
    service account's ``gcs_base_url`` (object_store's emulator convention), else Google's.

    Raises:
        ConfigError: an ``http://`` root without ``allow_http`` (the emulator variable and a
            service account's base URL allow it).
    """
    base = config.get("google_base_url")
    implied = None
    if not base:
        emulator = environ.get("STORAGE_EMULATOR_HOST")
        if emulator:
            implied = emulator if "://" in emulator else f"http://{emulator}"
        else:
            implied = account_base
    base = str(base or implied or DEFAULT_BASE_URL).rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ConfigError(f"google_base_url {base!r} must start with http:// or https://")
    if base.startswith("http://") and not (config.get("allow_http") or implied):
        raise ConfigError(
            f"google_base_url {base!r} is plain HTTP: set 'allow_http' (GOOGLE_ALLOW_HTTP)"
        )
    return base
