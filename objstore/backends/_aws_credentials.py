"""Where S3 credentials come from: static keys, anonymous, or botocore's resolver chain.

A source answers ``await source.get()`` with the credentials to sign the next request (or
``None`` for anonymous requests) and says what it is in ``description``, without secrets.
botocore's chain (profiles, shared credentials and config files, ``credential_process``, SSO,
container and instance roles) does blocking file and network I/O, so it resolves in a worker
thread, and so do the refreshes it asks for.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from objstore._errors import UnauthenticatedError
from objstore.backends._sigv4 import Credentials

__all__ = ["AnonymousSource", "BotocoreSource", "CredentialSource", "StaticSource"]


class CredentialSource(Protocol):
    """Supplies the credentials of each request."""

    @property
    def description(self) -> str:
        """Which source this is (no secrets)."""
        ...

    async def get(self) -> Credentials | None:
        """Return the credentials to sign with, or ``None`` for anonymous requests."""
        ...


class StaticSource:
    """Keys given as options or environment variables."""

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials
        self.description = f"static keys ({credentials.access_key[:4]}…)"

    async def get(self) -> Credentials:
        return self._credentials


class AnonymousSource:
    """Unsigned requests (``aws_skip_signature``)."""

    description = "anonymous (aws_skip_signature)"

    async def get(self) -> None:
        return None


class BotocoreSource:
    """botocore's credential chain, for an optional named profile."""

    def __init__(self, profile: str | None) -> None:
        self._profile = profile
        self._resolved: Any = None
        self._frozen: tuple[Any, Credentials] | None = None
        self.description = f"botocore chain (profile {profile!r})" if profile else "botocore chain"

    def _resolve(self) -> Any:
        import botocore.session

        session = botocore.session.Session(profile=self._profile)
        try:
            credentials = session.get_credentials()
        except Exception as exc:  # botocore raises many kinds here; none may escape untyped
            raise UnauthenticatedError(
                f"no S3 credentials from {self.description}: {type(exc).__name__}"
            ) from None
        if credentials is None:
            raise UnauthenticatedError(
                "no S3 credentials: give aws_access_key_id and aws_secret_access_key, a profile "
                "(aws_profile), or aws_skip_signature for anonymous access; botocore's chain "
                "(environment, shared files, container and instance roles) found none"
            )
        self.description = f"botocore {credentials.method}" + (
            f" (profile {self._profile!r})" if self._profile else ""
        )
        return credentials

    async def get(self) -> Credentials:
        if self._resolved is None:
            self._resolved = await asyncio.to_thread(self._resolve)
        credentials = self._resolved
        refresh = getattr(credentials, "refresh_needed", None)
        if refresh is not None and refresh():
            frozen = await asyncio.to_thread(credentials.get_frozen_credentials)
        else:
            frozen = credentials.get_frozen_credentials()
        if self._frozen is None or self._frozen[0] is not frozen:
            self._frozen = (frozen, Credentials(frozen.access_key, frozen.secret_key, frozen.token))
        return self._frozen[1]
