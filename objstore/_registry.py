"""URL scheme and host to backend, ``from_url``, and lazy backend imports with install hints."""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from objstore._errors import InvalidURLError, MissingDependencyError, NotSupportedError
from objstore._record import record

if TYPE_CHECKING:
    from urllib.parse import SplitResult

    from objstore._store import ObjectStore

__all__ = ["BACKENDS", "SCHEMES", "backend_for_url", "from_url", "load_backend"]


@record(kw_only=False)
class Backend:
    """Where a backend's class lives and what it needs installed."""

    name: str
    module: str
    cls: str
    extra: str | None = None
    requires: tuple[str, ...] = ()


BACKENDS: dict[str, Backend] = {
    "memory": Backend("memory", "objstore.backends.memory", "MemoryStore"),
    "local": Backend("local", "objstore.backends.local", "LocalStore"),
    "s3": Backend("s3", "objstore.backends.s3", "S3Store", "s3", ("aiobotocore", "aiohttp")),
    "gcs": Backend(
        "gcs", "objstore.backends.gcs", "GCSStore", "gcs", ("gcloud.aio.auth", "aiohttp")
    ),
    "azure": Backend(
        "azure",
        "objstore.backends.azure",
        "AzureStore",
        "azure",
        ("azure.storage.blob", "azure.identity", "aiohttp"),
    ),
}

SCHEMES: dict[str, str] = {
    "memory": "memory",
    "file": "local",
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "azure": "azure",
    "adl": "azure",
    "abfs": "azure",
    "abfss": "azure",
}

HTTPS_HOSTS: tuple[tuple[str, str], ...] = (
    (r"(^|\.)amazonaws\.com$", "s3"),
    (r"\.r2\.cloudflarestorage\.com$", "s3"),
    (r"^storage\.googleapis\.com$", "gcs"),
    (r"^storage\.cloud\.google\.com$", "gcs"),
    (r"\.(blob|dfs)\.core\.windows\.net$", "azure"),
    (r"\.(blob|dfs)\.fabric\.microsoft\.com$", "azure"),
)

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


def _redact(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    return parts._replace(netloc=f"***@{host}").geturl()


def _mistyped_url(path: str) -> str:
    """``path`` as given, unless it is a store URL with a slash or the colon missing
    (``s3:/bucket``, ``memory:``, ``gs//bucket``), which would otherwise become a local
    directory named after the scheme in the working directory. RFC 8089's ``file:/path``
    is a file URL.

    Raises:
        InvalidURLError: a known scheme without its ``://``.
    """
    scheme, colon, rest = path.partition(":")
    if not colon:
        scheme, slashes, rest = path.partition("//")
        if not slashes:
            return path
    known = scheme.lower()
    if colon and known == "file" and rest.startswith("/"):
        return f"file://{rest}"
    if known in SCHEMES or known in ("http", "https"):
        raise InvalidURLError(
            f"{_redact(path)!r} is a {known}:// URL with its '://' mistyped: write "
            f"'{known}://{rest.lstrip('/')}' (or './{path}' for a local path)"
        )
    return path


def backend_for_url(url: str) -> tuple[str, SplitResult]:
    """Return the backend name a URL (or a plain local path) is served by.

    Raises:
        InvalidURLError: the scheme or host is not known, or the URL is malformed.
    """
    from urllib.parse import SplitResult, urlsplit

    if not isinstance(url, str) or not url:
        raise InvalidURLError(f"a store URL must be a non-empty str, got {url!r}")
    if _WINDOWS_DRIVE.match(url):
        return "local", SplitResult("", "", url, "", "")
    if "://" not in url:
        url = _mistyped_url(url)
        if "://" not in url:
            return "local", SplitResult("", "", url, "", "")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (validates the port)
    except ValueError as exc:
        raise InvalidURLError(f"malformed store URL {_redact(url)!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if parts.password is not None:
        raise InvalidURLError(
            f"store URL {_redact(url)!r} carries credentials: pass them as options instead"
        )
    if scheme in SCHEMES:
        return SCHEMES[scheme], parts
    if scheme in ("http", "https"):
        host = (parts.hostname or "").lower()
        for pattern, backend in HTTPS_HOSTS:
            if re.search(pattern, host):
                return backend, parts
        raise InvalidURLError(
            f"cannot tell which service {_redact(url)!r} is: use an s3://, gs:// or az:// URL "
            "and give the endpoint as an option"
        )
    known = ", ".join(sorted(f"{s}://" for s in SCHEMES))
    raise InvalidURLError(f"unknown URL scheme {scheme!r} in {_redact(url)!r}; known: {known}")


def load_backend(name: str) -> type[ObjectStore]:
    """Import a backend's class.

    Raises:
        MissingDependencyError: the backend's extra is not installed (says what to install).
        NotSupportedError: this build of objstore has no such backend.
    """
    backend = BACKENDS[name]
    for dependency in backend.requires:
        try:
            # find_spec: present is enough (importing the Azure SDK alone takes ~0.4 s)
            found = importlib.util.find_spec(dependency) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise MissingDependencyError(
                f"the {name} backend needs {dependency!r}: pip install 'objstore[{backend.extra}]'"
            ) from None
    try:
        module = importlib.import_module(backend.module)
    except ModuleNotFoundError as exc:
        if exc.name != backend.module:
            raise
        raise NotSupportedError(
            f"this objstore build has no {name} backend yet", operation="from_url"
        ) from None
    cls: type[ObjectStore] = getattr(module, backend.cls)
    return cls


def from_url(
    url: str,
    options: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> ObjectStore:
    """Build a store from a URL (``s3://bucket/prefix``, ``memory://``, ``/abs/dir`` ...).

    Args:
        url: the store's URL; its path becomes the store's prefix.
        options: configuration keys (see the README's tables); keyword arguments add more.

    Raises:
        InvalidURLError, UnknownOptionError, ConfigError, MissingDependencyError.
    """
    merged = {**(options or {}), **kwargs}
    name, parts = backend_for_url(url)
    cls = load_backend(name)
    factory = cls._from_url  # type: ignore[attr-defined]
    store: ObjectStore = factory(parts, merged, os.environ)
    return store
