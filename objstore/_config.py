"""Declarative configuration: one table of keys per backend, resolved once per store.

A :class:`ConfigKey` declares a canonical name, its aliases, environment variables, a parser,
a default and whether it is secret. :meth:`ConfigTable.resolve` applies the precedence
*explicit option > value from the URL > environment > default*, matches keys case-insensitively,
rejects unknown keys with the nearest valid one, rejects a key given twice under two aliases,
and wraps secret values in :class:`Secret` so that no ``repr``, log line or error shows them.
"""

from __future__ import annotations

import math
import pickle
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from objstore._errors import ConfigError, UnknownOptionError
from objstore._record import record

__all__ = [
    "CLIENT_KEYS",
    "COMMON_KEYS",
    "Config",
    "ConfigKey",
    "ConfigTable",
    "Secret",
    "parse_bool",
    "parse_choice",
    "parse_duration",
    "parse_float",
    "parse_int",
    "parse_str",
]


class Secret:
    """A secret string: masked in ``repr``/``str``, refuses to pickle; ``reveal()`` reads it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret value (for the code that signs requests, nothing else)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[Any, ...]:
        raise pickle.PicklingError("objstore secrets do not pickle")


def parse_str(value: object) -> str:
    """Accept a string (numbers are turned into their text)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"expected a string, got {type(value).__name__}")


_TRUE = {"true", "1", "yes", "on", "y", "t"}
_FALSE = {"false", "0", "no", "off", "n", "f"}


def parse_bool(value: object) -> bool:
    """Accept a bool or ``true/false/1/0/yes/no/on/off`` in any case."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("expected a boolean (true/false/1/0/yes/no)")


_DURATION_UNITS = {
    "ns": 1e-9,
    "nsec": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "usec": 1e-6,
    "ms": 1e-3,
    "msec": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hrs": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
}
_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zµ]*)\s*", re.IGNORECASE)


def parse_duration(value: object) -> float:
    """Accept seconds as a number, or a humantime string (``"30s"``, ``"5 min"``, ``"1h 30m"``)."""
    if isinstance(value, bool):
        raise TypeError("expected a duration, got bool")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip()
        pos, seconds, matched = 0, 0.0, False
        while pos < len(text):
            match = _DURATION_PART.match(text, pos)
            if not match or match.end() == pos:
                raise ValueError("expected a duration such as 30, '30s', '500ms' or '5 min'")
            unit = match.group(2).lower() or "s"
            if unit not in _DURATION_UNITS:
                raise ValueError(f"unknown duration unit {match.group(2)!r}")
            seconds += float(match.group(1)) * _DURATION_UNITS[unit]
            pos, matched = match.end(), True
        if not matched:
            raise ValueError("expected a duration such as 30, '30s', '500ms' or '5 min'")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if not math.isfinite(seconds):
        raise ValueError("a duration must be finite")
    return seconds


def parse_deadline(value: object) -> float:
    """A duration longer than zero: a deadline of zero would fail every request at once."""
    seconds = parse_duration(value)
    if seconds == 0:
        raise ValueError("must be longer than 0 (a zero deadline fails every request)")
    return seconds


def parse_float(value: object) -> float:
    """Accept a finite number or its text."""
    if isinstance(value, bool):
        raise TypeError("expected a number, got bool")
    number = float(value) if isinstance(value, int | float) else float(str(value).strip())
    if not math.isfinite(number):
        raise ValueError("expected a finite number")
    return number


def parse_growth(value: object) -> float:
    """A backoff growth factor: at least 1, or backoffs would shrink."""
    number = parse_float(value)
    if number < 1:
        raise ValueError("must be at least 1")
    return number


def parse_int(minimum: int = 0) -> Callable[[object], int]:
    """Return a parser for integers of at least ``minimum``."""

    def parse(value: object) -> int:
        if isinstance(value, bool):
            raise TypeError("expected an integer, got bool")
        if isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        else:
            try:
                number = int(str(value).strip())
            except ValueError:
                raise ValueError("expected a whole number such as 3") from None
        if number < minimum:
            raise ValueError(f"must be at least {minimum}")
        return number

    return parse


def parse_choice(*choices: str) -> Callable[[object], str]:
    """Return a parser that accepts one of ``choices`` (case-insensitive)."""

    def parse(value: object) -> str:
        text = parse_str(value).strip().lower()
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return text

    return parse


@record(kw_only=False)
class ConfigKey:
    """One option: its canonical name, aliases, environment variables, parser and default."""

    name: str
    aliases: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    secret: bool = False
    credential: bool = False
    """Names a credential whose secret half is another key (an access key id): a store pickled
    without its secrets drops it too, so the unpickled store resolves credentials afresh."""
    parse: Callable[[object], Any] = parse_str
    default: Any = None
    doc: str = ""


@record(kw_only=False)
class ConfigValue:
    """An effective option value and where it came from (``option``, ``url``, ``env NAME``)."""

    value: Any
    source: str


def _mask(value: Any) -> Any:
    return "********" if isinstance(value, Secret) else value


@record(kw_only=False)
class Config(Mapping[str, Any]):
    """A store's effective configuration: canonical key to value, secrets masked in ``repr``."""

    backend: str
    entries: dict[str, ConfigValue]
    credentials: frozenset[str] = frozenset()
    """The keys that travel only with the secrets (see ``ConfigKey.credential``)."""

    def __getitem__(self, key: str) -> Any:
        return self.entries[key].value

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def source(self, key: str) -> str:
        """Say where the value of ``key`` came from."""
        return self.entries[key].source

    def describe(self) -> list[tuple[str, Any, str]]:
        """Return ``(key, value, source)`` rows, secrets masked."""
        return [(k, _mask(v.value), v.source) for k, v in sorted(self.entries.items())]

    def explicit_options(self, *, with_secrets: bool) -> dict[str, Any]:
        """Return the values given as options or from the environment, to rebuild the store.

        Secret values are revealed when ``with_secrets`` is true and dropped otherwise (with
        the keys that name their credential).
        """
        out: dict[str, Any] = {}
        for key, cv in self.entries.items():
            if cv.source == "default":
                continue
            if isinstance(cv.value, Secret) or key in self.credentials:
                if with_secrets:
                    out[key] = cv.value.reveal() if isinstance(cv.value, Secret) else cv.value
                continue
            out[key] = cv.value
        return out

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={_mask(v.value)!r}" for k, v in sorted(self.entries.items()))
        return f"Config({self.backend}: {body})"


class ConfigTable:
    """The option keys one backend accepts, with their aliases and environment variables."""

    def __init__(
        self,
        backend: str,
        keys: Iterable[ConfigKey],
        *,
        env_prefix: str | None = None,
    ) -> None:
        self.backend = backend
        self.keys: dict[str, ConfigKey] = {}
        self._aliases: dict[str, ConfigKey] = {}
        for key in keys:
            self.keys[key.name] = key
            for alias in (key.name, *key.aliases):
                self._aliases[alias.lower()] = key
        self.credentials = frozenset(k.name for k in self.keys.values() if k.credential)
        self._env: list[tuple[str, ConfigKey]] = []
        for key in self.keys.values():
            names = key.env
            if not names and env_prefix and key in _CLIENT_SET:
                names = (env_prefix + key.name.upper(),)
            self._env.extend((name, key) for name in names)

    def markdown(self) -> str:
        """Render the table's keys as a Markdown table (the README's tables are made by this)."""
        rows = ["| key | aliases | environment | default | notes |", "|---|---|---|---|---|"]
        for key in self.keys.values():
            env = [name for name, k in self._env if k is key]
            default = "" if key.default is None else f"`{key.default}`"
            notes = ("secret. " if key.secret else "") + key.doc
            rows.append(
                f"| `{key.name}` | {', '.join(f'`{a}`' for a in key.aliases)} | "
                f"{', '.join(f'`{e}`' for e in env)} | {default} | {notes.strip()} |"
            )
        return "\n".join(rows)

    def lookup(self, name: str) -> ConfigKey:
        """Return the key an option name or alias stands for.

        Raises:
            UnknownOptionError: no key has that name; the message suggests the nearest.
        """
        if not isinstance(name, str):
            raise UnknownOptionError(f"option names must be str, not {type(name).__name__}")
        key = self._aliases.get(name.strip().lower())
        if key is None:
            import difflib

            near = difflib.get_close_matches(name.lower(), list(self._aliases), n=1, cutoff=0.6)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise UnknownOptionError(f"unknown option {name!r} for the {self.backend} store{hint}")
        return key

    def _parse(self, key: ConfigKey, value: object, where: str) -> Any:
        if isinstance(value, Secret):
            value = value.reveal()
        try:
            parsed = key.parse(value)
        except (TypeError, ValueError) as exc:
            shown = "" if key.secret else f" {value!r}"
            raise ConfigError(f"invalid value{shown} for {where}: {exc}") from None
        return Secret(parsed) if key.secret and isinstance(parsed, str) else parsed

    def resolve(
        self,
        options: Mapping[str, Any] | None = None,
        url_values: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Config:
        """Resolve options, URL values, environment and defaults into a :class:`Config`.

        Raises:
            UnknownOptionError: an option key is unknown.
            ConfigError: a value does not parse, or a key is given twice under two aliases.
        """
        values: dict[str, ConfigValue] = {}
        given_as: dict[str, str] = {}
        for name, value in (options or {}).items():
            key = self.lookup(name)
            if key.name in given_as:
                raise ConfigError(
                    f"option {key.name!r} given twice, as {given_as[key.name]!r} and {name!r}"
                )
            given_as[key.name] = name
            if value is None:
                continue
            values[key.name] = ConfigValue(self._parse(key, value, f"option {name!r}"), "option")
        for name, value in (url_values or {}).items():
            key = self.keys[name]
            if key.name not in values and value is not None:
                values[key.name] = ConfigValue(
                    self._parse(key, value, f"{name!r} in the URL"), "url"
                )
        for env_name, key in self._env:
            if environ is not None and key.name not in values and env_name in environ:
                raw = environ[env_name]
                parsed = self._parse(key, raw, f"environment variable {env_name}")
                values[key.name] = ConfigValue(parsed, f"env {env_name}")
        for key in self.keys.values():
            if key.name not in values and key.default is not None:
                values[key.name] = ConfigValue(key.default, "default")
        return Config(self.backend, values, self.credentials)


COMMON_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey(
        "allow_pickle_secrets",
        parse=parse_bool,
        default=False,
        doc="Let a pickled store carry its secrets (for trusted worker processes).",
    ),
)

CLIENT_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey("allow_http", parse=parse_bool, default=False, doc="Allow plain-HTTP endpoints."),
    ConfigKey(
        "allow_invalid_certificates",
        parse=parse_bool,
        default=False,
        doc="Skip TLS certificate checks (test servers only).",
    ),
    ConfigKey(
        "disable_system_certificates",
        parse=parse_bool,
        default=False,
        doc="Trust only the certificates given, not the system store.",
    ),
    ConfigKey("connect_timeout", parse=parse_deadline, default=5.0, doc="Seconds to connect."),
    ConfigKey(
        "timeout",
        parse=parse_deadline,
        default=30.0,
        doc="Deadline of a request up to its response's headers, renewed as an upload's "
        "body is taken; a response body may wait this long for data in all, renewed with "
        "each 64 KiB received (a flowing body is never cut).",
    ),
    ConfigKey("read_timeout", parse=parse_deadline, doc="Longest wait for the next body bytes."),
    ConfigKey("default_content_type", doc="Content-Type of writes that set none."),
    ConfigKey("http1_only", parse=parse_bool, default=True, doc="Speak HTTP/1.1 only (always)."),
    ConfigKey(
        "http2_only", parse=parse_bool, default=False, doc="Refused when true: HTTP/1.1 only."
    ),
    ConfigKey("http2_keep_alive_interval", parse=parse_duration, doc="Accepted; no HTTP/2."),
    ConfigKey("http2_keep_alive_timeout", parse=parse_duration, doc="Accepted; no HTTP/2."),
    ConfigKey("http2_keep_alive_while_idle", parse=parse_bool, doc="Accepted; no HTTP/2."),
    ConfigKey("http2_max_frame_size", parse=parse_int(16384), doc="Accepted; no HTTP/2."),
    ConfigKey(
        "pool_idle_timeout",
        parse=parse_duration,
        default=90.0,
        doc="Close pooled connections idle this long.",
    ),
    ConfigKey(
        "pool_max_idle_per_host", parse=parse_int(0), doc="Most open connections (default 100)."
    ),
    ConfigKey("proxy_url", secret=True, doc="HTTP(S) proxy; may carry credentials."),
    ConfigKey("proxy_ca_certificate", doc="PEM of a CA to trust (the proxy's), for every host."),
    ConfigKey(
        "proxy_excludes",
        doc="Comma-separated hosts, domains (with subdomains), IPs, networks or * not proxied.",
    ),
    ConfigKey(
        "randomize_addresses", parse=parse_bool, default=True, doc="Shuffle resolved addresses."
    ),
    ConfigKey("user_agent", doc="User-Agent header."),
    ConfigKey("max_retries", parse=parse_int(0), default=10, doc="Retries after the first try."),
    ConfigKey(
        "retry_timeout",
        parse=parse_deadline,
        default=180.0,
        doc="Deadline of an operation, retries included.",
    ),
    ConfigKey("backoff_initial", parse=parse_duration, default=0.1, doc="First backoff."),
    ConfigKey(
        "backoff_max",
        parse=parse_duration,
        default=15.0,
        doc="Longest backoff, and longest wait a server's Retry-After gets.",
    ),
    ConfigKey("backoff_base", parse=parse_growth, default=2.0, doc="Backoff growth factor."),
)
_CLIENT_SET = frozenset(CLIENT_KEYS)


def cloud_client_keys(cloud: str) -> tuple[ConfigKey, ...]:
    """The client keys for one cloud: ``allow_http`` also answers to ``<cloud>_allow_http``
    and ``<CLOUD>_ALLOW_HTTP`` (object_store's names); the others take the cloud's env prefix."""
    allow_http = ConfigKey(
        "allow_http", aliases=(f"{cloud}_allow_http",), env=(f"{cloud.upper()}_ALLOW_HTTP",),
        parse=parse_bool, default=False, doc="Allow plain-HTTP endpoints.",
    )  # fmt: skip
    return tuple(allow_http if key.name == "allow_http" else key for key in CLIENT_KEYS)
