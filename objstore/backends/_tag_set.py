"""The ``<TagSet>`` document S3's GetObjectTagging and Azure's Get Blob Tags both answer."""

from __future__ import annotations

import xml.etree.ElementTree as ET

__all__ = ["parse_tag_set"]


def parse_tag_set(body: bytes) -> dict[str, str]:
    """The tags of a ``<Tagging>`` (S3) or ``<Tags>`` (Azure) document, namespaces ignored."""
    tags: dict[str, str] = {}
    for element in ET.fromstring(body).iter():
        if element.tag.rpartition("}")[2] != "Tag":
            continue
        fields = {child.tag.rpartition("}")[2]: child.text or "" for child in element}
        tags[fields.get("Key", "")] = fields.get("Value", "")
    return tags
