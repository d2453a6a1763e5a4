"""Our SigV4 signer against botocore's, on the same requests at the same instant."""

from __future__ import annotations

import datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore import auth as botocore_auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from objstore.backends._sigv4 import (
    EMPTY_SHA256,
    UNSIGNED_PAYLOAD,
    Credentials,
    SigV4,
    canonical_query,
    encode_path,
)

NOW = datetime.datetime(2026, 11, 26, 12, 34, 56, tzinfo=datetime.UTC)
KEYS = [
    ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None),
    ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session/token+="),
]
OBJECT_KEYS = ["plain.txt", "a/b c/d+e", "unicodé/ファイル", "q?x=1&y#frag", "~tilde%20"]


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(botocore_auth, "get_current_datetime", lambda: NOW.replace(tzinfo=None))


def botocore_headers(method: str, url: str, headers: dict[str, str], payload: str,
                     creds: tuple[str, str, str | None]) -> dict[str, str]:  # fmt: skip
    request = AWSRequest(
        method=method, url=url, headers={**headers, "X-Amz-Content-SHA256": payload}
    )
    signer = botocore_auth.S3SigV4Auth(BotoCredentials(*creds), "s3", "eu-west-1")
    signer.payload = lambda request: payload
    signer.add_auth(request)
    return dict(request.headers.items())


@pytest.mark.parametrize("creds", KEYS)
@pytest.mark.parametrize("key", OBJECT_KEYS)
@pytest.mark.parametrize("method", ["GET", "PUT", "HEAD", "DELETE"])
def test_headers_match_botocore(creds: Any, key: str, method: str) -> None:
    host = "127.0.0.1:19000"
    path = "/bucket/" + encode_path(key)
    params = [("versionId", "v 1/2"), ("partNumber", "3")]
    query = canonical_query(params)
    extra = {"x-amz-meta-owner": "team  a", "x-amz-tagging": "k=v"}
    payload = EMPTY_SHA256 if method != "PUT" else UNSIGNED_PAYLOAD
    ours = SigV4("eu-west-1").sign_headers(
        method, host, path, query=query, headers=extra, payload_hash=payload,
        credentials=Credentials(*creds), now=NOW.timestamp(),
    )  # fmt: skip
    theirs = botocore_headers(method, f"http://{host}{path}?{query}", extra, payload, creds)
    assert ours["Authorization"] == theirs["Authorization"]
    assert ours["X-Amz-Date"] == theirs["X-Amz-Date"]
    if creds[2]:
        assert ours["X-Amz-Security-Token"] == creds[2]


@pytest.mark.parametrize("creds", KEYS)
@pytest.mark.parametrize("key", OBJECT_KEYS)
def test_presigned_urls_match_botocore(creds: Any, key: str) -> None:
    host = "127.0.0.1:19000"
    path = "/bucket/" + encode_path(key)
    ours = SigV4("eu-west-1").presign(
        "GET", host, path, params=[], credentials=Credentials(*creds), expires_in=600,
        now=NOW.timestamp(),
    )  # fmt: skip
    request = AWSRequest(method="GET", url=f"http://{host}{path}")
    signer = botocore_auth.S3SigV4QueryAuth(BotoCredentials(*creds), "s3", "eu-west-1", expires=600)
    signer.add_auth(request)
    theirs = urlsplit(request.url).query
    ours_params = dict(p.split("=", 1) for p in ours.split("&"))
    theirs_params = dict(p.split("=", 1) for p in theirs.split("&"))
    assert ours_params == theirs_params


@pytest.mark.parametrize("creds", KEYS)
def test_presigned_urls_with_signed_headers_match_botocore(creds: Any) -> None:
    # a customer key's headers are signed into the URL (S3 requires it), as botocore does
    host, path = "127.0.0.1:19000", "/bucket/sse-c%20object"
    headers = {"x-amz-server-side-encryption-customer-algorithm": "AES256",
               "x-amz-server-side-encryption-customer-key": "a2V5" * 11,
               "x-amz-server-side-encryption-customer-key-MD5": "bWQ1"}  # fmt: skip
    ours = SigV4("eu-west-1").presign(
        "PUT", host, path, params=[], credentials=Credentials(*creds), expires_in=600,
        now=NOW.timestamp(), headers=headers,
    )  # fmt: skip
    request = AWSRequest(method="PUT", url=f"http://{host}{path}", headers=headers)
    signer = botocore_auth.S3SigV4QueryAuth(BotoCredentials(*creds), "s3", "eu-west-1", expires=600)
    signer.add_auth(request)
    theirs = urlsplit(request.url).query
    ours_params = dict(p.split("=", 1) for p in ours.split("&"))
    assert ours_params == dict(p.split("=", 1) for p in theirs.split("&"))
    assert ours_params["X-Amz-SignedHeaders"] == "host%3B" + "%3B".join(sorted(
        name.lower() for name in headers))  # fmt: skip


def test_credentials_repr_hides_the_secret() -> None:
    creds = Credentials("AKID", "canary-secret", "canary-token")
    assert "canary" not in repr(creds)
