"""The configuration framework: aliases, precedence, env, parsing, errors and secrets."""

from __future__ import annotations

import pickle

import pytest

import objstore
from objstore import ConfigError, ConfigKey, Secret, UnknownOptionError
from objstore._config import (
    CLIENT_KEYS,
    ConfigTable,
    parse_bool,
    parse_choice,
    parse_duration,
    parse_int,
)

TABLE = ConfigTable(
    "test",
    (
        ConfigKey("test_region", aliases=("region",), env=("TEST_REGION",), default="us-east-1"),
        ConfigKey("test_secret_key", aliases=("secret_key",), env=("TEST_SECRET_KEY",),
                  secret=True),
        ConfigKey("test_flag", aliases=("flag",), parse=parse_bool, default=False),
        ConfigKey("test_mode", parse=parse_choice("a", "b")),
        *CLIENT_KEYS,
    ),
    env_prefix="TEST_",
)  # fmt: skip


def test_precedence_option_url_env_default() -> None:
    env = {"TEST_REGION": "from-env"}
    assert TABLE.resolve({}, {}, {})["test_region"] == "us-east-1"
    assert TABLE.resolve({}, {}, env)["test_region"] == "from-env"
    config = TABLE.resolve({}, {"test_region": "from-url"}, env)
    assert (config["test_region"], config.source("test_region")) == ("from-url", "url")
    config = TABLE.resolve({"region": "from-option"}, {"test_region": "from-url"}, env)
    assert (config["test_region"], config.source("test_region")) == ("from-option", "option")
    assert TABLE.resolve({}, {}, env).source("test_region") == "env TEST_REGION"
    assert TABLE.resolve({}, {}, {}).source("test_region") == "default"


def test_aliases_are_case_insensitive() -> None:
    assert TABLE.resolve({"REGION": "x"})["test_region"] == "x"
    assert TABLE.resolve({"Test_Region": "y"})["test_region"] == "y"


def test_key_given_twice_is_an_error() -> None:
    with pytest.raises(ConfigError, match="given twice"):
        TABLE.resolve({"region": "a", "test_region": "b"})


def test_unknown_key_suggests_the_nearest() -> None:
    with pytest.raises(UnknownOptionError, match="did you mean 'test_region'") as info:
        TABLE.resolve({"test_regoin": "x"})
    assert isinstance(info.value, ConfigError)
    assert isinstance(info.value, ValueError)
    with pytest.raises(UnknownOptionError, match="unknown option 'zzz'"):
        TABLE.resolve({"zzz": "x"})


def test_client_keys_from_env_use_the_prefix() -> None:
    config = TABLE.resolve({}, {}, {"TEST_TIMEOUT": "45s", "TEST_MAX_RETRIES": "3"})
    assert config["timeout"] == 45.0
    assert config["max_retries"] == 3
    assert config["connect_timeout"] == 5.0


def test_bad_values_name_the_key_and_hide_secrets() -> None:
    with pytest.raises(ConfigError, match="'flag'"):
        TABLE.resolve({"flag": "maybe"})
    with pytest.raises(ConfigError, match="timeout"):
        TABLE.resolve({"timeout": "abc"})
    with pytest.raises(ConfigError, match="max_retries"):
        TABLE.resolve({"max_retries": -1})
    for junk in ("abc", 2.5, "2.5"):  # said plainly, not as int()'s message
        with pytest.raises(ConfigError, match="'max_retries': expected a whole number"):
            TABLE.resolve({"max_retries": junk})
    with pytest.raises(ConfigError, match="TEST_TIMEOUT"):
        TABLE.resolve({}, {}, {"TEST_TIMEOUT": "soon"})
    with pytest.raises(ConfigError, match="one of a, b"):
        TABLE.resolve({"test_mode": "c"})
    with pytest.raises(ConfigError) as info:
        TABLE.resolve({"secret_key": ["canary-secret-value"]})
    assert "canary" not in str(info.value)


def test_secrets_are_masked() -> None:
    config = TABLE.resolve({"secret_key": "canary-secret-value"})
    value = config["test_secret_key"]
    assert isinstance(value, Secret)
    assert value.reveal() == "canary-secret-value"
    for text in (repr(config), str(config), repr(value), str(value), str(config.describe())):
        assert "canary" not in text
    with pytest.raises(pickle.PicklingError):
        pickle.dumps(value)
    assert config.explicit_options(with_secrets=False) == {}
    assert config.explicit_options(with_secrets=True) == {"test_secret_key": "canary-secret-value"}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(30, 30.0), (1.5, 1.5), ("30", 30.0), ("30s", 30.0), ("500ms", 0.5), ("5 min", 300.0),
     ("1h 30m", 5400.0), ("2 days", 172800.0), ("10us", 1e-5)],
)  # fmt: skip
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["abc", "5 parsecs", "-1", "", True, float("nan"), float("inf")])
def test_bad_durations(text: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        parse_duration(text)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("timeout", "0", "longer than 0"), ("connect_timeout", 0, "longer than 0"),
     ("read_timeout", "0s", "longer than 0"), ("retry_timeout", "0 min", "longer than 0"),
     ("backoff_base", "0.5", "at least 1"), ("backoff_base", "nan", "finite"),
     ("timeout", float("inf"), "finite")],
)  # fmt: skip
def test_deadlines_that_would_fail_every_request_are_refused(
    key: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=f"'{key}'.*{message}"):
        objstore.from_url("s3://bucket", {"aws_region": "us-east-1", key: value})
    assert objstore.from_url("s3://bucket", {"aws_region": "us-east-1", key: "1"})


def test_bools_and_ints() -> None:
    for yes in ("true", "1", "YES", "on", True):
        assert parse_bool(yes) is True
    for no in ("false", "0", "No", "off", False):
        assert parse_bool(no) is False
    assert parse_int(1)("3") == 3
    with pytest.raises(ValueError, match="at least 1"):
        parse_int(1)(0)


def test_store_config_is_visible_and_strict() -> None:
    store = objstore.from_url("memory://")
    assert store.config["allow_pickle_secrets"] is False
    with pytest.raises(UnknownOptionError, match="for the memory store"):
        objstore.from_url("memory://", {"aws_region": "x"})
    local = objstore.from_url("/tmp/objstore-config-test", fsync="yes")
    assert local.config["fsync"] is True
    assert local.config.source("fsync") == "option"
    with pytest.raises(UnknownOptionError, match="did you mean 'fsync'"):
        objstore.from_url("/tmp/objstore-config-test", {"fsnyc": True})
