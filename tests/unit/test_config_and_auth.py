"""Configuration validation and the auth helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

from argus.config import ConfigError, load_settings
from argus.web import auth


def test_defaults() -> None:
    settings = load_settings(environ={})
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.provision_mode == "local"
    assert settings.home_host_path == Path.home() / ".argus"
    assert settings.jsonl_line_limit_bytes == 128 * 1024 * 1024
    assert settings.replay_buffer_bytes == 16 * 1024 * 1024
    assert settings.token is None and settings.runtime_cmd is None


def test_env_and_flags() -> None:
    env = {"ARGUS_PORT": "9000", "ARGUS_COALESCE_DELTAS": "0", "ARGUS_TOKEN": "abc"}
    settings = load_settings({"port": "9100"}, environ=env)
    assert settings.port == 9100 and settings.coalesce_deltas is False
    assert settings.admin_token == "abc"
    assert load_settings(environ={"ARGUS_TOKEN": "  "}).token is None


@pytest.mark.parametrize(
    ("env", "cli", "named"),
    [
        ({"ARGUS_PORT": "abc"}, {}, "ARGUS_PORT"),
        ({}, {"port": "-1"}, "--port"),
        ({"ARGUS_CONNECT_TIMEOUT_S": "x"}, {}, "ARGUS_CONNECT_TIMEOUT_S"),
        ({"ARGUS_HOME_HOST_PATH": "rel"}, {}, "ARGUS_HOME_HOST_PATH"),
        ({"ARGUS_INSECURE": "perhaps"}, {}, "ARGUS_INSECURE"),
        ({"ARGUS_HOST": "0.0.0.0"}, {}, "ARGUS_HOST"),
        ({"ARGUS_CLIENT_QUEUE_BYTES": str(64 << 20)}, {}, "ARGUS_CLIENT_QUEUE_BYTES"),
    ],
)
def test_errors_name_the_setting(env, cli, named) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(cli, environ=env)
    assert named in str(error.value)


def test_public_bind_needs_token_or_insecure() -> None:
    assert load_settings(environ={"ARGUS_HOST": "0.0.0.0", "ARGUS_TOKEN": "t"}).token
    assert load_settings({"insecure": True}, environ={"ARGUS_HOST": "0.0.0.0"}).insecure
    assert load_settings(environ={"ARGUS_HOST": "::1"}).binds_loopback_only


def test_token_value_never_in_errors() -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(environ={"ARGUS_TOKEN": "hunter2", "ARGUS_PORT": "no"})
    assert "hunter2" not in str(error.value)


def test_token_extraction_and_comparison() -> None:
    assert auth.extract_token("Bearer abc", {"token": ["q"]}) == "abc"
    assert auth.extract_token("abc", {}) == "abc"
    assert auth.extract_token(None, {"token": ["q"]}) == "q"
    assert auth.extract_token(None, {}) is None
    assert auth.token_matches(None, None)
    assert auth.token_matches("abc", "abc")
    assert not auth.token_matches("abc", "abd")
    assert not auth.token_matches("abc", None)


@pytest.mark.parametrize(
    ("origin", "allowed", "ok"),
    [
        (None, (), True),
        ("http://localhost:3000", (), True),
        ("https://127.0.0.1", (), True),
        ("http://[::1]:8080", (), True),
        ("https://evil.example", (), False),
        ("null", (), False),
        ("https://console.example", ("https://console.example",), True),
        ("https://any.example", ("*",), True),
        ("http://localhost.evil.example", (), False),
    ],
)
def test_origin_allowed(origin, allowed, ok) -> None:
    assert auth.origin_allowed(origin, allowed) is ok
