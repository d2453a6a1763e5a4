"""``Fill``: a ``bytes`` of known size filled in place (large GET bodies)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

from objstore import _fill
from objstore._fill import HUGE_PAGE, Fill


@pytest.fixture(params=["native", "fallback"])
def kind(request: pytest.FixtureRequest) -> Iterator[str]:
    """Both ways of building the value: in place (CPython) and a presized ``BytesIO``."""
    saved = list(_fill._native)
    if request.param == "fallback":
        _fill._native[:] = [None]
    try:
        yield request.param
    finally:
        _fill._native[:] = saved


def pieces(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    position, turn = 0, 0
    while position < len(data):
        step = sizes[turn % len(sizes)]
        yield data[position : position + step]
        position += step
        turn += 1


@pytest.mark.parametrize("size", [0, 1, 4097, 5 * HUGE_PAGE + 123])
def test_the_value_is_the_bytes_written(kind: str, size: int) -> None:
    data = os.urandom(size)
    body = Fill(size)
    for chunk in pieces(data, [1, 65536, 7, 262144]):
        body.write(chunk)
    value = body.value()
    assert type(value) is bytes
    assert value == data
    assert hash(value) == hash(bytes(data))
    with pytest.raises(ValueError, match="already taken"):
        body.value()


def test_the_native_path_is_used_on_cpython() -> None:
    if sys.implementation.name != "cpython":
        pytest.skip("the in-place fill is CPython's")
    body = Fill(3 * HUGE_PAGE)
    assert body._view is not None
    body.write(b"x" * (3 * HUGE_PAGE))
    assert body.value() == b"x" * (3 * HUGE_PAGE)


def test_more_than_the_size_is_refused(kind: str) -> None:
    body = Fill(10)
    body.write(b"12345678")
    with pytest.raises(OverflowError, match="11 bytes arrived for a body of 10"):
        body.write(b"abc")
    body.write(b"90")
    assert body.value() == b"1234567890"


def test_a_short_body_has_no_value(kind: str) -> None:
    body = Fill(10)
    body.write(b"123")
    with pytest.raises(ValueError, match="3 of 10 bytes"):
        body.value()


def test_values_are_independent(kind: str) -> None:
    first, second = Fill(5 * HUGE_PAGE), Fill(5 * HUGE_PAGE)
    first.write(b"a" * (5 * HUGE_PAGE))
    second.write(b"b" * (5 * HUGE_PAGE))
    a, b = first.value(), second.value()
    assert a.count(b"a") == len(a)
    assert b.count(b"b") == len(b)
