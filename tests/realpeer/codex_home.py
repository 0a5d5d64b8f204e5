"""Finding the codex binary and writing an offline ``CODEX_HOME`` for it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CONFIG = """\
model = "fake-model"
model_provider = "fake"
approval_policy = "{approval_policy}"
sandbox_mode = "{sandbox_mode}"
web_search = "disabled"
check_for_update_on_startup = false

[model_providers.fake]
name = "Fake LLM"
base_url = "{base_url}"
wire_api = "responses"
env_key = "FAKE_LLM_API_KEY"
request_max_retries = 0
stream_max_retries = 0
stream_idle_timeout_ms = 20000
supports_websockets = false

[features]
plugins = false

[analytics]
enabled = false
[feedback]
enabled = false
"""


def find_codex() -> str | None:
    """``$ARGUS_CODEX_BIN``, else the copy .ci/run installs, else ``codex`` on PATH."""
    explicit = os.environ.get("ARGUS_CODEX_BIN")
    if explicit and Path(explicit).exists():
        return explicit
    cache = REPO / ".cache" / "codex" / "node_modules" / "@openai"
    if cache.is_dir():
        for candidate in sorted(cache.glob("*/vendor/*/bin/codex")):
            return str(candidate)
    return shutil.which("codex")


def make_codex_home(
    root: Path,
    base_url: str,
    approval_policy: str = "on-request",
    sandbox_mode: str = "workspace-write",
) -> dict[str, str]:
    """Write ``config.toml`` under ``root/codex-home``; return the env codex needs."""
    home = root / "codex-home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        CONFIG.format(base_url=base_url, approval_policy=approval_policy, sandbox_mode=sandbox_mode)
    )
    return {"CODEX_HOME": str(home), "FAKE_LLM_API_KEY": "test-key", "RUST_LOG": "warn"}
