"""Settings from ``ARGUS_*`` and CLI flags: defaults, parsing, and refusals that name the culprit.

Every call passes ``environ=`` explicitly, so the developer's own environment never leaks
into a test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from argus.config import ConfigError, Settings, env_name, load_settings

MiB = 1024 * 1024
SECRET = "s3cr3t-t0ken-value"


def load(cli: dict[str, Any] | None = None, **env: str) -> Settings:
    """Settings from exactly these variables (names without the prefix) and flags."""
    return load_settings(cli, environ={f"ARGUS_{k}": v for k, v in env.items()})


def refusal(cli: dict[str, Any] | None = None, **env: str) -> str:
    """The user-facing message of the ConfigError these values raise."""
    with pytest.raises(ConfigError) as info:
        load(cli, **env)
    return str(info.value)


def test_defaults() -> None:
    s = load_settings(environ={})
    assert (s.host, s.port) == ("127.0.0.1", 8080)
    assert s.provision_mode == "local"
    assert s.home_host_path == Path.home() / ".argus"
    assert s.jsonl_line_limit_bytes == 128 * MiB
    assert s.replay_buffer_bytes == 16 * MiB
    assert s.client_queue_bytes <= s.replay_buffer_bytes
    assert s.token is None and s.admin_token is None
    assert s.insecure is False and s.coalesce_deltas is True
    assert s.allowed_origins == ()
    assert s.runtime_cmd is None and s.workspace_host_path is None
    assert s.binds_loopback_only


def test_unrelated_environment_is_ignored() -> None:
    s = load_settings(environ={"PORT": "1", "ARGUS_UNKNOWN_THING": "x", "HOME": "/nowhere"})
    assert s.port == 8080


def test_env_values_are_parsed() -> None:
    s = load(
        HOST="::1",
        PORT="0",
        PROVISION_MODE="tcp",
        TCP_HOST="127.0.0.1",
        TCP_PORT="9999",
        CONNECT_TIMEOUT_S="2.5",
        JSONL_LINE_LIMIT_BYTES="4096",
        REPLAY_BUFFER_BYTES=str(32 * MiB),
        CLIENT_QUEUE_BYTES=str(32 * MiB),
        LOG_LEVEL="debug",
        HOME_HOST_PATH="/srv/argus",
        WORKSPACE_HOST_PATH="/srv/work",
        RUNTIME_CMD="codex app-server",
    )
    assert (s.host, s.port, s.provision_mode) == ("::1", 0, "tcp")
    assert (s.tcp_host, s.tcp_port, s.connect_timeout_s) == ("127.0.0.1", 9999, 2.5)
    assert s.jsonl_line_limit_bytes == 4096
    assert s.replay_buffer_bytes == s.client_queue_bytes == 32 * MiB
    assert s.log_level == "debug"
    assert s.home_host_path == Path("/srv/argus")
    assert s.workspace_host_path == Path("/srv/work")
    assert s.runtime_cmd == "codex app-server"


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", "yes", "on", " On "])
def test_boolean_true_spellings(raw: str) -> None:
    assert load(INSECURE=raw).insecure is True
    assert load(COALESCE_DELTAS=raw).coalesce_deltas is True


@pytest.mark.parametrize("raw", ["0", "false", "False", "no", "off", "", "  "])
def test_boolean_false_spellings(raw: str) -> None:
    assert load(INSECURE=raw).insecure is False
    assert load(COALESCE_DELTAS=raw).coalesce_deltas is False


def test_bad_boolean_names_the_variable() -> None:
    message = refusal(COALESCE_DELTAS="maybe")
    assert "ARGUS_COALESCE_DELTAS" in message and "maybe" in message


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"PORT": "abc"}, "ARGUS_PORT"),
        ({"PORT": "70000"}, "ARGUS_PORT"),
        ({"PORT": "-1"}, "ARGUS_PORT"),
        ({"CONNECT_TIMEOUT_S": "soon"}, "ARGUS_CONNECT_TIMEOUT_S"),
        ({"CONNECT_TIMEOUT_S": "0"}, "ARGUS_CONNECT_TIMEOUT_S"),
        ({"CONNECT_TIMEOUT_S": "-5"}, "ARGUS_CONNECT_TIMEOUT_S"),
        ({"HOME_HOST_PATH": "relative/dir"}, "ARGUS_HOME_HOST_PATH"),
        ({"WORKSPACE_HOST_PATH": "work"}, "ARGUS_WORKSPACE_HOST_PATH"),
        ({"PROVISION_MODE": "bogus"}, "ARGUS_PROVISION_MODE"),
        ({"LOG_LEVEL": "loud"}, "ARGUS_LOG_LEVEL"),
        ({"JSONL_LINE_LIMIT_BYTES": "10"}, "ARGUS_JSONL_LINE_LIMIT_BYTES"),
        ({"REPLAY_BUFFER_BYTES": "1k"}, "ARGUS_REPLAY_BUFFER_BYTES"),
        ({"TCP_PORT": "0"}, "ARGUS_TCP_PORT"),
        ({"MAX_SESSIONS": "0"}, "ARGUS_MAX_SESSIONS"),
    ],
)
def test_bad_value_names_the_variable_and_the_value(env: dict[str, str], variable: str) -> None:
    message = refusal(**env)
    assert message.startswith(variable + ":") or f"; {variable}:" in message
    assert repr(next(iter(env.values()))) in message


def test_several_problems_are_all_named() -> None:
    message = refusal(PORT="abc", CONNECT_TIMEOUT_S="soon")
    assert "ARGUS_PORT" in message and "ARGUS_CONNECT_TIMEOUT_S" in message


def test_bad_flag_names_the_flag() -> None:
    message = refusal({"port": "abc"})
    assert "--port" in message and "ARGUS_PORT" not in message


def test_flag_overrides_the_variable() -> None:
    assert load({"port": "9000"}, PORT="abc").port == 9000
    assert load({"host": "127.0.0.2"}, HOST="localhost").host == "127.0.0.2"
    # A flag that was not given (None) leaves the variable in charge.
    assert load({"port": None}, PORT="9001").port == 9001


def test_home_path_expands_user() -> None:
    assert load(HOME_HOST_PATH="~/argus-state").home_host_path == Path.home() / "argus-state"


def test_empty_token_and_runtime_cmd_mean_unset() -> None:
    s = load(TOKEN="  ", RUNTIME_CMD="")
    assert s.token is None and s.runtime_cmd is None


def test_allowed_origins_are_split_and_normalised() -> None:
    s = load(ALLOWED_ORIGINS=" https://app.example.com/ ,http://10.0.0.2:3000,, ")
    assert s.allowed_origins == ("https://app.example.com", "http://10.0.0.2:3000")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.9", "::1", "localhost"])
def test_loopback_without_token_is_fine(host: str) -> None:
    s = load(HOST=host)
    assert s.binds_loopback_only and s.token is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com"])
def test_non_loopback_without_token_is_refused(host: str) -> None:
    message = refusal(HOST=host)
    assert "ARGUS_HOST" in message and "ARGUS_TOKEN" in message
    flag_message = refusal({"host": host})
    assert "--host" in flag_message


def test_non_loopback_with_token_or_insecure_is_allowed() -> None:
    assert load(HOST="0.0.0.0", TOKEN=SECRET).admin_token == SECRET
    assert load(HOST="0.0.0.0", INSECURE="1").token is None
    assert load({"host": "0.0.0.0", "insecure": True}).insecure is True


def test_token_never_appears_in_errors_or_reprs() -> None:
    for env in (
        {"PORT": "abc"},
        {"CONNECT_TIMEOUT_S": "x", "PROVISION_MODE": "bogus"},
        {"CLIENT_QUEUE_BYTES": str(64 * MiB)},
        {"INSECURE": "perhaps"},
    ):
        assert SECRET not in refusal(TOKEN=SECRET, **env)
    s = load(TOKEN=SECRET)
    assert SECRET not in repr(s) and SECRET not in str(s)
    assert SECRET not in s.model_dump_json()
    assert s.admin_token == SECRET


def test_token_given_as_a_flag_is_not_echoed_either() -> None:
    message = refusal({"token": SECRET, "port": "abc"})
    assert SECRET not in message


def test_client_queue_larger_than_replay_buffer_is_refused() -> None:
    message = refusal(CLIENT_QUEUE_BYTES=str(17 * MiB))
    assert "ARGUS_CLIENT_QUEUE_BYTES" in message and "ARGUS_REPLAY_BUFFER_BYTES" in message
    message = refusal(REPLAY_BUFFER_BYTES=str(2 * MiB))  # below the default queue bound
    assert "ARGUS_CLIENT_QUEUE_BYTES" in message
    ok = load(REPLAY_BUFFER_BYTES=str(2 * MiB), CLIENT_QUEUE_BYTES=str(2 * MiB))
    assert ok.client_queue_bytes == ok.replay_buffer_bytes


def test_settings_are_frozen() -> None:
    s = load_settings(environ={})
    with pytest.raises(ValueError):
        s.port = 1  # type: ignore[misc]


def test_env_name_of_every_field() -> None:
    assert env_name("port") == "ARGUS_PORT"
    assert env_name("home_host_path") == "ARGUS_HOME_HOST_PATH"
    assert all(env_name(f).startswith("ARGUS_") for f in Settings.model_fields)
