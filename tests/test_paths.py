"""Path rules, property-based: valid keys round-trip, invalid ones are named in the error."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from objstore import InvalidPathError, Path
from objstore._path import join, parse_path, parse_prefix, strip_prefix

FUZZ_EXAMPLES = 10_000 if os.environ.get("OBJSTORE_SOAK") == "nightly" else 2_000
"""RELIABILITY B8: 2,000 keys on PR runs, 10,000 nightly."""

SEGMENT = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="/\x7f"),
    min_size=1,
    max_size=20,
).filter(lambda s: s not in (".", "..") and not any(ord(c) < 32 for c in s))


@settings(max_examples=FUZZ_EXAMPLES)
@given(st.lists(SEGMENT, min_size=1, max_size=6))
def test_valid_keys_round_trip(segments: list[str]) -> None:
    raw = "/".join(segments)
    if len(raw.encode()) > 1024:
        return
    key = parse_path(raw)
    assert key == raw
    assert isinstance(key, Path)
    assert key.parts == segments
    assert key.name == segments[-1]
    assert key.parent == "/".join(segments[:-1])


@settings(max_examples=FUZZ_EXAMPLES)
@given(st.text(max_size=30))
def test_any_text_is_accepted_or_rejected_with_its_name(raw: str) -> None:
    try:
        key = parse_path(raw)
    except InvalidPathError as exc:
        message = str(exc)
        assert repr(raw) in message
        return
    assert key == raw
    assert not raw.startswith("/")
    assert not raw.endswith("/")
    assert all(seg not in ("", ".", "..") for seg in raw.split("/"))


@pytest.mark.parametrize(
    "raw",
    ["", "/", "/a", "a/", "a//b", ".", "..", "a/./b", "a/../b", "a\x00", "a\nb", "\x7f", "\ud800"],
)
def test_invalid_keys(raw: str) -> None:
    with pytest.raises(InvalidPathError, match="invalid path"):
        parse_path(raw)


def test_overlong_key() -> None:
    parse_path("a" * 1024)
    with pytest.raises(InvalidPathError, match="1024 bytes"):
        parse_path("é" * 600)


def test_non_string() -> None:
    with pytest.raises(InvalidPathError, match="must be a str"):
        parse_path(b"bytes")


def test_prefixes() -> None:
    assert parse_prefix(None) == ""
    assert parse_prefix("") == ""
    assert parse_prefix("a/b/") == "a/b"
    with pytest.raises(InvalidPathError):
        parse_prefix("a//")
    assert Path("a/b/c").is_under("a/b")
    assert not Path("a/bc").is_under("a/b")
    assert not Path("a/b").is_under("a/b")
    assert Path("x").is_under("")


def test_join_and_strip() -> None:
    assert join("", "k") == "k"
    assert join("p/q", "k") == "p/q/k"
    assert strip_prefix("p/q", "p/q/k") == "k"
    assert Path("a").child("b") == "a/b"
    with pytest.raises(InvalidPathError):
        Path("a").child("..")
