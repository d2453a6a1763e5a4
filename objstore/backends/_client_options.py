"""What a store's client keys ask of its connections: TLS trust, the proxy, address order.

Every key here is validated when the store is built, so a mistyped proxy or an HTTP/2-only
demand fails at ``from_url`` with the key's name, never at the first request.
"""

from __future__ import annotations

import functools
import ipaddress
import random
import socket
import ssl
from dataclasses import dataclass

import aiohttp
import aiohttp.abc
from yarl import URL

from objstore._config import Config
from objstore._errors import ConfigError

__all__ = ["ProxyRoute", "ShuffledResolver", "check_http_version", "proxy_route", "tls_context"]


def check_http_version(config: Config) -> None:
    """Refuse ``http2_only``: objstore speaks HTTP/1.1 (the HTTP/2 keys are accepted and
    unused, as they only tune an HTTP/2 connection)."""
    if config.get("http2_only"):
        raise ConfigError(
            "http2_only=true cannot be honoured: objstore's clients speak HTTP/1.1 "
            "(leave it unset, or false)"
        )


def tls_context(config: Config) -> ssl.SSLContext | bool:
    """The TLS setting of a store's connections.

    ``True`` (aiohttp's own verifying context, made once at its import) or ``False``
    (``allow_invalid_certificates``) when nothing else is asked: building a context loads the
    system's roots, ~50 ms here, too much for every ``from_url``. With
    ``disable_system_certificates`` or ``proxy_ca_certificate``, a context of its own, shared
    by the stores that ask the same.
    """
    pem = config.get("proxy_ca_certificate")
    disable_system = bool(config["disable_system_certificates"])
    allow_invalid = bool(config["allow_invalid_certificates"])
    if not pem and not disable_system:
        return not allow_invalid
    return _custom_context(disable_system, str(pem or ""), allow_invalid)


@functools.lru_cache(maxsize=16)
def _custom_context(disable_system: bool, pem: str, allow_invalid: bool) -> ssl.SSLContext:
    """The system's roots (none with ``disable_system``) and ``pem``; no checks at all with
    ``allow_invalid``."""
    if disable_system:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    else:
        context = ssl.create_default_context()
    if pem:
        try:
            context.load_verify_locations(cadata=pem)
        except (ssl.SSLError, ValueError) as exc:
            raise ConfigError(f"proxy_ca_certificate is not a PEM certificate: {exc}") from None
    if allow_invalid:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


@dataclass(frozen=True)
class ProxyRoute:
    """The proxy a store's requests go through, except to the hosts ``proxy_excludes`` names."""

    url: URL
    excludes: tuple[str, ...] = ()

    def applies_to(self, host: str) -> bool:
        """Whether a request to ``host`` goes through the proxy."""
        host = host.lower().strip("[]")
        return not any(_excluded(host, entry) for entry in self.excludes)

    def __repr__(self) -> str:  # the URL may carry credentials
        return f"ProxyRoute(url='{self.url.with_user(None)}', excludes={self.excludes!r})"


def proxy_route(config: Config) -> ProxyRoute | None:
    """The proxy of ``proxy_url`` and ``proxy_excludes``, or None without one.

    Raises:
        ConfigError: ``proxy_url`` is not an ``http://`` or ``https://`` URL with a host (the
            message never shows the URL: it may carry credentials).
    """
    secret = config.get("proxy_url")
    if not secret:
        return None
    try:
        url = URL(secret.reveal())
    except ValueError:
        url = URL()
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError("proxy_url must be an http:// or https:// URL with a host")
    excludes = tuple(
        entry.strip().lower() for entry in str(config.get("proxy_excludes") or "").split(",")
    )
    return ProxyRoute(url, tuple(entry for entry in excludes if entry))


def _excluded(host: str, entry: str) -> bool:
    """Whether ``proxy_excludes`` entry ``entry`` names ``host``: ``*``, an IP address or
    network, or a domain (itself and its subdomains; a leading ``.`` or ``*.`` is the same)."""
    if entry == "*":
        return True
    try:
        network = ipaddress.ip_network(entry.strip("[]"), strict=False)
    except ValueError:
        network = None
    if network is not None:
        try:
            return ipaddress.ip_address(host) in network
        except ValueError:
            return False
    name, colon, port = entry.rpartition(":")
    domain = (name if colon and port.isdigit() else entry).removeprefix("*").lstrip(".")
    return host == domain or host.endswith("." + domain)


class ShuffledResolver(aiohttp.abc.AbstractResolver):
    """The system resolver, its addresses in random order (``randomize_addresses``): a
    host's clients spread over its addresses instead of all taking the first."""

    def __init__(self) -> None:
        self._resolver = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        found = await self._resolver.resolve(host, port, family)
        random.shuffle(found)
        return found

    async def close(self) -> None:
        await self._resolver.close()
