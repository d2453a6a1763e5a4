"""The fast ListObjectsV2 parser agrees with ElementTree, and falls back where it must."""

from __future__ import annotations

from xml.sax.saxutils import escape

import pytest

from objstore.backends.s3 import S3Store, _parse_listing

KEYS = ["plain", "a&b", "<tag>", "quote\"and'apos", "unicodé ファイル", "x/y z+%"]


def listing_xml(keys: list[str], token: str | None, namespace: bool = True) -> bytes:
    entries = "".join(
        f"<Contents><Key>{escape(k)}</Key><LastModified>2026-11-26T06:00:00.000Z</LastModified>"
        f"<ETag>&quot;e{i}&quot;</ETag><Size>{i * 10}</Size><StorageClass>STANDARD</StorageClass>"
        "</Contents>"
        for i, k in enumerate(keys)
    )
    xmlns = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"' if namespace else ""
    truncated = "true" if token else "false"
    next_token = f"<NextContinuationToken>{escape(token)}</NextContinuationToken>" if token else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult{xmlns}><Name>b</Name>'
        f"<IsTruncated>{truncated}</IsTruncated>{entries}{next_token}</ListBucketResult>"
    ).encode()


@pytest.mark.parametrize("namespace", [True, False])
@pytest.mark.parametrize("token", [None, "tok&en/+="])
def test_fast_parser_matches_elementtree(namespace: bool, token: str | None) -> None:
    body = listing_xml(KEYS, token, namespace)
    fast, fast_token = S3Store._page(body)
    entries, parsed_token, truncated = _parse_listing(body)
    assert [e[0] for e in entries] == KEYS
    assert (parsed_token, truncated) == (token, token is not None)
    assert fast_token == token
    slow = S3Store._contents(*_root(body))
    assert fast == slow
    assert [m.e_tag for m in fast] == [f'"e{i}"' for i in range(len(KEYS))]
    assert [m.size for m in fast] == [i * 10 for i in range(len(KEYS))]


def test_any_element_order() -> None:
    aws = listing_xml(["a", "b&c"], None)
    seaweed = aws.replace(b"<LastModified>2026-11-26T06:00:00.000Z</LastModified>", b"").replace(
        b"</Contents>", b"<LastModified>2026-11-26T06:00:00.000Z</LastModified></Contents>"
    )
    assert _parse_listing(aws) == _parse_listing(seaweed)
    assert [e[0] for e in _parse_listing(seaweed)[0]] == ["a", "b&c"]


def test_unusual_xml_falls_back() -> None:
    body = listing_xml(["k"], None).replace(b"<Key>k</Key>", b"<Key><![CDATA[k]]></Key>")
    page, token = S3Store._page(body)
    assert [m.location for m in page] == ["k"]
    assert token is None
    with pytest.raises(ValueError, match="unusual"):
        _parse_listing(body)


def test_invalid_keys_are_skipped() -> None:
    page, _ = S3Store._page(listing_xml(["ok", "dir/", "a//b"], None))
    assert [m.location for m in page] == ["ok"]


def _root(body: bytes):  # type: ignore[no-untyped-def]
    import xml.etree.ElementTree as ET

    from objstore.backends.s3 import _ns

    root = ET.fromstring(body)
    return root, _ns(root)


def test_common_prefixes() -> None:
    from objstore.backends.s3 import _common_prefixes

    body = (
        b"<ListBucketResult><Prefix>p/</Prefix><CommonPrefixes><Prefix>p/a&amp;b/</Prefix>"
        b"</CommonPrefixes><CommonPrefixes>\n <Prefix>p/c/</Prefix></CommonPrefixes>"
        b"</ListBucketResult>"
    )
    assert _common_prefixes(body) == ["p/a&b", "p/c"]
    cdata = body.replace(b"p/c/", b"<![CDATA[p/c/]]>")
    assert _common_prefixes(cdata) == ["p/a&b", "p/c"]


@pytest.mark.parametrize(
    "raw",
    [
        "&#34;e1&#34;",
        "&quot;e2&quot;",
        "&amp;#34;not a quote&amp;quot;",
        "&#x22;hex&#X22; &lt;a&gt; &apos;",
        "plain",
        "&#34;&amp;&#34;",
    ],
)
def test_xml_text_resolves_entities_as_html_unescape(raw: str) -> None:
    import html

    from objstore.backends._http import xml_text

    assert xml_text(raw.encode()) == html.unescape(raw)


@pytest.mark.parametrize("token", [None, "tok&en/+="])
def test_continuation_token_is_found_before_the_page_is_parsed(token: str | None) -> None:
    from objstore.backends.s3 import _continuation

    body = listing_xml(KEYS, token)
    assert _continuation(body) == token
    assert _continuation(body.replace(b"<Key>plain</Key>", b"<Key><![CDATA[plain]]></Key>")) == (
        token
    )
    # a token on a page that says it is the last one is not followed
    last = body.replace(b"<IsTruncated>true</IsTruncated>", b"<IsTruncated>false</IsTruncated>")
    assert _continuation(last) is None


def test_repeated_timestamps_parse_to_equal_times() -> None:
    keys = ["a", "b", "c"]
    page, _ = S3Store._page(listing_xml(keys, None))
    assert len({m.last_modified for m in page}) == 1
    assert page[0].last_modified.tzinfo is not None


async def test_the_next_page_is_requested_before_this_one_is_handed_out() -> None:
    import asyncio

    from objstore.backends._http import pages_ahead

    started: list[str | None] = []
    bodies = {None: b"page 1", "t2": b"page 2", "t3": b"page 3"}
    after = {b"page 1": "t2", b"page 2": "t3"}

    async def fetch(token: str | None) -> bytes:
        started.append(token)  # the request goes out here
        await asyncio.sleep(0.01)
        return bodies[token]

    pages = pages_ahead(fetch, after.get)
    assert await anext(pages) == b"page 1"
    assert started == [None, "t2"]  # page 2 is on its way while the caller parses page 1
    assert [body async for body in pages] == [b"page 2", b"page 3"]
    assert started == [None, "t2", "t3"]
