"""GCS V4 signed URLs: the signature checks out with the key's public half, and the emulator
serves the signed GET (it checks no signatures itself)."""

from __future__ import annotations

import calendar
import hashlib
import json
import time
import urllib.request
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

import objstore
from objstore import ConfigError, NotSupportedError
from objstore.backends import _clock
from objstore.testing.emulators import GCSServer


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def account_json(private_key: rsa.RSAPrivateKey, **extra: Any) -> str:
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    email = "signer@p.iam.gserviceaccount.com"
    return json.dumps({"type": "service_account", "client_email": email, "private_key": pem,
                       **extra})  # fmt: skip


def verify(url: str, method: str, public: rsa.RSAPublicKey) -> dict[str, str]:
    """Rebuild Google's string-to-sign from the URL and check the signature; return the query."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    signature = bytes.fromhex(query.pop("X-Goog-Signature"))
    canonical_query = "&".join(
        p for p in parts.query.split("&") if not p.startswith("X-Goog-Signature=")
    )
    canonical = "\n".join(
        [method, parts.path, canonical_query, f"host:{parts.netloc}\n", "host", "UNSIGNED-PAYLOAD"]
    )
    credential = query["X-Goog-Credential"]
    scope = credential.split("/", 1)[1]
    to_sign = "\n".join(
        ["GOOG4-RSA-SHA256", query["X-Goog-Date"], scope,
         hashlib.sha256(canonical.encode()).hexdigest()]
    )  # fmt: skip
    public.verify(signature, to_sign.encode(), padding.PKCS1v15(), hashes.SHA256())
    return query


@pytest.mark.parametrize("method", ["GET", "PUT", "HEAD", "DELETE"])
async def test_signatures_verify_with_the_public_key(
    gcs_server: GCSServer, gcs_bucket: str, private_key: rsa.RSAPrivateKey, method: str
) -> None:
    options = gcs_server.options(google_service_account_key=account_json(private_key),
                                 google_skip_signature="true")  # fmt: skip
    store = objstore.from_url(f"gs://{gcs_bucket}/pre fix", options)
    url = await store.sign(method, "dir/a b+c.txt", expires_in=600)
    query = verify(url, method, private_key.public_key())
    assert query["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256"
    assert query["X-Goog-Expires"] == "600"
    assert query["X-Goog-Credential"].startswith("signer@p.iam.gserviceaccount.com/")
    assert unquote(urlsplit(url).path) == f"/{gcs_bucket}/pre fix/dir/a b+c.txt"
    with pytest.raises(InvalidSignature):
        verify(url.replace("X-Goog-Expires=600", "X-Goog-Expires=601"), method,
               private_key.public_key())  # fmt: skip
    await store.aclose()


async def test_signed_get_is_served(
    gcs_server: GCSServer, gcs_bucket: str, private_key: rsa.RSAPrivateKey
) -> None:
    options = gcs_server.options(google_service_account_key=account_json(private_key),
                                 google_skip_signature="true")  # fmt: skip
    store = objstore.from_url(f"gs://{gcs_bucket}", options)
    await store.put("signed/object", b"signed payload")
    url = await store.sign("GET", "signed/object")
    assert url.startswith(gcs_server.endpoint)
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"signed payload"
    await store.aclose()


def test_service_account_file_sets_emulator_base_and_anonymous_requests(
    tmp_path: Any, gcs_server: GCSServer, private_key: rsa.RSAPrivateKey
) -> None:
    path = tmp_path / "sa.json"
    path.write_text(account_json(private_key, gcs_base_url=gcs_server.endpoint,
                                 disable_oauth=True))  # fmt: skip
    store: Any = objstore.from_url("gs://bkt", {"google_service_account": str(path)})
    assert store._base == gcs_server.endpoint
    assert store.credential_source == "anonymous"
    assert "PRIVATE KEY" not in repr(store) + repr(store.config) + repr(store._account)


def test_signing_needs_a_service_account_key() -> None:
    import asyncio

    store = objstore.from_url("gs://bkt", {"google_skip_signature": "true"})
    with pytest.raises(NotSupportedError, match="service-account key"):
        asyncio.run(store.sign("GET", "k"))


def test_bad_service_account_documents_are_config_errors(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="not a JSON"):
        objstore.from_url("gs://bkt", {"google_service_account_key": "not json canary"})
    with pytest.raises(ConfigError, match="client_email"):
        objstore.from_url("gs://bkt", {"google_service_account_key": '{"private_key": "x"}'})
    with pytest.raises(ConfigError, match="cannot read"):
        objstore.from_url("gs://bkt", {"google_service_account": str(tmp_path / "missing.json")})


def _signed_at(url: str) -> float:
    stamp = dict(parse_qsl(urlsplit(url).query))["X-Goog-Date"]
    return calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ"))


@pytest.mark.parametrize("skew", [-3600, 1800, 120])
async def test_urls_are_dated_with_the_servers_time_once_it_is_seen(
    gcs_server: GCSServer, gcs_bucket: str, private_key: rsa.RSAPrivateKey,
    monkeypatch: pytest.MonkeyPatch, skew: float,
) -> None:  # fmt: skip
    """A machine whose clock is off signs URLs GCS takes as expired or not yet valid; once
    the store has had a reply, its ``Date`` gives the time to sign with (a skew under five
    minutes is left alone: it is within a reply's latency and a URL's lifetime)."""
    true_time = time.time
    monkeypatch.setattr(time, "time", lambda: true_time() + skew)
    options = gcs_server.options(google_service_account_key=account_json(private_key),
                                 google_skip_signature="true")  # fmt: skip
    store: Any = objstore.from_url(f"gs://{gcs_bucket}", options)
    before = await store.sign("GET", "k", expires_in=600)
    assert abs(_signed_at(before) - (true_time() + skew)) < 3  # nothing seen yet
    await store.put("k", b"x")
    after = await store.sign("GET", "k", expires_in=600)
    expected = true_time() if abs(skew) >= 300 else true_time() + skew
    assert abs(_signed_at(after) - expected) < 3
    verify(after, "GET", private_key.public_key())
    monkeypatch.setattr(time, "time", true_time)  # the clock is put right
    monkeypatch.setattr(_clock, "OBSERVE_EVERY", 0.0)
    await store.head("k")
    assert abs(_signed_at(await store.sign("GET", "k")) - true_time()) < 3
    await store.aclose()
