"""Where a GCS request's ``Authorization`` header comes from: nothing, a static bearer token,
gcloud-aio-auth (service accounts, application-default credentials), or the metadata server.

The metadata server is asked here rather than through gcloud-aio-auth, which fixes its address
when it is imported (``GCE_METADATA_HOST``); a store reads the variable when it is built.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from objstore._errors import UnauthenticatedError

__all__ = [
    "SCOPE",
    "BearerSource",
    "GcloudAuthSource",
    "MetadataServerSource",
    "TokenSource",
    "well_known_adc_file",
]

SCOPE = "https://www.googleapis.com/auth/devstorage.full_control"
REFRESH_MARGIN = 300.0
"""Seconds before a metadata-server token expires at which it is fetched anew."""


class TokenSource:
    """Anonymous requests (the base of the sources)."""

    description: str = "anonymous"

    async def headers(self, session: aiohttp.ClientSession) -> dict[str, str]:
        return {}


class BearerSource(TokenSource):
    description = "static bearer token"

    def __init__(self, token: str) -> None:
        self._header = {"Authorization": f"Bearer {token}"}

    async def headers(self, session: aiohttp.ClientSession) -> dict[str, str]:
        return self._header


class GcloudAuthSource(TokenSource):
    """OAuth tokens from gcloud-aio-auth: a service-account file or JSON, or an
    application-default credentials file (refreshed before they expire)."""

    def __init__(self, service_file: str | None, service_json: str | None) -> None:
        self.description = "service account" if service_file or service_json else "gcloud-aio-auth"
        self._file = service_file
        self._json = service_json
        self._tokens: dict[int, Any] = {}

    async def headers(self, session: aiohttp.ClientSession) -> dict[str, str]:
        token = self._tokens.get(id(session))
        if token is None:
            from gcloud.aio.auth import Token

            source: Any = io.StringIO(self._json) if self._json else self._file
            token = Token(service_file=source, session=session, scopes=[SCOPE])  # type: ignore[arg-type]
            self._tokens = {id(session): token}
        try:
            value = await token.get()
        except Exception as exc:  # gcloud-aio-auth raises aiohttp's, ValueError, KeyError ...
            status = getattr(exc, "status", None)
            raise UnauthenticatedError(
                f"no GCS token from {self.description}: {type(exc).__name__}"
                + (f" (HTTP {status})" if status else ""),
                status=status,
            ) from None
        return {"Authorization": f"Bearer {value}"}


def well_known_adc_file(environ: Mapping[str, str]) -> str | None:
    """gcloud's application-default credentials file, if it exists."""
    root = environ.get("CLOUDSDK_CONFIG")
    if root is None:
        if os.name == "nt":
            root = os.path.join(environ.get("APPDATA", ""), "gcloud")
        else:
            root = os.path.join(os.path.expanduser("~"), ".config", "gcloud")
    path = os.path.join(root, "application_default_credentials.json")
    return path if os.path.isfile(path) else None


class MetadataServerSource(TokenSource):
    """Tokens of the instance's service account from the GCE metadata server
    (``GCE_METADATA_HOST`` or ``GCE_METADATA_ROOT``, else ``metadata.google.internal``)."""

    description = "metadata server"

    def __init__(self, environ: Mapping[str, str], *, tried: str = "") -> None:
        self._tried = tried
        host = environ.get("GCE_METADATA_HOST") or environ.get(
            "GCE_METADATA_ROOT", "metadata.google.internal"
        )
        self.url = f"http://{host}/computeMetadata/v1/instance/service-accounts/default/token"
        self._token: str | None = None
        self._expires = 0.0

    async def headers(self, session: aiohttp.ClientSession) -> dict[str, str]:
        if self._token is None or time.time() >= self._expires - REFRESH_MARGIN:
            try:
                async with session.get(
                    self.url, headers={"Metadata-Flavor": "Google"}, allow_redirects=False
                ) as reply:
                    body = await reply.json(content_type=None)
                    if reply.status != 200:
                        raise UnauthenticatedError(
                            f"the metadata server answered {reply.status}{self._tried}",
                            status=reply.status,
                        )
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                raise UnauthenticatedError(
                    f"no token from the metadata server ({self.url}): {type(exc).__name__}"
                    f"{self._tried}"
                ) from None
            self._token = str(body["access_token"])
            self._expires = time.time() + float(body.get("expires_in", 0))
        return {"Authorization": f"Bearer {self._token}"}
