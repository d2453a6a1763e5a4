"""AWS Signature Version 4 for S3: request headers and pre-signed URLs.

A small signer over precomputed pieces: the derived signing key is cached per (secret, day,
region, service) and the timestamp per second, so a request costs a few microseconds
(botocore's ``S3SigV4Auth`` on an ``AWSRequest``: ~40-60 µs). ``tests/test_sigv4.py`` checks
every output against botocore's signer; SeaweedFS checks signatures for real in the S3 tests.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping
from typing import NamedTuple
from urllib.parse import quote

__all__ = ["EMPTY_SHA256", "UNSIGNED_PAYLOAD", "Credentials", "SigV4", "encode_path"]

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
ALGORITHM = "AWS4-HMAC-SHA256"


class Credentials(NamedTuple):
    """An access key, its secret and an optional session token."""

    access_key: str
    secret_key: str
    token: str | None = None

    def __repr__(self) -> str:
        return f"Credentials(access_key={self.access_key!r}, secret_key='********')"


def encode_path(key: str) -> str:
    """URI-encode an object key for an S3 path (``/`` kept, everything else but unreserved)."""
    return quote(key, safe="/-_.~")


def _encode(value: str) -> str:
    return quote(value, safe="-_.~")


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    """Encode and sort query parameters as SigV4 (and the request line) want them."""
    return "&".join(sorted(f"{_encode(k)}={_encode(v)}" for k, v in params))


class SigV4:
    """Signs S3 requests for one region."""

    def __init__(self, region: str, service: str = "s3") -> None:
        self.region = region
        self.service = service
        self._key: tuple[str, str, bytes] = ("", "", b"")
        self._stamp: tuple[int, str] = (-1, "")

    def _signing_key(self, secret: str, day: str) -> bytes:
        cached_secret, cached_day, key = self._key
        if cached_day == day and cached_secret == secret:
            return key
        k = hmac.digest(f"AWS4{secret}".encode(), day.encode(), "sha256")
        for part in (self.region, self.service, "aws4_request"):
            k = hmac.digest(k, part.encode(), "sha256")
        self._key = (secret, day, k)
        return k

    def amz_date(self, now: float | None = None) -> str:
        """Return the ``X-Amz-Date`` timestamp (cached per second)."""
        second = int(time.time() if now is None else now)
        if self._stamp[0] != second:
            self._stamp = (second, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second)))
        return self._stamp[1]

    def _signature(self, credentials: Credentials, amz_date: str, canonical_request: str) -> str:
        day = amz_date[:8]
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        digest = hashlib.sha256(canonical_request.encode()).hexdigest()
        string_to_sign = f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"
        key = self._signing_key(credentials.secret_key, day)
        return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()

    def sign_headers(
        self,
        method: str,
        host: str,
        path: str,
        *,
        query: str,
        headers: Mapping[str, str],
        payload_hash: str,
        credentials: Credentials,
        now: float | None = None,
    ) -> dict[str, str]:
        """Return the headers to add: ``Authorization``, ``X-Amz-Date``, content hash, token.

        Args:
            path: the request path, already encoded (``encode_path``).
            query: the canonical query string (``canonical_query``).
            headers: other headers to sign (``x-amz-*`` ones); names in any case.
        """
        amz_date = self.amz_date(now)
        signed = _trimmed(headers)
        signed["host"] = host
        signed["x-amz-content-sha256"] = payload_hash
        signed["x-amz-date"] = amz_date
        if credentials.token:
            signed["x-amz-security-token"] = credentials.token
        canonical_headers, signed_names = _canonical_headers(signed)
        canonical_request = (
            f"{method}\n{path}\n{query}\n{canonical_headers}\n{signed_names}\n{payload_hash}"
        )
        signature = self._signature(credentials, amz_date, canonical_request)
        day = amz_date[:8]
        out = {
            "Authorization": (
                f"{ALGORITHM} Credential={credentials.access_key}/{day}/{self.region}/"
                f"{self.service}/aws4_request, SignedHeaders={signed_names}, "
                f"Signature={signature}"
            ),
            "X-Amz-Date": amz_date,
            "X-Amz-Content-SHA256": payload_hash,
        }
        if credentials.token:
            out["X-Amz-Security-Token"] = credentials.token
        return out

    def presign(
        self,
        method: str,
        host: str,
        path: str,
        *,
        params: Iterable[tuple[str, str]],
        credentials: Credentials,
        expires_in: int,
        now: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """Return the query string of a pre-signed URL: ``host`` is signed, and ``headers``,
        which whoever uses the URL must then send as they are."""
        amz_date = self.amz_date(now)
        day = amz_date[:8]
        signed = _trimmed(headers or {})
        signed["host"] = host
        canonical_headers, signed_names = _canonical_headers(signed)
        auth = [
            ("X-Amz-Algorithm", ALGORITHM),
            ("X-Amz-Credential",
             f"{credentials.access_key}/{day}/{self.region}/{self.service}/aws4_request"),
            ("X-Amz-Date", amz_date),
            ("X-Amz-Expires", str(expires_in)),
            ("X-Amz-SignedHeaders", signed_names),
        ]  # fmt: skip
        if credentials.token:
            auth.append(("X-Amz-Security-Token", credentials.token))
        query = canonical_query([*params, *auth])
        canonical_request = (
            f"{method}\n{path}\n{query}\n{canonical_headers}\n{signed_names}\n{UNSIGNED_PAYLOAD}"
        )
        signature = self._signature(credentials, amz_date, canonical_request)
        return f"{query}&X-Amz-Signature={signature}"


def _trimmed(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers as SigV4 signs them: names in lower case, runs of spaces in values as one."""
    return {name.lower(): " ".join(value.split()) for name, value in headers.items()}


def _canonical_headers(signed: Mapping[str, str]) -> tuple[str, str]:
    """The canonical headers block of ``signed`` (lower-case names) and its SignedHeaders."""
    names = sorted(signed)
    return "".join(f"{n}:{signed[n]}\n" for n in names), ";".join(names)
