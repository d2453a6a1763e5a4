"""Object paths: validated ``/``-delimited keys whose prefixes match whole segments.

The rules are object_store's: no leading or trailing ``/``, no empty, ``.`` or ``..`` segment,
no ASCII control character. Everything else (spaces, unicode, ``%``, ``+``, ``#``, ``?``)
is kept byte-exact. Validation runs once, where a path enters a public method, and is cached.
"""

from __future__ import annotations

import functools
import logging
import re
from urllib.parse import quote, unquote

from objstore._errors import InvalidPathError

__all__ = [
    "DELIMITER",
    "Path",
    "join",
    "listable",
    "parents_below",
    "parse_path",
    "parse_prefix",
    "prefix_from_url",
    "prefix_in_url",
    "strip_prefix",
]

DELIMITER = "/"
MAX_KEY_BYTES = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Path(str):
    """A validated object key. Construct it with :func:`parse_path`, never directly."""

    __slots__ = ()

    @property
    def parts(self) -> list[str]:
        """The key's segments."""
        return self.split(DELIMITER) if self else []

    @property
    def name(self) -> str:
        """The last segment."""
        return self.rpartition(DELIMITER)[2]

    @property
    def parent(self) -> Path:
        """The key without its last segment (the root is ``Path("")``)."""
        return Path(self.rpartition(DELIMITER)[0])

    def child(self, segment: str) -> Path:
        """Return this path extended by one validated segment."""
        _check_segment(segment, segment)
        return Path(f"{self}{DELIMITER}{segment}" if self else segment)

    def is_under(self, prefix: str) -> bool:
        """Say whether the key lies strictly below ``prefix`` (whole segments)."""
        return not prefix or self.startswith(prefix + DELIMITER)


def _reject(raw: object, reason: str) -> InvalidPathError:
    return InvalidPathError(f"invalid path {raw!r}: {reason}", path=repr(raw))


def _check_segment(segment: str, raw: str) -> None:
    if not segment:
        raise _reject(raw, "empty segment (a '//' or a leading or trailing '/')")
    if segment in (".", ".."):
        raise _reject(raw, f"{segment!r} segments are not allowed")


@functools.lru_cache(maxsize=16384)
def _parse(raw: str) -> Path:
    if not raw:
        raise _reject(raw, "a path cannot be empty")
    if _CONTROL.search(raw):
        raise _reject(raw, "control characters are not allowed")
    for segment in raw.split(DELIMITER):
        _check_segment(segment, raw)
    if len(raw) * 4 > MAX_KEY_BYTES and len(raw.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise _reject(raw, f"longer than {MAX_KEY_BYTES} bytes in UTF-8")
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise _reject(raw, "not valid unicode (lone surrogate)") from None
    return Path(raw)


def parse_path(raw: object) -> Path:
    """Validate an object key.

    Raises:
        InvalidPathError: the key breaks a rule; the message names it.
    """
    if type(raw) is Path:
        return raw
    if not isinstance(raw, str):
        raise InvalidPathError(f"a path must be a str, not {type(raw).__name__}", path=repr(raw))
    return _parse(str(raw))


def parse_prefix(raw: object) -> Path:
    """Validate a listing prefix: ``None`` or ``""`` is the root; one trailing ``/`` is allowed."""
    if raw is None or raw == "":
        return Path("")
    if isinstance(raw, str) and raw.endswith(DELIMITER) and len(raw) > 1:
        raw = raw[:-1]
    return parse_path(raw)


def join(prefix: str, key: str) -> Path:
    """Join a store prefix and a validated key."""
    return Path(f"{prefix}{DELIMITER}{key}") if prefix else Path(key)


def strip_prefix(prefix: str, full: str) -> str:
    """Return ``full`` relative to ``prefix`` (which it must lie under)."""
    return full[len(prefix) + 1 :] if prefix else full


def parents_below(key: str, base: str) -> list[str]:
    """The directories a key implies below ``base`` (``a/b/c`` under ``a`` gives ``a/b``)."""
    depth = base.count(DELIMITER) + 1 if base else 0
    parts = key.split(DELIMITER)
    return [DELIMITER.join(parts[:end]) for end in range(depth + 1, len(parts))]


def prefix_from_url(path: str) -> str:
    """A URL's path as a store prefix: percent-escapes decoded (a URL is percent-encoded, so
    ``s3://b/my%20dir`` is rooted at ``my dir``, as in object_store and ``file://`` URLs),
    outer ``/`` stripped."""
    return unquote(path).strip(DELIMITER)


_URL_UNSAFE = re.compile(r"[%#?\s]")


def prefix_in_url(prefix: str) -> str:
    """A store prefix as it goes back into a URL: what would read differently there
    (``%``, ``#``, ``?``, whitespace) percent-encoded, the rest left readable."""
    return _URL_UNSAFE.sub(lambda match: quote(match.group()), prefix)


def listable(key: str, log: logging.Logger) -> bool:
    """Whether a key a listing gave is a valid object key; one that is not (another client
    may write ``a//b`` or ``../x``) is skipped, and ``log`` says so at debug level."""
    try:
        parse_path(key)
    except InvalidPathError:
        log.debug("listing skips %r: not a valid object key", key)
        return False
    return True
