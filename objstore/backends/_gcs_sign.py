"""GCS V4 signed URLs (``GOOG4-RSA-SHA256``) with a service account's private key.

The algorithm of Google's "V4 signing process with your own program": a canonical request over
the path-style resource, signed with RSA PKCS#1 v1.5 / SHA-256. ``tests/test_gcs_sign.py``
verifies the signatures with the key's public half.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from objstore._errors import ConfigError
from objstore.backends._sigv4 import canonical_query, encode_path

__all__ = ["ServiceAccount", "sign_url"]

ALGORITHM = "GOOG4-RSA-SHA256"


@dataclass(frozen=True, repr=False)
class ServiceAccount:
    """What a service-account JSON document holds for signing (its key is never shown)."""

    client_email: str
    private_key: str
    gcs_base_url: str | None = None
    disable_oauth: bool = False

    def __repr__(self) -> str:
        return f"ServiceAccount({self.client_email!r})"

    @classmethod
    def from_json(cls, text: str, where: str) -> ServiceAccount:
        """Parse a service-account document.

        Raises:
            ConfigError: not JSON, or no ``client_email`` (the message never shows the key).
        """
        try:
            data: Any = json.loads(text)
        except ValueError:
            raise ConfigError(f"{where} is not a JSON service-account document") from None
        if not isinstance(data, dict) or not isinstance(data.get("client_email"), str):
            raise ConfigError(f"{where} has no 'client_email': not a service-account document")
        return cls(
            client_email=data["client_email"],
            private_key=str(data.get("private_key") or ""),
            gcs_base_url=data.get("gcs_base_url"),
            disable_oauth=bool(data.get("disable_oauth")),
        )


def sign_url(
    account: ServiceAccount,
    base_url: str,
    bucket: str,
    key: str,
    *,
    method: str,
    expires_in: int,
    now: float | None = None,
) -> str:
    """Return a V4 signed URL for ``method`` on ``bucket/key``, valid ``expires_in`` seconds."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    parts = urlsplit(base_url)
    host = parts.netloc
    path = f"{parts.path.rstrip('/')}/{encode_path(bucket)}/{encode_path(key)}"
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    scope = f"{stamp[:8]}/auto/storage/goog4_request"
    query = canonical_query([
        ("X-Goog-Algorithm", ALGORITHM),
        ("X-Goog-Credential", f"{account.client_email}/{scope}"),
        ("X-Goog-Date", stamp),
        ("X-Goog-Expires", str(expires_in)),
        ("X-Goog-SignedHeaders", "host"),
    ])  # fmt: skip
    canonical = "\n".join((method, path, query, f"host:{host}\n", "host", "UNSIGNED-PAYLOAD"))
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    to_sign = "\n".join((ALGORITHM, stamp, scope, digest)).encode()
    try:
        key_object = serialization.load_pem_private_key(account.private_key.encode(), None)
    except ValueError:
        raise ConfigError("the service account's private_key is not a PEM RSA key") from None
    if not isinstance(key_object, rsa.RSAPrivateKey):
        raise ConfigError("the service account's private_key is not an RSA key")
    signature = key_object.sign(to_sign, padding.PKCS1v15(), hashes.SHA256()).hex()
    return f"{parts.scheme}://{host}{path}?{query}&X-Goog-Signature={signature}"
