"""The behavioural suite every backend passes.

A backend's test module subclasses :class:`StoreConformance` and provides two fixtures:
``store`` (an empty async store) and ``make_store`` (a factory ``prefix -> store`` over the
same underlying bucket/root, for prefix tests). Capabilities the backend lacks are asserted to
raise :class:`NotSupportedError` rather than skipped.
"""

from __future__ import annotations

import array
import asyncio
import io
import pathlib
import pickle
import unicodedata
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import objstore
from objstore import (
    AlreadyExistsError,
    ByteRange,
    InvalidPathError,
    InvalidRangeError,
    InvalidRequestError,
    MultipartUploadError,
    NotFoundError,
    NotModifiedError,
    NotSupportedError,
    ObjectMeta,
    OffsetRange,
    PreconditionFailedError,
    SuffixRange,
    UpdateVersion,
)
from objstore._types import STANDARD_ATTRIBUTES

__all__ = ["SPECIAL_KEYS", "StoreConformance"]

MiB = 1024 * 1024

SPECIAL_KEYS = [
    "with space.txt",
    "unicodé/ファイル.bin",
    "percent%20encoded%2F",
    "plus+sign",
    "hash#fragment",
    "question?mark=1&b=2",
    "equals=sign",
    "tilde~and'quote\"",
    unicodedata.normalize("NFC", "caf\u00e9"),
    unicodedata.normalize("NFD", "caf\u00e9"),
    "a" * 200,
    "emoji/\U0001f600",
]

INVALID_KEYS = ["", "/a", "a/", "a//b", "a/./b", "a/../b", "..", ".", "a\x00b", "tab\there", "\x7f"]


def payload(size: int, seed: int = 0) -> bytes:
    """Deterministic, non-repeating-looking bytes."""
    block = bytes((i * 31 + seed * 7 + (i >> 8)) & 0xFF for i in range(4096))
    return (block * (size // 4096 + 1))[:size]


def expected_failure(test: Any, reason: str) -> Any:
    """A copy of a conformance test, marked as a strict expected failure for one backend.

    The copy matters: a mark put on ``StoreConformance.test_x`` itself would reach every
    backend collected after it.
    """
    import functools

    @functools.wraps(test)
    async def copy(self: Any, *args: Any, **kwargs: Any) -> Any:
        return await test(self, *args, **kwargs)

    copy.pytestmark = list(getattr(test, "pytestmark", []))  # type: ignore[attr-defined]
    return pytest.mark.xfail(strict=True, reason=reason)(copy)


class StoreConformance:
    """Behaviour every :class:`objstore.ObjectStore` must show."""

    @pytest.fixture
    def store(self) -> Any:
        raise NotImplementedError("subclasses provide an empty store")

    @pytest.fixture
    def make_store(self) -> Callable[[str], Any]:
        raise NotImplementedError("subclasses provide a factory prefix -> store")

    # ---- put / get / head --------------------------------------------------------------------

    async def test_put_get_round_trip(self, store: Any) -> None:
        result = await store.put("a/b.txt", b"hello")
        assert isinstance(result, objstore.PutResult)
        assert await store.get("a/b.txt") == b"hello"

    async def test_get_missing_raises_not_found(self, store: Any) -> None:
        with pytest.raises(NotFoundError) as info:
            await store.get("missing/key")
        assert isinstance(info.value, FileNotFoundError)
        assert info.value.path == "missing/key"
        assert info.value.operation == "get"
        assert "missing/key" in str(info.value)

    async def test_head(self, store: Any) -> None:
        before = datetime.now(UTC) - timedelta(minutes=5)
        result = await store.put("h/obj", b"x" * 1234)
        meta = await store.head("h/obj")
        assert isinstance(meta, ObjectMeta)
        assert meta.location == "h/obj"
        assert meta.size == 1234
        assert meta.last_modified.tzinfo is not None
        assert before <= meta.last_modified <= datetime.now(UTC) + timedelta(minutes=5)
        assert meta.e_tag == result.e_tag
        with pytest.raises(NotFoundError):
            await store.head("h/missing")

    async def test_exists(self, store: Any) -> None:
        await store.put("e/x", b"1")
        assert await store.exists("e/x") is True
        assert await store.exists("e/y") is False
        assert await store.exists("e") is False

    async def test_overwrite_changes_content_and_etag(self, store: Any) -> None:
        first = await store.put("o/k", b"one")
        second = await store.put("o/k", b"two!")
        assert await store.get("o/k") == b"two!"
        assert first.e_tag != second.e_tag
        assert (await store.head("o/k")).size == 4

    async def test_empty_object(self, store: Any) -> None:
        await store.put("empty", b"")
        assert await store.get("empty") == b""
        assert (await store.head("empty")).size == 0
        assert await store.get_range("empty", 0) == b""

    async def test_put_rejects_text(self, store: Any) -> None:
        with pytest.raises(InvalidRequestError, match="bytes"):
            await store.put("t", "text")

    # ---- write modes ------------------------------------------------------------------------

    async def test_create_mode(self, store: Any) -> None:
        if not store.capabilities.create_mode:
            with pytest.raises(NotSupportedError):
                await store.put("c/k", b"first", mode="create")
            with pytest.raises(NotSupportedError):
                async with store.open_writer("c/k", mode="create") as writer:
                    await writer.write(b"first")
            assert not await store.exists("c/k")
            return
        await store.put("c/k", b"first", mode="create")
        with pytest.raises(AlreadyExistsError) as info:
            await store.put("c/k", b"second", mode="create")
        assert isinstance(info.value, FileExistsError)
        assert info.value.path == "c/k"
        assert await store.get("c/k") == b"first"

    async def test_create_mode_race_has_one_winner(self, store: Any) -> None:
        if not store.capabilities.create_mode:
            return

        async def attempt(i: int) -> bool:
            try:
                await store.put("race/k", f"writer {i}".encode(), mode="create")
            except AlreadyExistsError:
                return False
            return True

        wins = await asyncio.gather(*(attempt(i) for i in range(32)))
        assert sum(wins) == 1
        winner = wins.index(True)
        assert await store.get("race/k") == f"writer {winner}".encode()

    async def test_update_mode(self, store: Any) -> None:
        if not store.capabilities.update_mode:
            with pytest.raises(NotSupportedError):
                await store.put("u/k", b"x", mode=UpdateVersion(e_tag="x"))
            return
        first = await store.put("u/k", b"v1")
        second = await store.put("u/k", b"v2", mode=UpdateVersion(e_tag=first.e_tag))
        assert await store.get("u/k") == b"v2"
        with pytest.raises(PreconditionFailedError):
            await store.put("u/k", b"v3", mode=UpdateVersion(e_tag=first.e_tag))
        assert await store.get("u/k") == b"v2"
        with pytest.raises(PreconditionFailedError):
            await store.put("u/missing", b"v", mode=UpdateVersion(e_tag=second.e_tag))
        assert not await store.exists("u/missing")
        for large in (False, True):  # an update of no version would overwrite anything
            with pytest.raises(InvalidRequestError, match="names no version"):
                await store.put("u/k", b"v4" * (MiB if large else 1), mode=UpdateVersion())
        assert await store.get("u/k") == b"v2"

    async def test_update_mode_takes_one_etag_in_any_spelling(self, store: Any) -> None:
        if not store.capabilities.update_mode:
            return
        for spell in ('"{}"', "{}", 'W/"{}"', " {} "):  # quoted, bare, weak, padded
            e_tag = (await store.put("spelt", b"old")).e_tag.strip('"')
            await store.put("spelt", b"new", mode=UpdateVersion(e_tag=spell.format(e_tag)))
            assert await store.get("spelt") == b"new", spell
        e_tag = (await store.head("spelt")).e_tag
        not_ones: list[Any] = ["", "*", f'"other", {e_tag}', 5]
        for not_one in not_ones:  # S3 took "" as no condition
            with pytest.raises(InvalidRequestError):
                await store.put("spelt", b"lost", mode=UpdateVersion(e_tag=not_one))
        assert await store.get("spelt") == b"new"

    async def test_update_mode_counter_has_no_lost_update(self, store: Any) -> None:
        if not store.capabilities.update_mode:
            return
        await store.put("counter", b"0")

        async def increment() -> None:
            while True:
                result = await store.get_result("counter")
                value = int(result.data) + 1
                try:
                    await store.put(
                        "counter", str(value).encode(), mode=UpdateVersion(e_tag=result.meta.e_tag)
                    )
                    return
                except PreconditionFailedError:
                    await asyncio.sleep(0)

        await asyncio.gather(*(increment() for _ in range(20)))
        assert await store.get("counter") == b"20"

    async def test_invalid_mode(self, store: Any) -> None:
        with pytest.raises(InvalidRequestError, match="mode"):
            await store.put("m", b"x", mode="append")

    # ---- conditional reads ------------------------------------------------------------------

    async def test_if_match_and_if_none_match(self, store: Any) -> None:
        result = await store.put("cond", b"data")
        got = await store.get_result("cond", if_match=result.e_tag)
        assert got.data == b"data"
        assert got.meta.e_tag == result.e_tag
        with pytest.raises(PreconditionFailedError):
            await store.get_result("cond", if_match='"not-the-etag"')
        with pytest.raises(NotModifiedError):
            await store.get_result("cond", if_none_match=result.e_tag)
        assert (await store.get_result("cond", if_none_match='"other"')).data == b"data"
        with pytest.raises(NotFoundError):
            await store.get_result("nope", if_match=result.e_tag)

    async def test_etag_conditions_in_every_spelling(self, store: Any) -> None:
        # quoted or bare, weak, a list, "*": every backend answers as HTTP says (Azure takes
        # one ETag and no "*" in If-None-Match, S3 and Azure never match a weak tag)
        e_tag = (await store.put("spell", b"data")).e_tag
        bare = e_tag.strip('"')
        for matching in (f'"{bare}"', bare, f'W/"{bare}"', f'"other", "{bare}"', "*"):
            got = await store.get_result("spell", if_match=matching, range=ByteRange(0, 2))
            assert got.data == b"da", matching
            with pytest.raises(NotModifiedError):
                await store.get_result("spell", if_none_match=matching)
            with pytest.raises(NotModifiedError):
                async with store.stream("spell", if_none_match=matching) as chunks:
                    await anext(aiter(chunks))
        for other in ('"other"', '"other", W/"another"'):
            with pytest.raises(PreconditionFailedError):
                await store.get_result("spell", if_match=other)
            assert (await store.get_result("spell", if_none_match=other)).data == b"data"
        for empty in ("", " "):  # no condition to a server, "matches nothing" to the others
            for condition in ("if_match", "if_none_match", "version"):
                with pytest.raises(InvalidRequestError, match="empty"):
                    await store.get_result("spell", **{condition: empty})
            with pytest.raises(InvalidRequestError, match="empty"):
                await store.open_reader("spell", version=empty)

    async def test_modified_since(self, store: Any) -> None:
        await store.put("since", b"data")
        meta = await store.head("since")
        earlier = meta.last_modified - timedelta(hours=1)
        later = meta.last_modified + timedelta(hours=1)
        assert (await store.get_result("since", if_modified_since=earlier)).data == b"data"
        with pytest.raises(NotModifiedError):
            await store.get_result("since", if_modified_since=later)
        assert (await store.get_result("since", if_unmodified_since=later)).data == b"data"
        with pytest.raises(PreconditionFailedError):
            await store.get_result("since", if_unmodified_since=earlier)
        with pytest.raises(InvalidRequestError, match="timezone"):
            await store.get_result("since", if_modified_since=datetime(2020, 1, 1))

    async def test_version(self, store: Any) -> None:
        result = await store.put("ver", b"v1")
        meta = await store.head("ver")
        assert meta.version == result.version
        if result.version is not None:
            got = await store.get_result("ver", version=result.version)
            assert got.data == b"v1"
            assert await store.head("ver", version=result.version) == meta
        # a version the object never had is not found, even where the server ignores the
        # parameter and serves the current object (SeaweedFS unversioned buckets, Azurite)
        with pytest.raises(NotFoundError, match="'ver'"):
            await store.get_result("ver", version="123456")
        with pytest.raises(NotFoundError, match="'ver'") as info:
            await store.head("ver", version="123456")
        assert info.value.operation == "head"
        with pytest.raises(InvalidRequestError, match="version"):
            await store.head("ver", version="")
        with pytest.raises(NotFoundError, match="'ver'"):
            await store.get_result("ver", version="123456", range=ByteRange(0, 1))
        with pytest.raises(NotFoundError, match="'ver'"):
            await store.open_reader("ver", version="123456")

    # ---- ranges -----------------------------------------------------------------------------

    async def test_get_range(self, store: Any) -> None:
        data = payload(10_000)
        await store.put("r", data)
        assert await store.get_range("r", 10, 20) == data[10:20]
        assert await store.get_range("r", start=0, length=4) == data[:4]
        assert await store.get_range("r", 9_990, 20_000) == data[9_990:]
        assert await store.get_range("r", 5_000) == data[5_000:]
        assert await store.get_range("r", 7, 7) == b""
        with pytest.raises(InvalidRangeError):
            await store.get_range("r", 10_000, 10_010)
        with pytest.raises(InvalidRangeError):
            await store.get_range("r", 10_000)  # an offset at the end
        with pytest.raises(InvalidRangeError):
            await store.get_range("r", 10_500, length=0)
        with pytest.raises(InvalidRangeError):
            await store.get_range("r", 20, 10)
        with pytest.raises(InvalidRangeError):
            await store.get_range("r", -1, 10)
        with pytest.raises(InvalidRangeError):
            await store.get_range("r", 0, 10, length=10)

    async def test_range_requests(self, store: Any) -> None:
        data = payload(5000, seed=3)
        await store.put("rr", data)
        got = await store.get_result("rr", range=ByteRange(100, 200))
        assert (got.data, got.range) == (data[100:200], (100, 200))
        got = await store.get_result("rr", range=OffsetRange(4000))
        assert (got.data, got.range) == (data[4000:], (4000, 5000))
        got = await store.get_result("rr", range=SuffixRange(10))
        assert (got.data, got.range) == (data[-10:], (4990, 5000))
        got = await store.get_result("rr", range=SuffixRange(10_000))
        assert got.data == data
        assert got.meta.size == 5000

    async def test_offsets_of_integer_types_and_malformed_ranges(self, store: Any) -> None:
        class Offset:  # NumPy's integers are ints through __index__, as this is
            def __init__(self, value: int) -> None:
                self.value = value

            def __index__(self) -> int:
                return self.value

        await store.put("ix", b"0123456789")
        assert await store.get_range("ix", Offset(2), Offset(5)) == b"234"
        assert await store.get_range("ix", Offset(7), length=Offset(2)) == b"78"
        assert await store.get_ranges("ix", [(Offset(0), Offset(2)), (8, 10)]) == [b"01", b"89"]
        for bad in ([(1, 2, 3)], [5], [(1.0, 2)], [(True, 2)], [("1", "2")], [(1, None)]):
            with pytest.raises(InvalidRangeError):
                await store.get_ranges("ix", bad)
        with pytest.raises(InvalidRangeError, match="must be an int, not float"):
            await store.get_range("ix", 1.5)

    async def test_tuning_and_condition_arguments_are_checked(self, store: Any) -> None:
        # a zero or negative tuning value used to fall back to the default unseen
        await store.put("tune", b"0123456789")
        refused: list[tuple[str, Callable[[], Any]]] = [
            ("part_size", lambda: store.put("t2", b"x", part_size=0)),
            ("part_size", lambda: store.put("t2", iter([b"x"]), part_size=-1)),
            ("max_concurrency", lambda: store.put("t2", b"x", max_concurrency=0)),
            ("coalesce", lambda: store.get_ranges("tune", [(0, 1)], coalesce=-1)),
            ("max_concurrency", lambda: store.get_ranges("tune", [(0, 1)], max_concurrency=0)),
            ("max_concurrency", lambda: store.delete_many(["tune"], max_concurrency=0)),
            ("if_match", lambda: store.get_result("tune", if_match=5)),
            ("version", lambda: store.get_result("tune", version=1)),
        ]
        for name, call in refused:
            with pytest.raises(InvalidRequestError, match=name):
                await call()
        for name, value in (("part_size", 0), ("max_concurrency", 0)):
            with pytest.raises(InvalidRequestError, match=name):
                store.open_writer("t2", **{name: value})
        assert not await store.exists("t2")
        assert await store.get("tune") == b"0123456789"

    async def test_get_ranges(self, store: Any) -> None:
        data = payload(3 * MiB, seed=5)
        await store.put("rs", data)
        ranges = [
            (0, 10),
            (2 * MiB, 2 * MiB + 100),
            (5, 15),
            (100, 100),
            (3 * MiB - 5, 3 * MiB + 9),
        ]
        progress: list[tuple[int, int | None]] = []
        got = await store.get_ranges(
            "rs", ranges, coalesce=1024, progress=lambda d, t: progress.append((d, t))
        )
        assert got == [data[s:e] for s, e in ranges]
        assert progress
        assert progress[-1][0] == progress[-1][1]
        assert await store.get_ranges("rs", []) == []
        with pytest.raises(InvalidRangeError):
            await store.get_ranges("rs", [(0, 10), (3 * MiB, 3 * MiB + 1)])

    # ---- attributes and tags ----------------------------------------------------------------

    async def test_attributes_round_trip(self, store: Any) -> None:
        attributes = {
            "content_type": "text/plain; charset=utf-8",
            "content_encoding": "identity",
            "content_disposition": 'attachment; filename="a.txt"',
            "content_language": "en",
            "cache_control": "max-age=60",
            "owner": "team-a",
        }
        if await _refuses_attributes(store, "attr", attributes):
            return
        await store.put("attr", b"x", attributes=attributes)
        got = await store.get_result("attr")
        for key, value in attributes.items():
            assert got.attributes.get(key) == value
        with pytest.raises(InvalidRequestError, match="bad key"):
            await store.put("attr2", b"x", attributes={"bad key": "v"})
        with pytest.raises(InvalidRequestError, match="str"):
            await store.put("attr2", b"x", attributes={"content_type": 5})
        with pytest.raises(InvalidRequestError, match="invalid attribute name 'owner\\\\n'"):
            await store.put("attr2", b"x", attributes={"owner\n": "v"})
        assert not await store.exists("attr2")

    async def test_attributes_by_their_http_names(self, store: Any) -> None:
        spelled = {
            "Content-Type": "text/csv",
            "cache-control": "no-cache",
            "CONTENT_LANGUAGE": "de",
        }
        if await _refuses_attributes(store, "http-attr", spelled):
            return
        await store.put("http-attr", b"x", attributes=spelled)
        got = (await store.get_result("http-attr")).attributes
        assert (got.get("content_type"), got.get("cache_control")) == ("text/csv", "no-cache")
        assert got.get("content_language") == "de"
        assert set(got) <= STANDARD_ATTRIBUTES  # none of them stored as user metadata
        clash = {"content_type": "text/csv", "Content-Type": "text/plain"}
        with pytest.raises(InvalidRequestError, match="'content_type' and 'Content-Type'"):
            await store.put("http-attr2", b"x", attributes=clash)
        assert not await store.exists("http-attr2")

    async def test_metadata_names_are_case_insensitive(self, store: Any) -> None:
        # S3 and GCS keep no case in metadata names: every backend answers alike
        if await _refuses_attributes(store, "case", {"Owner": "a"}):
            return
        await store.put("case", b"x", attributes={"Owner": "a", "mixedCase_Key": "b"})
        got = (await store.get_result("case")).attributes
        assert {k: v for k, v in got.items() if k not in STANDARD_ATTRIBUTES} == {
            "owner": "a",
            "mixedcase_key": "b",
        }
        with pytest.raises(InvalidRequestError, match="'owner' and 'OWNER'"):
            await store.put("case2", b"x", attributes={"owner": "a", "OWNER": "b"})
        assert not await store.exists("case2")

    async def test_attribute_values_that_no_http_header_carries(self, store: Any) -> None:
        if await _refuses_attributes(store, "hdr", {"owner": "x"}):
            return
        refused = [
            ({"owner": "a\r\nX-Injected: 1"}, "control character"),
            ({"content_type": "text/plain\n"}, "control character"),
            ({"content_disposition": 'attachment; filename="résumé.pdf"'}, "filename\\*="),
            ({"Content-Language": "français"}, "'Content-Language' must be ASCII"),
        ]
        for attributes, message in refused:
            with pytest.raises(InvalidRequestError, match=message):
                await store.put("hdr", b"x", attributes=attributes)
        assert not await store.exists("hdr")
        text = {"author": "José 日本 " + "ü" * 40, "literal": "=?UTF-8?B?YWJj?=", "tab": "a\tb"}
        if not store.capabilities.text_metadata:
            with pytest.raises(InvalidRequestError, match="ASCII"):
                await store.put("hdr", b"x", attributes=text)
            assert not await store.exists("hdr")
            return
        await store.put("hdr", b"x", attributes=text)
        got = (await store.get_result("hdr")).attributes
        assert {key: got.get(key) for key in text} == text

    async def test_tags_round_trip(self, store: Any) -> None:
        tags = {"team": "a b", "cost-centre": "4:2/x=y+z_.", "empty": ""}
        if not store.capabilities.tags:
            with pytest.raises(NotSupportedError):
                await store.put("tag", b"x", tags={"k": "v"})
            await store.put("tag", b"x")
            with pytest.raises(NotSupportedError, match="tags"):
                await store.get_tags("tag")
            return
        await store.put("tag", b"x", tags=tags)
        assert await store.get("tag") == b"x"
        assert await store.get_tags("tag") == tags
        async with store.open_writer("tag-w", tags={"k": "v"}, part_size=5 * MiB) as writer:
            await writer.write(bytes(6 * MiB))  # two parts
        assert await store.get_tags("tag-w") == {"k": "v"}
        await store.copy("tag", "tag-c")
        await store.copy_if_not_exists("tag", "tag-n")
        await store.rename("tag-c", "tag-r")
        assert [await store.get_tags(k) for k in ("tag-n", "tag-r")] == [tags, tags]
        await store.put("tag", b"z")  # an overwrite without tags keeps none
        assert await store.get_tags("tag") == {}
        with pytest.raises(NotFoundError):
            await store.get_tags("no-such-tag")

    async def test_tags_are_checked(self, store: Any) -> None:
        if not store.capabilities.tags:
            return
        refused = [
            ({f"k{i}": "v" for i in range(11)}, "at most 10"),
            ({"": "v"}, "1-128"),
            ({"k" * 129: "v"}, "1-128"),
            ({"k": "v" * 257}, "256"),
            ({"k": "a,b"}, "'a,b' holds a character"),
            ({"k\n": "v"}, "holds a character"),
            ({"k": 5}, "must be str"),
        ]
        for tags, message in refused:
            with pytest.raises(InvalidRequestError, match=message):
                await store.put("bad-tag", b"x", tags=tags)
        assert not await store.exists("bad-tag")

    # ---- listing ----------------------------------------------------------------------------

    async def test_list_prefix_matches_whole_segments(self, store: Any) -> None:
        for key in ("a/b/1", "a/b/2", "a/bc/3", "a/b.txt", "ab/4", "z"):
            await store.put(key, b"x")
        assert [m.location for m in await store.list("a/b")] == ["a/b/1", "a/b/2"]
        assert [m.location for m in await store.list("a/b/")] == ["a/b/1", "a/b/2"]
        assert [m.location for m in await store.list("a")] == [
            "a/b.txt", "a/b/1", "a/b/2", "a/bc/3",
        ]  # fmt: skip
        everything = [m.location for m in await store.list()]
        assert everything == sorted(everything)
        assert set(everything) == {"a/b/1", "a/b/2", "a/bc/3", "a/b.txt", "ab/4", "z"}
        assert await store.list("nothing/here") == []
        assert await store.list("a/b/1") == []

    async def test_common_prefixes_in_listing_order(self, store: Any) -> None:
        # each prefix sorts with its "/": "p/b-y/" and "p/b.z/" come before "p/b/"
        for key in ("p/b/x", "p/b-y/x", "p/b.z/x", "p/a/x", "p/ü/x"):
            await store.put(key, b"x")
        result = await store.list_with_delimiter("p")
        assert result.common_prefixes == ["p/a", "p/b-y", "p/b.z", "p/b", "p/ü"]

    async def test_key_that_is_also_a_prefix(self, store: Any) -> None:
        await store.put("n/b/1", b"x")
        if not store.capabilities.object_and_prefix:
            with pytest.raises(objstore.KeyConflictError):
                await store.put("n/b", b"x")
            with pytest.raises(objstore.KeyConflictError):
                await store.put("n/b/1/deeper", b"x")
            assert [m.location for m in await store.list("n")] == ["n/b/1"]
            return
        await store.put("n/b", b"y")
        await store.put("n/b/1/deeper", b"z")
        assert [m.location for m in await store.list("n/b")] == ["n/b/1", "n/b/1/deeper"]
        assert [m.location for m in await store.list("n")] == ["n/b", "n/b/1", "n/b/1/deeper"]
        result = await store.list_with_delimiter("n")
        assert (result.common_prefixes, [m.location for m in result.objects]) == (["n/b"], ["n/b"])

    async def test_list_metadata(self, store: Any) -> None:
        result = await store.put("lm/x", b"12345")
        (meta,) = await store.list("lm")
        assert (meta.location, meta.size, meta.e_tag) == ("lm/x", 5, result.e_tag)
        assert meta.last_modified.tzinfo is not None

    async def test_list_offset(self, store: Any) -> None:
        keys = ["o/a", "o/b", "o/c/d", "o/d"]
        for key in keys:
            await store.put(key, b"x")
        assert [m.location for m in await store.list("o", offset="o/b")] == ["o/c/d", "o/d"]
        assert [m.location for m in await store.list(offset="o/c")] == ["o/c/d", "o/d"]

    async def test_list_with_delimiter(self, store: Any) -> None:
        for key in ("d/a.txt", "d/b/1", "d/b/2", "d/c/x/y", "d2/z", "top"):
            await store.put(key, b"x")
        result = await store.list_with_delimiter("d")
        assert result.common_prefixes == ["d/b", "d/c"]
        assert [m.location for m in result.objects] == ["d/a.txt"]
        root = await store.list_with_delimiter()
        assert root.common_prefixes == ["d", "d2"]
        assert [m.location for m in root.objects] == ["top"]
        assert (await store.list_with_delimiter("d/")).common_prefixes == ["d/b", "d/c"]
        empty = await store.list_with_delimiter("none")
        assert (empty.common_prefixes, empty.objects) == ([], [])

    async def test_emptied_prefixes_are_not_listed(self, store: Any) -> None:
        for key in ("gone/a", "gone/sub/b", "kept/c"):
            await store.put(key, b"x")
        await store.delete("gone/a")
        await store.delete_many(["gone/sub/b"])
        root = await store.list_with_delimiter()
        assert (root.common_prefixes, root.objects) == (["kept"], [])
        gone = await store.list_with_delimiter("gone")
        assert (gone.common_prefixes, gone.objects) == ([], [])

    async def test_list_iter_streams_many_pages(self, store: Any) -> None:
        keys = [f"many/{i:05d}" for i in range(1100)]
        await asyncio.gather(*(store.put(k, b"") for k in keys))
        seen = [m.location async for m in store.list_iter("many")]
        assert seen == keys

    async def test_list_versions_lists_what_reads_see(self, store: Any) -> None:
        # every store lists versions; one without history (memory, local, an unversioned
        # bucket) lists each object as it is now, its one and latest version
        await store.put("lv/a", b"1")
        await store.put("lv/a", b"one more")
        await store.put("lv/b/c", b"22")
        await store.put("lv2/x", b"3")
        versions = await store.list_versions("lv")
        assert all(isinstance(v, objstore.ObjectVersion) for v in versions)
        assert [v.location for v in versions if v.is_latest] == ["lv/a", "lv/b/c"]
        assert [v.location for v in versions] == sorted(v.location for v in versions)
        for latest in (v for v in versions if v.is_latest):
            meta = await store.head(latest.location)
            assert (latest.size, latest.e_tag, latest.version) == (meta.size, meta.e_tag,
                                                                   meta.version)  # fmt: skip
            assert not latest.deleted
            assert latest.last_modified.tzinfo is not None
        for older in (v for v in versions if not v.is_latest):  # where the store keeps them
            result = await store.get_result(older.location, version=older.version)
            assert len(result.data) == older.size
        assert [v.location for v in await store.list_versions("lv/b")] == ["lv/b/c"]
        assert await store.list_versions("none") == []
        seen = [v.location async for v in store.list_versions_iter("lv2")]
        assert seen == ["lv2/x"]

    async def test_deleting_a_version_it_lacks_leaves_the_object(self, store: Any) -> None:
        await store.put("dv/k", b"one")
        await store.delete("dv/k", version="123456")  # not an error, and nothing removed
        assert await store.get("dv/k") == b"one"
        for bad in ("", " ", 7):
            with pytest.raises(InvalidRequestError, match="version"):
                await store.delete("dv/k", version=bad)
        assert await store.get("dv/k") == b"one"

    async def test_deleting_the_latest_version_by_its_id(self, store: Any) -> None:
        await store.put("dl/k", b"one")
        (latest,) = await store.list_versions("dl")
        if latest.version is None:  # local, Azurite, an unversioned S3 bucket: no ids
            return
        await store.delete("dl/k", version=latest.version)
        assert not await store.exists("dl/k")
        with pytest.raises(NotFoundError):
            await store.get_result("dl/k", version=latest.version)

    async def test_copy_a_version(self, store: Any) -> None:
        await store.put("cv/k", b"one", attributes={"content_type": "text/x-one"})
        with pytest.raises(NotFoundError, match="'cv/k'"):  # even where servers ignore the id
            await store.copy("cv/k", "cv/c", version="123456")
        with pytest.raises(InvalidRequestError, match="version"):
            await store.copy("cv/k", "cv/c", version="")
        assert not await store.exists("cv/c")
        (latest,) = await store.list_versions("cv")
        if latest.version is None:  # local, Azurite, an unversioned S3 bucket: no ids
            return
        await store.copy("cv/k", "cv/c", version=latest.version)
        copied = await store.get_result("cv/c")
        assert (copied.data, copied.attributes["content_type"]) == (b"one", "text/x-one")
        await store.copy("cv/k", "cv/k", version=latest.version)  # onto itself: a restore
        assert await store.get("cv/k") == b"one"

    # ---- deletes ----------------------------------------------------------------------------

    async def test_delete(self, store: Any) -> None:
        await store.put("del/a", b"x")
        await store.delete("del/a")
        assert not await store.exists("del/a")
        await store.delete("del/a")
        await store.delete("never/existed")
        assert await store.list("del") == []

    async def test_delete_many(self, store: Any) -> None:
        keys = [f"bulk/{i:04d}" for i in range(1500)]
        await asyncio.gather(*(store.put(k, b"x") for k in keys))
        await store.put("keep", b"x")
        count = await store.delete_many([*keys, "bulk/missing"])
        assert count == 1501
        assert await store.list("bulk") == []
        assert await store.exists("keep")

    async def test_delete_many_from_listing(self, store: Any) -> None:
        for i in range(10):
            await store.put(f"gone/{i}", b"x")
        await store.delete_many(store.list_iter("gone"))
        assert await store.list("gone") == []

    # ---- copy / rename ----------------------------------------------------------------------

    async def test_copy(self, store: Any) -> None:
        attributes = {"content_type": "application/x-test"} if store.capabilities.attributes else {}
        await store.put("cp/src", b"source", attributes=attributes)
        await store.put("cp/dst", b"old")
        await store.copy("cp/src", "cp/dst")
        assert await store.get("cp/dst") == b"source"
        assert await store.get("cp/src") == b"source"
        if attributes:
            assert (await store.get_result("cp/dst")).attributes["content_type"] == (
                "application/x-test"
            )
        with pytest.raises(AlreadyExistsError):
            await store.copy_if_not_exists("cp/src", "cp/dst")
        await store.copy_if_not_exists("cp/src", "cp/new")
        assert await store.get("cp/new") == b"source"
        await store.put("cp/empty", b"", attributes=attributes)  # no part to copy
        await store.copy_if_not_exists("cp/empty", "cp/empty-copy")
        copied = await store.get_result("cp/empty-copy")
        assert copied.data == b""
        assert copied.attributes.get("content_type") == attributes.get("content_type")
        with pytest.raises(NotFoundError):
            await store.copy("cp/missing", "cp/x")

    async def test_copies_keep_the_attributes_of_the_bytes_they_copied(self, store: Any) -> None:
        # copies race a writer that rewrites the source: each copy must hold one version
        # whole, bytes and attributes (a copy that must not overwrite reads the source's
        # attributes to add a write token of its own, so it pins them to the bytes it copies)
        if not store.capabilities.attributes:
            return

        def version(i: int) -> dict[str, str]:
            return {"content_type": f"application/x-v{i}", "origin": f"v{i}"}

        await store.put("cpa/src", b"v0", attributes=version(0))

        async def rewrite() -> None:
            for i in range(1, 25):
                await store.put("cpa/src", f"v{i}".encode(), attributes=version(i))

        async def copy(j: int) -> None:
            dst = f"cpa/dst{j}"
            try:
                await (store.copy_if_not_exists if j % 2 else store.copy)("cpa/src", dst)
            except objstore.ConcurrentModificationError:
                assert j % 2, "a plain copy pins nothing"
                assert not await store.exists(dst)  # nothing written
                return
            got = await store.get_result(dst)
            assert got.attributes == version(int(got.data[1:])), dst

        await asyncio.gather(rewrite(), *(copy(j) for j in range(24)))

    async def test_rename(self, store: Any) -> None:
        await store.put("mv/src", b"moving")
        await store.put("mv/other", b"other")
        await store.rename("mv/src", "mv/dst")
        assert await store.get("mv/dst") == b"moving"
        assert not await store.exists("mv/src")
        with pytest.raises(AlreadyExistsError):
            await store.rename_if_not_exists("mv/dst", "mv/other")
        assert await store.get("mv/dst") == b"moving"
        await store.rename_if_not_exists("mv/dst", "mv/final/deeper")
        assert await store.get("mv/final/deeper") == b"moving"
        assert not await store.exists("mv/dst")
        with pytest.raises(NotFoundError):
            await store.rename("mv/missing", "mv/x")

    async def test_copy_and_rename_onto_itself_keep_the_object(self, store: Any) -> None:
        # a cloud rename is a copy and a delete: onto itself it must not delete the only copy
        await store.put("self/obj", b"only copy")
        before = await store.head("self/obj")
        await store.copy("self/obj", "self/obj")
        await store.rename("self/obj", "self/obj")
        assert await store.get("self/obj") == b"only copy"
        assert (await store.head("self/obj")).e_tag == before.e_tag
        for move in (store.copy_if_not_exists, store.rename_if_not_exists):
            with pytest.raises(AlreadyExistsError) as caught:
                await move("self/obj", "self/obj")
            assert caught.value.path == "self/obj"
        assert await store.get("self/obj") == b"only copy"
        for move in (store.copy, store.rename, store.rename_if_not_exists):
            with pytest.raises(NotFoundError):
                await move("self/missing", "self/missing")
        assert not await store.exists("self/missing")

    # ---- keys -------------------------------------------------------------------------------

    @pytest.mark.parametrize("key", SPECIAL_KEYS)
    async def test_special_keys_round_trip(self, store: Any, key: str) -> None:
        data = key.encode("utf-8")
        await store.put(key, data)
        assert await store.get(key) == data
        listed = [m.location for m in await store.list()]
        assert listed == [key]

    async def test_nfc_and_nfd_are_distinct(self, store: Any) -> None:
        nfc = unicodedata.normalize("NFC", "caf\u00e9")
        nfd = unicodedata.normalize("NFD", "caf\u00e9")
        await store.put(nfc, b"nfc")
        await store.put(nfd, b"nfd")
        assert await store.get(nfc) == b"nfc"
        assert await store.get(nfd) == b"nfd"
        assert len(await store.list()) == 2

    @pytest.mark.parametrize("key", INVALID_KEYS)
    async def test_invalid_keys_rejected(self, store: Any, key: str) -> None:
        with pytest.raises(InvalidPathError) as info:
            await store.put(key, b"x")
        assert repr(key) in str(info.value)
        with pytest.raises(InvalidPathError):
            await store.get(key)
        assert await store.list() == []

    async def test_non_str_key_rejected(self, store: Any) -> None:
        with pytest.raises(InvalidPathError, match="str"):
            await store.get(42)

    # ---- payload kinds and multipart ----------------------------------------------------------

    async def test_put_payload_kinds(self, store: Any, tmp_path: pathlib.Path) -> None:
        data = payload(100_000, seed=9)
        source = tmp_path / "source.bin"
        source.write_bytes(data)

        async def agen() -> AsyncIterator[bytes]:
            for i in range(0, len(data), 30_000):
                yield data[i : i + 30_000]

        kinds: dict[str, Any] = {
            "bytearray": bytearray(data),
            "memoryview": memoryview(data),
            "path": source,
            "file": io.BytesIO(data),
            "iterable": [data[i : i + 7000] for i in range(0, len(data), 7000)],
            "async-iterable": agen(),
        }
        for name, value in kinds.items():
            await store.put(f"kinds/{name}", value)
            assert await store.get(f"kinds/{name}") == data, name

    async def test_buffer_protocol_payloads_are_their_bytes(self, store: Any) -> None:
        # array.array, NumPy arrays and pyarrow buffers are bytes-like, not chunk iterables
        ints = array.array("i", range(25_000))
        grid = memoryview(bytearray(range(12))).cast("B", (3, 4))
        kinds: dict[str, Any] = {
            "array": ints,
            "memoryview-of-ints": memoryview(ints),
            "2-d": grid,
            "empty": bytearray(),
            "strided": memoryview(bytes(range(10)))[::2],
            "chunks": [array.array("i", [1, 2]), memoryview(b"xy")],
        }
        for name, value in kinds.items():
            await store.put(f"buf/{name}", value)
        assert await store.get("buf/array") == ints.tobytes()
        assert await store.get("buf/memoryview-of-ints") == ints.tobytes()
        assert await store.get("buf/2-d") == bytes(range(12))
        assert await store.get("buf/strided") == bytes(range(0, 10, 2))
        assert await store.get("buf/empty") == b""
        assert await store.get("buf/chunks") == array.array("i", [1, 2]).tobytes() + b"xy"
        large = array.array("i", range(2_600_000))  # 10.4 MB: multipart on the clouds
        seen: list[tuple[int, int | None]] = []
        await store.put("buf/large", large, part_size=5 * MiB, progress=lambda *p: seen.append(p))
        assert await store.get("buf/large") == large.tobytes()
        assert seen[-1] == (large.itemsize * len(large),) * 2
        async with store.open_writer("buf/written") as writer:
            assert await writer.write(ints) == len(ints.tobytes())
        assert await store.get("buf/written") == ints.tobytes()

    async def test_multipart_put_with_progress(self, store: Any) -> None:
        data = payload(12 * MiB, seed=1)
        seen: list[tuple[int, int | None]] = []
        chunks = [data[i : i + MiB] for i in range(0, len(data), MiB)]
        result = await store.put(
            "mp/big", iter(chunks), part_size=5 * MiB, progress=lambda d, t: seen.append((d, t))
        )
        assert await store.get("mp/big") == data
        assert (await store.head("mp/big")).e_tag == result.e_tag
        assert seen
        assert seen[-1][0] == len(data)
        assert [d for d, _ in seen] == sorted(d for d, _ in seen)

    async def test_open_writer_commits_on_close(self, store: Any) -> None:
        async with store.open_writer("w/ok", part_size=5 * MiB) as writer:
            for i in range(11):
                await writer.write(payload(MiB, seed=i))
            assert not await store.exists("w/ok")
        assert await store.get("w/ok") == b"".join(payload(MiB, seed=i) for i in range(11))
        again = await writer.close()  # closes once, as a file does: the same answer
        assert again.e_tag == (await store.head("w/ok")).e_tag
        with pytest.raises(MultipartUploadError):
            await writer.write(b"late")

    async def test_open_writer_aborts_on_exception(self, store: Any) -> None:
        await store.put("w/keep", b"previous")
        with pytest.raises(RuntimeError, match="boom"):  # noqa: PT012
            async with store.open_writer("w/keep", part_size=5 * MiB) as writer:
                await writer.write(payload(6 * MiB))
                await writer.write(payload(6 * MiB))
                raise RuntimeError("boom")
        assert await store.get("w/keep") == b"previous"
        with pytest.raises(RuntimeError, match="boom"):  # noqa: PT012
            async with store.open_writer("w/new") as writer:
                await writer.write(b"partial")
                raise RuntimeError("boom")
        assert not await store.exists("w/new")
        writer = store.open_writer("w/late")
        await writer.write(b"partial")
        await writer.abort()
        with pytest.raises(MultipartUploadError, match="aborted"):  # never a silent no-op
            await writer.close()
        assert not await store.exists("w/late")
        assert [m.location for m in await store.list("w")] == ["w/keep"]
        assert await store.list_incomplete("w") == []  # aborted, not left behind

    # ---- uploads left by writers that died ----------------------------------------------------

    async def test_dead_writer_upload_is_listed_and_cleaned_up(self, store: Any) -> None:
        await store.put("inc/other", b"committed")
        writer = store.open_writer("inc/dead", part_size=5 * MiB, max_concurrency=1)
        await writer.write(payload(6 * MiB))  # a part is sent (awaited): the upload exists
        # the writer now "dies": neither closed nor aborted
        if not store.capabilities.incomplete_uploads:
            assert await store.list_incomplete("inc") == []
            assert await store.cleanup_incomplete("inc", older_than=0) == 0
            await writer.abort()
            return
        (upload,) = await store.list_incomplete("inc")
        assert upload.location == "inc/dead"
        assert upload.upload_id
        assert abs((datetime.now(UTC) - upload.initiated).total_seconds()) < 600
        assert await store.list_incomplete("elsewhere") == []
        assert await store.cleanup_incomplete("inc", older_than=3600) == 0  # too young
        assert await store.list_incomplete() == [upload]
        await asyncio.sleep(1.0)  # server times have whole seconds
        assert await store.cleanup_incomplete("inc", older_than=timedelta(0)) == 1
        assert await store.list_incomplete("inc") == []
        try:
            await writer.close()  # its upload is gone: a typed error, nothing committed
        except objstore.ObjstoreError:
            assert not await store.exists("inc/dead")
        else:  # Azurite keeps a deleted uncommitted blob's blocks, and the commit finds them
            assert await store.get("inc/dead") == payload(6 * MiB)  # whole, never partial
        assert await store.get("inc/other") == b"committed"
        assert await store.cleanup_incomplete(older_than=0) == 0

    @pytest.mark.parametrize("older_than", [-1, float("nan"), "1h", None, True])
    async def test_cleanup_needs_a_duration(self, store: Any, older_than: Any) -> None:
        with pytest.raises(InvalidRequestError, match="older_than"):
            await store.cleanup_incomplete("inc", older_than=older_than)

    async def test_open_writer_create_mode(self, store: Any) -> None:
        if not store.capabilities.create_mode:
            return  # refused: test_create_mode
        await store.put("w/exists", b"x")
        with pytest.raises(AlreadyExistsError):
            async with store.open_writer("w/exists", mode="create") as writer:
                await writer.write(b"y" * 100)
        assert await store.get("w/exists") == b"x"

    # ---- streaming and readers ----------------------------------------------------------------

    async def test_stream(self, store: Any) -> None:
        data = payload(3 * MiB + 17, seed=2)
        await store.put("s/obj", data, attributes=None)
        seen: list[int] = []
        async with store.stream("s/obj", chunk_size=MiB, progress=lambda d, t: seen.append(d)) as s:
            assert s.meta.size == len(data)
            chunks = [chunk async for chunk in s]
        assert b"".join(chunks) == data
        assert all(len(c) <= MiB for c in chunks)
        assert seen[-1] == len(data)
        async with store.stream("s/obj", range=ByteRange(10, 20)) as s:
            assert s.range == (10, 20)
            assert await s.read_all() == data[10:20]
        with pytest.raises(NotFoundError):
            async with store.stream("s/missing") as s:
                pass

    async def test_stream_early_exit(self, store: Any) -> None:
        await store.put("s/early", payload(2 * MiB))
        async with store.stream("s/early", chunk_size=1024) as s:
            async for _ in s:
                break
        assert await store.get("s/early") == payload(2 * MiB)

    async def test_open_reader(self, store: Any) -> None:
        data = payload(300_000, seed=4)
        await store.put("rd/obj", data)
        async with await store.open_reader("rd/obj", block_size=64 * 1024, read_ahead=2) as r:
            assert r.size == len(data)
            assert await r.read(10) == data[:10]
            assert r.tell() == 10
            r.seek(100_000)
            assert await r.read(70_000) == data[100_000:170_000]
            r.seek(-5, 2)
            assert await r.read() == data[-5:]
            assert await r.read(10) == b""
            assert await r.read_range(5, 15) == data[5:15]
            r.seek(0)
            assert await r.read() == data

    async def test_open_reader_detects_overwrite(self, store: Any) -> None:
        await store.put("rd/changing", payload(200_000))
        async with await store.open_reader("rd/changing", block_size=16 * 1024, read_ahead=0) as r:
            assert await r.read(100) == payload(200_000)[:100]
            await store.put("rd/changing", payload(200_000, seed=8))
            with pytest.raises(objstore.ConcurrentModificationError):
                await r.read_range(150_000, 150_100)

    async def test_open_reader_missing(self, store: Any) -> None:
        with pytest.raises(NotFoundError):
            await store.open_reader("rd/missing")

    # ---- prefixes, pickling, signing ----------------------------------------------------------

    async def test_store_prefix(self, make_store: Callable[[str], Any]) -> None:
        root = make_store("")
        scoped = make_store("scope/inner")
        await scoped.put("a/x", b"1")
        await root.put("scope/other", b"2")
        assert await root.get("scope/inner/a/x") == b"1"
        assert [m.location for m in await scoped.list()] == ["a/x"]
        assert (await scoped.head("a/x")).location == "a/x"
        assert (await scoped.list_with_delimiter()).common_prefixes == ["a"]
        with pytest.raises(NotFoundError) as info:
            await scoped.get("a/missing")
        assert info.value.path == "a/missing"

    async def test_errors_pickle(self, store: Any) -> None:
        with pytest.raises(NotFoundError) as info:
            await store.get("p/missing")
        clone = pickle.loads(pickle.dumps(info.value))
        assert type(clone) is type(info.value)
        assert (clone.path, clone.operation, str(clone)) == (
            info.value.path,
            info.value.operation,
            str(info.value),
        )

    async def test_sign(self, store: Any) -> None:
        if not store.capabilities.sign:
            with pytest.raises(NotSupportedError):
                await store.sign("GET", "x")


async def _refuses_attributes(store: Any, key: str, attributes: dict[str, str]) -> bool:
    """On a store without attributes, check that it refuses them; say whether it did."""
    if store.capabilities.attributes:
        return False
    with pytest.raises(NotSupportedError):
        await store.put(key, b"x", attributes=attributes)
    return True
