"""Regenerate the README's option tables from the declarations: ``python docs/config_tables.py``.

Each table sits between ``<!-- config:NAME -->`` and ``<!-- /config:NAME -->`` markers;
``tests/test_docs.py`` fails when the README and the declarations disagree.
"""

from __future__ import annotations

import pathlib
import re

from objstore._config import CLIENT_KEYS, COMMON_KEYS, ConfigTable
from objstore.backends._azure_config import AZURE_TABLE
from objstore.backends._gcs_config import GCS_TABLE
from objstore.backends._s3_config import S3_TABLE
from objstore.backends.local import LocalStore

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def tables() -> dict[str, str]:
    """The Markdown of every option table, by marker name."""
    return {
        "common": ConfigTable("common", COMMON_KEYS).markdown(),
        "local": ConfigTable(
            "local", [k for k in LocalStore.config_table.keys.values() if k not in COMMON_KEYS]
        ).markdown(),
        "client": ConfigTable("client", CLIENT_KEYS).markdown(),
        "s3": _cloud_table(S3_TABLE),
        "gcs": _cloud_table(GCS_TABLE),
        "azure": _cloud_table(AZURE_TABLE),
    }


def _cloud_table(table: ConfigTable) -> str:
    """A cloud's own keys (the common and client keys have tables of their own)."""
    own = [
        k
        for k in table.keys.values()
        if k not in COMMON_KEYS and k.name != "allow_http" and k not in CLIENT_KEYS
    ]
    return ConfigTable(table.backend, own).markdown()


def render(text: str) -> str:
    """Return ``text`` with every marked table replaced by its generated Markdown."""
    for name, table in tables().items():
        start, end = f"<!-- config:{name} -->", f"<!-- /config:{name} -->"
        pattern = re.compile(rf"({start}\n)(?:.*?\n)?({end})", re.S)
        text = pattern.sub(lambda m, t=table: f"{m.group(1)}{t}\n{m.group(2)}", text)
    return text


if __name__ == "__main__":
    README.write_text(render(README.read_text()))
