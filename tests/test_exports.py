"""The public surface: sorted, complete __all__; import objstore pulls in no SDK."""

from __future__ import annotations

import subprocess
import sys

import objstore
import objstore_sync


def test_all_is_sorted_and_resolves() -> None:
    for module in (objstore, objstore_sync):
        names = [n for n in module.__all__ if n != "__version__"]
        assert names == sorted(names)
        for name in module.__all__:
            assert getattr(module, name) is not None


def test_sync_exports_the_same_value_types_and_errors() -> None:
    for name in objstore.__all__:
        if name.endswith("Error") or name in ("ObjectMeta", "PutResult", "ListResult"):
            assert getattr(objstore_sync, name) is getattr(objstore, name)


def test_import_loads_no_cloud_sdk() -> None:
    code = (
        "import sys, objstore, objstore_sync\n"
        "heavy = ('botocore', 'aiobotocore', 'azure', 'gcloud', 'pyarrow', 'aiohttp', 'anyio')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
