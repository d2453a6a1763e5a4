"""What a store's client keys ask of its connections: TLS trust, the proxy, address order.

Every key here is validated when the store is built, so a mistyped proxy or an HTTP/2-only
demand fails at ``from_url`` with the key's name, never at the first request.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import random
import socket
import ssl
from collections.abc import Mapping

import aiohttp
import aiohttp.abc
from yarl import URL

from objstore._config import Config
from objstore._errors import ConfigError
from objstore._record import record

__all__ = ["ProxyRoute", "ShuffledResolver", "check_http_version", "proxy_route", "tls_context"]

logger = logging.getLogger("objstore")


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


@record(kw_only=False)
class ProxyRoute:
    """The proxies of a store's requests, by scheme, except to the hosts ``excludes`` names.

    A route read from the environment (``spare_loopback``) never proxies ``localhost`` or a
    loopback address, as Go's ``ProxyFromEnvironment`` does: a machine-wide proxy setting must
    not capture a local emulator or sidecar.
    """

    http: URL | None
    https: URL | None
    excludes: tuple[str, ...] = ()
    spare_loopback: bool = False

    def for_url(self, url: URL) -> URL | None:
        """The proxy a request to ``url`` goes through, or None."""
        proxy = self.https if url.scheme == "https" else self.http
        return proxy if proxy is not None and self.applies_to(url.host or "") else None

    def applies_to(self, host: str) -> bool:
        """Whether a request to ``host`` may go through a proxy."""
        host = host.lower().strip("[]")
        if self.spare_loopback and _is_loopback(host):
            return False
        return not any(_excluded(host, entry) for entry in self.excludes)

    def __repr__(self) -> str:  # the URLs may carry credentials
        shown = [str(u.with_user(None)) if u is not None else None for u in (self.http, self.https)]
        return f"ProxyRoute(http={shown[0]!r}, https={shown[1]!r}, excludes={self.excludes!r})"


_ENVIRONMENT_PROXIES = {
    "http": ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"),
    "https": ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"),
}


def proxy_route(config: Config, environ: Mapping[str, str] | None = None) -> ProxyRoute | None:
    """The proxies of ``proxy_url`` and ``proxy_excludes``; without ``proxy_url``, those of
    the standard variables (``https_proxy``, ``http_proxy``, ``all_proxy``, lower case first,
    and ``no_proxy``), read once; None without any.

    Raises:
        ConfigError: ``proxy_url`` is not an ``http://`` or ``https://`` URL with a host (the
            message never shows the URL: it may carry credentials).
    """
    excludes = _excludes(config.get("proxy_excludes"))
    secret = config.get("proxy_url")
    if secret:
        url = _proxy_url(secret.reveal())
        if url is None:
            raise ConfigError("proxy_url must be an http:// or https:// URL with a host")
        return ProxyRoute(url, url, excludes)
    environ = os.environ if environ is None else environ
    found: dict[str, URL | None] = {}
    for scheme, names in _ENVIRONMENT_PROXIES.items():
        name = next((n for n in names if environ.get(n)), None)
        found[scheme] = _proxy_url(environ[name]) if name else None
        if name and found[scheme] is None:
            logger.warning("%s is not an http:// or https:// proxy URL: not used", name)
    if found["http"] is None and found["https"] is None:
        return None
    if not excludes:
        excludes = _excludes(environ.get("no_proxy") or environ.get("NO_PROXY"))
    return ProxyRoute(found["http"], found["https"], excludes, spare_loopback=True)


def _proxy_url(text: str) -> URL | None:
    try:
        url = URL(text)
    except ValueError:
        return None
    return url if url.scheme in ("http", "https") and url.host else None


def _excludes(text: object) -> tuple[str, ...]:
    entries = (entry.strip().lower() for entry in str(text or "").split(","))
    return tuple(entry for entry in entries if entry)


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
