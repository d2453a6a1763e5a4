"""Typed blocking twins of the async store's methods, one line each in the blocking store."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

if TYPE_CHECKING:
    from objstore_sync._store import ObjectStore

__all__ = ["blocking"]

P = ParamSpec("P")
T = TypeVar("T")


def blocking(
    method: Callable[Concatenate[Any, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[ObjectStore, P], T]:
    """Return the blocking twin of an async store method (same name, parameters and docs)."""
    name = method.__name__

    @functools.wraps(method)
    def twin(self: ObjectStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
        coro: Coroutine[Any, Any, T] = getattr(self._store, name)(*args, **kwargs)
        return self._run(coro)

    return twin  # functools.wraps sets __wrapped__: inspect.signature shows the async parameters
