"""Where S3 credentials come from: static keys, anonymous, or botocore's resolver chain.

A source answers ``await source.get()`` with the credentials to sign the next request (or
``None`` for anonymous requests) and says what it is in ``description``, without secrets.
botocore's chain (profiles, shared credentials and config files, ``credential_process``, SSO,
container and instance roles) does blocking file and network I/O, so it resolves in a worker
thread, and so do the refreshes it asks for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Protocol

from objstore._errors import UnauthenticatedError
from objstore.backends._sigv4 import Credentials

__all__ = ["CHAIN_KEYS", "AnonymousSource", "BotocoreSource", "CredentialSource", "StaticSource"]


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


CHAIN_KEYS = (
    "aws_web_identity_token_file", "aws_role_arn", "aws_role_session_name",
    "aws_endpoint_url_sts", "aws_container_credentials_relative_uri",
    "aws_container_credentials_full_uri", "aws_container_authorization_token_file",
    "aws_metadata_endpoint", "aws_imdsv1_fallback", "aws_region",
)  # fmt: skip
"""The options that steer botocore's chain (each also read from its ``AWS_*`` variable)."""


class BotocoreSource:
    """botocore's credential chain, for an optional named profile.

    objstore's options steer it: web identity (``aws_web_identity_token_file`` +
    ``aws_role_arn``, STS at ``aws_endpoint_url_sts``) and container credentials
    (``aws_container_credentials_*``) are tried first when set; the instance metadata service
    answers at ``aws_metadata_endpoint``, token-first (IMDSv2), falling back to IMDSv1 only
    with ``aws_imdsv1_fallback``. Everything else (environment, profiles, shared files,
    ``credential_process``, AssumeRole with ``source_profile``, SSO) is botocore's own.
    """

    def __init__(self, profile: str | None, settings: Mapping[str, Any] | None = None) -> None:
        self._profile = profile
        self._settings = dict(settings or {})
        self._resolved: Any = None
        self._frozen: tuple[Any, Credentials] | None = None
        self.description = f"botocore chain (profile {profile!r})" if profile else "botocore chain"

    def _session(self) -> Any:
        import botocore.session

        session = botocore.session.Session(profile=self._profile)
        if self._settings.get("aws_region"):  # STS clients of AssumeRole need one
            session.set_config_variable("region", str(self._settings["aws_region"]))
        endpoint = self._settings.get("aws_metadata_endpoint")
        if endpoint:
            session.set_config_variable("ec2_metadata_service_endpoint", str(endpoint))
        fallback = bool(self._settings.get("aws_imdsv1_fallback"))
        session.set_config_variable("ec2_metadata_v1_disabled", not fallback)
        return session

    def _web_identity(self, session: Any) -> Any:
        from botocore.credentials import (
            AssumeRoleWithWebIdentityCredentialFetcher,
            DeferredRefreshableCredentials,
        )
        from botocore.utils import FileWebIdentityTokenLoader

        settings = self._settings
        region = settings.get("aws_region") or "us-east-1"
        sts = settings.get("aws_endpoint_url_sts")

        def client_creator(service: str, **kwargs: Any) -> Any:
            return session.create_client(
                service, region_name=region, endpoint_url=sts or None, **kwargs
            )

        fetcher = AssumeRoleWithWebIdentityCredentialFetcher(
            client_creator=client_creator,
            web_identity_token_loader=FileWebIdentityTokenLoader(
                str(settings["aws_web_identity_token_file"])
            ),
            role_arn=str(settings["aws_role_arn"]),
            extra_args={"RoleSessionName": str(
                settings.get("aws_role_session_name") or "objstore"
            )},
        )  # fmt: skip
        return DeferredRefreshableCredentials(
            method="assume-role-with-web-identity", refresh_using=fetcher.fetch_credentials
        )

    def _container(self) -> Any:
        from botocore.credentials import ContainerProvider

        names = {
            "aws_container_credentials_relative_uri": "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "aws_container_credentials_full_uri": "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "aws_container_authorization_token_file": "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        }
        environ = {env: str(self._settings[k]) for k, env in names.items() if self._settings.get(k)}
        return ContainerProvider(environ=environ).load()

    def _resolve(self) -> Any:
        settings = self._settings
        try:
            session = self._session()
            if settings.get("aws_web_identity_token_file") and settings.get("aws_role_arn"):
                credentials = self._web_identity(session)
            elif settings.get("aws_container_credentials_relative_uri") or settings.get(
                "aws_container_credentials_full_uri"
            ):
                credentials = self._container()
            else:
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
        try:
            if refresh is not None and refresh():
                frozen = await asyncio.to_thread(credentials.get_frozen_credentials)
            else:
                frozen = credentials.get_frozen_credentials()
        except Exception as exc:  # a failed refresh (STS, container or instance endpoint)
            raise UnauthenticatedError(
                f"S3 credentials from {self.description} could not be refreshed: "
                f"{type(exc).__name__}"
            ) from None
        if self._frozen is None or self._frozen[0] is not frozen:
            self._frozen = (frozen, Credentials(frozen.access_key, frozen.secret_key, frozen.token))
        return self._frozen[1]
