"""S3 credential flows end to end against AWS stand-ins on 127.0.0.1: STS (AssumeRole and
AssumeRoleWithWebIdentity), ECS container credentials, the instance metadata service (IMDSv2)
and ``credential_process``; the credentials each returns sign the S3 requests that follow, and
short-lived ones are fetched anew."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web

import objstore
from objstore.testing.standin import serve

STS_XML = """<{action}Response xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<{action}Result><Credentials><AccessKeyId>{key}</AccessKeyId>
<SecretAccessKey>secret-{key}</SecretAccessKey><SessionToken>token-{key}</SessionToken>
<Expiration>{expires}</Expiration></Credentials>
<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/r/s</Arn>
<AssumedRoleId>AROA1:s</AssumedRoleId></AssumedRoleUser></{action}Result>
<ResponseMetadata><RequestId>r1</RequestId></ResponseMetadata></{action}Response>"""


def _expiry(seconds: int) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


class Aws:
    """S3 (records who signed), STS, an ECS credentials endpoint and IMDSv2 in one stand-in.
    Each credentials answer is a new key ``AKID<n>`` living ``ttl`` seconds."""

    def __init__(self) -> None:
        self.ttl = 3600
        self.issued = 0
        self.sts: list[dict[str, str]] = []
        self.sts_authorization: list[str | None] = []
        self.ecs_authorization: list[str | None] = []
        self.imds_tokens: list[str | None] = []
        self.signers: list[tuple[str, str | None]] = []

    def _next_key(self) -> str:
        self.issued += 1
        return f"AKID{self.issued}"

    async def s3(self, request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization", "")
        key_id = authorization.partition("Credential=")[2].partition("/")[0]
        self.signers.append((key_id, request.headers.get("X-Amz-Security-Token")))
        return web.Response(headers={"ETag": '"e1"', "Content-Length": "3",
                                     "Last-Modified": "Thu, 26 Nov 2026 10:00:00 GMT"})  # fmt: skip

    async def sts_call(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.sts.append(form)
        self.sts_authorization.append(request.headers.get("Authorization"))
        body = STS_XML.format(action=form["Action"], key=self._next_key(),
                              expires=_expiry(self.ttl))  # fmt: skip
        return web.Response(text=body, content_type="text/xml")

    def _credentials(self) -> dict[str, str]:
        key = self._next_key()
        return {"AccessKeyId": key, "SecretAccessKey": f"secret-{key}", "Token": f"token-{key}",
                "Expiration": _expiry(self.ttl), "Code": "Success", "Type": "AWS-HMAC",
                "LastUpdated": _expiry(0)}  # fmt: skip

    async def ecs(self, request: web.Request) -> web.Response:
        self.ecs_authorization.append(request.headers.get("Authorization"))
        return web.json_response(self._credentials())

    v2 = True
    """False: the service refuses session tokens (an IMDSv1-only instance)."""

    async def imds_token(self, request: web.Request) -> web.Response:
        assert request.headers["X-aws-ec2-metadata-token-ttl-seconds"]
        if not self.v2:
            return web.Response(status=403)
        return web.Response(text="imds-session-token")

    async def imds_roles(self, request: web.Request) -> web.Response:
        self.imds_tokens.append(request.headers.get("X-aws-ec2-metadata-token"))
        return web.Response(text="objstore-role")

    async def imds_role(self, request: web.Request) -> web.Response:
        self.imds_tokens.append(request.headers.get("X-aws-ec2-metadata-token"))
        return web.Response(text=json.dumps(self._credentials()))


@pytest.fixture
async def aws() -> AsyncIterator[tuple[Aws, str]]:
    server = Aws()
    app = web.Application()
    app.router.add_post("/", server.sts_call)
    app.router.add_get("/ecs/creds", server.ecs)
    app.router.add_put("/latest/api/token", server.imds_token)
    app.router.add_get("/latest/meta-data/iam/security-credentials/", server.imds_roles)
    app.router.add_get("/latest/meta-data/iam/security-credentials/{role}", server.imds_role)
    app.router.add_route("*", "/bkt/{key:.*}", server.s3)
    async with serve(app) as url:
        yield server, url


def _options(url: str, **extra: str) -> dict[str, str]:
    return {"aws_endpoint": url, "aws_region": "us-east-1", "allow_http": "true", **extra}


async def test_web_identity_assumes_the_role_at_sts(aws: tuple[Aws, str], tmp_path: Any) -> None:
    server, url = aws
    token_file = tmp_path / "web-identity-token"
    token_file.write_text("oidc-jwt-1")
    options = _options(url, aws_web_identity_token_file=str(token_file),
                       aws_role_arn="arn:aws:iam::123456789012:role/r",
                       aws_role_session_name="job-7", aws_endpoint_url_sts=url)  # fmt: skip
    async with objstore.from_url("s3://bkt", options) as store:
        assert (await store.head("k")).size == 3
        assert (await store.head("k")).size == 3
        assert "web-identity" in store.credential_source  # type: ignore[attr-defined]
    (call,) = server.sts
    assert call["Action"] == "AssumeRoleWithWebIdentity"
    assert (call["WebIdentityToken"], call["RoleSessionName"]) == ("oidc-jwt-1", "job-7")
    assert call["RoleArn"] == "arn:aws:iam::123456789012:role/r"
    assert server.sts_authorization == [None]  # the call is unsigned
    assert server.signers == [("AKID1", "token-AKID1")] * 2


async def test_container_credentials_are_refreshed_before_expiry(
    aws: tuple[Aws, str], tmp_path: Any
) -> None:
    server, url = aws
    token_file = tmp_path / "ecs-token"
    token_file.write_text("ecs-authorization")
    server.ttl = 120  # inside botocore's mandatory refresh window: each use fetches anew
    options = _options(url, aws_container_credentials_full_uri=f"{url}/ecs/creds",
                       aws_container_authorization_token_file=str(token_file))  # fmt: skip
    async with objstore.from_url("s3://bkt", options) as store:
        for _ in range(3):
            await store.head("k")
    assert set(server.ecs_authorization) == {"ecs-authorization"}
    keys = [key for key, _ in server.signers]
    assert len(set(keys)) == 3  # a fresh key for each request
    assert all(token == f"token-{key}" for key, token in server.signers)


async def test_instance_metadata_v2(aws: tuple[Aws, str], monkeypatch: pytest.MonkeyPatch) -> None:
    server, url = aws
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED")
    async with objstore.from_url("s3://bkt", _options(url, aws_metadata_endpoint=url)) as store:
        await store.head("k")
        await store.head("k")
        assert "iam-role" in store.credential_source  # type: ignore[attr-defined]
    assert server.signers == [("AKID1", "token-AKID1")] * 2
    assert set(server.imds_tokens) == {"imds-session-token"}  # IMDSv2: the token first


@pytest.mark.parametrize("fallback", [True, False])
async def test_instance_metadata_v1_only_with_fallback(
    aws: tuple[Aws, str], monkeypatch: pytest.MonkeyPatch, fallback: bool
) -> None:
    server, url = aws
    server.v2 = False
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED")
    options = _options(url, aws_metadata_endpoint=url, aws_imdsv1_fallback=str(fallback))
    async with objstore.from_url("s3://bkt", options) as store:
        if fallback:
            await store.head("k")
            assert server.imds_tokens[-1] is None  # IMDSv1: no session token
            assert server.signers == [("AKID1", "token-AKID1")]
        else:
            with pytest.raises(objstore.UnauthenticatedError):
                await store.head("k")
            assert server.signers == []


async def test_profile_with_credential_process(
    aws: tuple[Aws, str], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, url = aws
    script = tmp_path / "creds.sh"
    reply = json.dumps({"Version": 1, "AccessKeyId": "AKIDPROC", "SecretAccessKey": "s",
                        "SessionToken": "token-proc", "Expiration": _expiry(3600)})  # fmt: skip
    script.write_text(f"#!/bin/sh\necho '{reply}'\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    config = tmp_path / "config"
    config.write_text(f"[profile team]\ncredential_process = {script}\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    async with objstore.from_url("s3://bkt", _options(url, aws_profile="team")) as store:
        await store.head("k")
        assert store.credential_source == "botocore custom-process (profile 'team')"  # type: ignore[attr-defined]
    assert server.signers == [("AKIDPROC", "token-proc")]


async def test_profile_assume_role_from_a_source_profile(
    aws: tuple[Aws, str], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, url = aws
    (tmp_path / "credentials").write_text(
        "[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = base-secret\n"
    )
    (tmp_path / "config").write_text(
        "[profile deploy]\nrole_arn = arn:aws:iam::123456789012:role/deploy\n"
        "source_profile = base\nrole_session_name = objstore-test\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", url)
    async with objstore.from_url("s3://bkt", _options(url, aws_profile="deploy")) as store:
        await store.head("k")
    (call,) = server.sts
    assert call["Action"] == "AssumeRole"
    assert call["RoleArn"] == "arn:aws:iam::123456789012:role/deploy"
    (authorization,) = server.sts_authorization
    assert authorization is not None
    assert "Credential=AKIDBASE/" in authorization
    assert server.signers == [("AKID1", "token-AKID1")]


async def test_failing_identity_endpoint_is_typed(aws: tuple[Aws, str], tmp_path: Any) -> None:
    _, url = aws
    token_file = tmp_path / "ecs-token"
    token_file.write_text("x")
    options = _options(url, aws_container_credentials_full_uri="http://127.0.0.1:9/none",
                       aws_container_authorization_token_file=str(token_file))  # fmt: skip
    async with objstore.from_url("s3://bkt", options) as store:
        with pytest.raises(objstore.UnauthenticatedError):
            await store.head("k")
    assert os.environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI") is None  # nothing leaked


async def test_static_keys_with_a_session_token_and_from_the_environment(
    aws: tuple[Aws, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, url = aws
    options = _options(url, aws_access_key_id="AKIDSTATIC", aws_secret_access_key="s",
                       aws_session_token="static-token")  # fmt: skip
    async with objstore.from_url("s3://bkt", options) as store:
        await store.head("k")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    async with objstore.from_url("s3://bkt", _options(url)) as store:
        await store.head("k")
    assert server.signers == [("AKIDSTATIC", "static-token"), ("AKIDENV", None)]
