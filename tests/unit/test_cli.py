"""The ``argus`` command line: configuration errors exit 2 with one clear line, help is complete.

Each test runs ``python -m argus`` in a subprocess with a scrubbed environment (no
``ARGUS_*`` from the developer's shell) and a temporary home, so nothing here depends on
or touches the machine's own configuration. Every invocation is refused before anything
listens, so none of them starts a daemon.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from argus.config import Settings, env_name

Run = Callable[..., subprocess.CompletedProcess[str]]

SERVE_FLAGS = [
    "--host",
    "--port",
    "--insecure",
    "--provision-mode",
    "--runtime-cmd",
    "--home",
    "--workspace",
    "--log-level",
]


@pytest.fixture
def argus(tmp_path: Path) -> Run:
    """``argus(*args, VAR=value)`` runs the command and returns the finished process."""

    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("ARGUS_")}
        clean["ARGUS_HOME_HOST_PATH"] = str(tmp_path)
        clean["COLUMNS"] = "100"
        clean.update(env)
        return subprocess.run(
            [sys.executable, "-m", "argus", *args],
            env=clean,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    return run


def assert_config_error(proc: subprocess.CompletedProcess[str], *names: str) -> None:
    """Exit code 2, each name in stderr, no traceback, nothing on stdout."""
    assert proc.returncode == 2, proc.stderr
    for name in names:
        assert name in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"ARGUS_PORT": "abc"}, "ARGUS_PORT"),
        ({"ARGUS_PORT": "99999"}, "ARGUS_PORT"),
        ({"ARGUS_PROVISION_MODE": "bogus"}, "ARGUS_PROVISION_MODE"),
        ({"ARGUS_CONNECT_TIMEOUT_S": "soon"}, "ARGUS_CONNECT_TIMEOUT_S"),
        ({"ARGUS_HOME_HOST_PATH": "relative/home"}, "ARGUS_HOME_HOST_PATH"),
        ({"ARGUS_INSECURE": "perhaps"}, "ARGUS_INSECURE"),
        ({"ARGUS_LOG_LEVEL": "loud"}, "ARGUS_LOG_LEVEL"),
        ({"ARGUS_CLIENT_QUEUE_BYTES": str(64 * 1024 * 1024)}, "ARGUS_CLIENT_QUEUE_BYTES"),
    ],
)
def test_bad_variable_exits_2_naming_it(argus: Run, env: dict[str, str], variable: str) -> None:
    assert_config_error(argus("serve", **env), variable)


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--port", "abc"], "--port"),
        (["--provision-mode", "bogus"], "--provision-mode"),
        (["--log-level", "loud"], "--log-level"),
    ],
)
def test_bad_flag_exits_2_naming_it(argus: Run, args: list[str], flag: str) -> None:
    assert_config_error(argus("serve", *args), flag)


@pytest.mark.parametrize("flag", ["--home", "--workspace"])
def test_bad_path_flag_names_the_flag_the_user_typed(argus: Run, flag: str) -> None:
    """The message must name the flag that exists (``--home``), not the field behind it."""
    proc = argus("serve", flag, "relative/dir")
    assert_config_error(proc, flag)
    named = set(re.findall(r"--[a-z][a-z-]*", proc.stderr))
    assert named == {flag}, f"stderr names flags that do not exist: {named - {flag}}"


def test_non_loopback_host_without_token_is_refused(argus: Run) -> None:
    proc = argus("serve", "--host", "0.0.0.0")
    assert_config_error(proc, "--host", "ARGUS_TOKEN")
    proc = argus("serve", ARGUS_HOST="0.0.0.0")
    assert_config_error(proc, "ARGUS_HOST", "ARGUS_TOKEN")


def test_flag_wins_over_a_bad_variable_but_is_checked_itself(argus: Run) -> None:
    proc = argus("serve", "--port", "abc", ARGUS_PORT="8080")
    assert_config_error(proc, "--port")
    assert "ARGUS_PORT" not in proc.stderr


def test_token_is_never_printed(argus: Run) -> None:
    secret = "cli-s3cr3t-token"
    proc = argus("serve", "--port", "abc", ARGUS_TOKEN=secret, ARGUS_HOST="0.0.0.0")
    assert_config_error(proc, "--port")
    assert secret not in proc.stderr


def test_every_problem_on_one_line(argus: Run) -> None:
    proc = argus("serve", ARGUS_PORT="abc", ARGUS_CONNECT_TIMEOUT_S="x")
    assert_config_error(proc, "ARGUS_PORT", "ARGUS_CONNECT_TIMEOUT_S")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_unknown_flag_and_missing_command_exit_2(argus: Run) -> None:
    for args in (["serve", "--no-such-flag"], [], ["no-such-command"]):
        proc = argus(*args)
        assert proc.returncode == 2, args
        assert "usage" in proc.stderr.lower()
        assert "Traceback" not in proc.stderr


def test_top_level_help(argus: Run) -> None:
    proc = argus("--help")
    assert proc.returncode == 0, proc.stderr
    assert "serve" in proc.stdout and "demo-runtime" in proc.stdout


def test_serve_help_mentions_every_flag_and_variable(argus: Run) -> None:
    proc = argus("serve", "--help")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    missing_flags = [flag for flag in SERVE_FLAGS if flag not in text]
    assert missing_flags == []
    variables = [env_name(field) for field in Settings.model_fields]
    assert "ARGUS_TOKEN" in variables and "ARGUS_PORT" in variables
    missing_vars = [v for v in variables if not re.search(rf"\b{v}\b", text)]
    assert missing_vars == []
