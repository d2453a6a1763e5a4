"""Records: frozen, slotted value classes with equality, hashing, repr, replace and pickling."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

import pytest

from objstore import ByteRange, InvalidRangeError, ObjectMeta, PutResult
from objstore._record import FrozenInstanceError, record, replace
from objstore._types import make_meta, make_put_result


@record
class Point:
    x: int
    y: int = 0
    label: str | None = None


def test_keyword_only_with_defaults() -> None:
    p = Point(x=1)
    assert (p.x, p.y, p.label) == (1, 0, None)
    with pytest.raises(TypeError):
        Point(1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(y=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(x=1, z=2)  # type: ignore[call-arg]


def test_frozen_and_slotted() -> None:
    p = Point(x=1)
    with pytest.raises(FrozenInstanceError):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        del p.x
    assert not hasattr(p, "__dict__")


def test_value_semantics() -> None:
    assert Point(x=1, y=2) == Point(x=1, y=2)
    assert Point(x=1) != Point(x=2)
    assert hash(Point(x=1, y=2)) == hash(Point(x=1, y=2))
    assert repr(Point(x=1, label="a")) == "Point(x=1, y=0, label='a')"
    assert len({Point(x=1), Point(x=1), Point(x=2)}) == 2


def test_replace_and_pickle() -> None:
    p = Point(x=1, y=2)
    assert replace(p, y=5) == Point(x=1, y=5)
    assert pickle.loads(pickle.dumps(p)) == p


def test_positional_records_validate() -> None:
    assert ByteRange(1, 5) == ByteRange(start=1, end=5)
    with pytest.raises(InvalidRangeError):
        ByteRange(5, 1)


def test_fast_constructors_build_equal_objects() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    meta = ObjectMeta(location="a", size=3, last_modified=when, e_tag="e", version="v")
    assert make_meta("a", 3, when, "e", "v") == meta
    assert make_put_result("e", "v") == PutResult(e_tag="e", version="v")
    assert pickle.loads(pickle.dumps(meta)) == meta
