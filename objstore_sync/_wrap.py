"""Typed blocking twins of the async store's methods, one line each in the blocking store."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from objstore._errors import ObjstoreTimeoutError

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
        try:
            return self._run(coro)
        except ObjstoreTimeoutError as exc:
            if exc.operation is None:  # the call_timeout's, raised where the call is unknown
                exc.operation, exc.store = name, self._store.url
                exc.path = args[0] if args and isinstance(args[0], str) else None
                exc.message = f"{name}({exc.path!r}): {exc.message}" if exc.path else exc.message
            raise

    return twin  # functools.wraps sets __wrapped__: inspect.signature shows the async parameters
