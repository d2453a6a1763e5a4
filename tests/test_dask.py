"""dask.dataframe on a distributed cluster of worker processes, reading and writing S3 through
objstore: secrets stay home unless allowed, and every worker builds its own clients."""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Iterator
from typing import Any

import dask.dataframe as dd
import distributed
import pytest

from objstore.fsspec import S3FileSystem, register
from objstore.testing.emulators import S3Server

# dask 2026.8 calls reset_index(inplace=True), which pandas 3.1 deprecates: not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword:DeprecationWarning")


@pytest.fixture
def registered() -> Iterator[None]:
    table = sys.modules["fsspec.registry"]._registry
    saved = dict(table)
    register("s3")
    yield
    table.clear()
    table.update(saved)
    for fs in list(S3FileSystem._cache.values()):
        fs.close()
    S3FileSystem.clear_instance_cache()


def cluster(env: dict[str, str]) -> Any:
    return distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, env=env,
    )  # fmt: skip


def worker_clients() -> dict[str, Any]:
    """Run on a worker: where this process's objstore S3 stores and their sessions were made."""
    from objstore.fsspec import S3FileSystem

    stores = [s for fs in S3FileSystem._cache.values() for s in fs._stores.values()]
    return {
        "pid": os.getpid(),
        "stores": len(stores),
        "built_here": all(s._http.pid == os.getpid() for s in stores),
        "sessions": sum(len(s._http) for s in stores),
    }


def close_worker_clients() -> None:
    from objstore.fsspec import S3FileSystem

    for fs in list(S3FileSystem._cache.values()):
        fs.close()


def frame() -> Any:
    import pandas as pd

    rows = 4_000
    return pd.DataFrame(
        {
            "id": range(rows),
            "region": [("eu", "us", "ap")[i % 3] for i in range(rows)],
            "value": [i * 0.25 for i in range(rows)],
        }
    )


def round_trip(client: Any, url: str, options: dict[str, Any]) -> Any:
    source = frame()
    written = dd.from_pandas(source, npartitions=4)
    written.to_parquet(url, partition_on=["region"], storage_options=options)
    back = dd.read_parquet(url, storage_options=options)
    payload = pickle.dumps(dict(back.__dask_graph__()))
    result = client.compute(back).result()
    got = result.assign(region=result["region"].astype(str)).sort_values("id")
    assert got[["id", "region", "value"]].reset_index(drop=True).equals(source)
    return payload


def test_workers_use_their_own_credentials_and_clients(
    registered: None, s3_server: S3Server, bucket: str
) -> None:
    options: dict[str, Any] = s3_server.options()
    worker_env = {"AWS_ACCESS_KEY_ID": s3_server.access_key,
                  "AWS_SECRET_ACCESS_KEY": s3_server.secret_key}  # fmt: skip
    with cluster(worker_env) as local, distributed.Client(local) as client:
        payload = round_trip(client, f"s3://{bucket}/dask/own", options)
        reports = client.run(worker_clients)
        client.run(close_worker_clients)
    assert s3_server.secret_key.encode() not in payload  # the graph carries no secret
    used = [r for r in reports.values() if r["stores"]]
    assert used, reports
    for report in used:
        assert report["pid"] != os.getpid()
        assert report["built_here"]
        assert report["sessions"] >= 1


def test_secrets_travel_only_when_allowed(
    registered: None, s3_server: S3Server, bucket: str
) -> None:
    options: dict[str, Any] = s3_server.options(allow_pickle_secrets="true")
    with cluster({}) as local, distributed.Client(local) as client:
        payload = round_trip(client, f"s3://{bucket}/dask/allowed", options)
        client.run(close_worker_clients)
    assert s3_server.secret_key.encode() in payload  # the same graph, secrets allowed
