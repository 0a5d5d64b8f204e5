"""Finding the codex binary and writing an offline ``CODEX_HOME`` for it.

The config follows the reference doc, Part 2: a ``fake`` provider speaking the Responses API
at the fake model server, no retries (a broken fake fails fast instead of backing off), and
``[features] plugins = false``, which removes the only network traffic codex makes at start-up
besides the model (pitfall 1). ``HOME`` points at a private directory because codex runs a
``bash -lc`` shell snapshot and reads ``~/.agents`` whatever ``CODEX_HOME`` is (pitfall 10).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Where .ci/run installs ``@openai/codex`` (``npm install --prefix .cache/codex``).
CACHE = REPO / ".cache" / "codex"

# The native binary ships in a per-platform package (``@openai/codex-linux-x64`` in 0.169.0:
# ``vendor/<target>/bin/codex``); older releases kept ``vendor/<target>/codex/codex`` inside
# ``@openai/codex``. .ci/run searches the same patterns.
NATIVE_PATTERNS = ("@openai/*/vendor/*/bin/codex", "@openai/*/vendor/*/codex/codex")

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

API_KEY = "fake-llm-test-key"


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_codex() -> str | None:
    """The codex binary the real-peer tests run, or None.

    Order: ``$ARGUS_CODEX_BIN`` (what .ci/run exports; when set but not executable, None, so a
    typo is reported instead of silently testing another binary), then the copy .ci/run
    installs under ``.cache/codex`` (native binary first: it starts about twice as fast as the
    node wrapper), then ``codex`` on PATH.
    """
    explicit = os.environ.get("ARGUS_CODEX_BIN")
    if explicit:
        return explicit if _executable(Path(explicit)) else None
    modules = CACHE / "node_modules"
    for pattern in NATIVE_PATTERNS:
        for candidate in sorted(modules.glob(pattern)):
            if _executable(candidate):
                return str(candidate)
    wrapper = modules / ".bin" / "codex"
    if _executable(wrapper):
        return str(wrapper)
    return shutil.which("codex")


def make_codex_home(
    root: Path,
    base_url: str,
    approval_policy: str = "on-request",
    sandbox_mode: str = "workspace-write",
) -> dict[str, str]:
    """Write ``root/codex-home/config.toml``; return the env overrides codex must run with.

    The overrides go on top of the inherited environment (codex needs PATH): ``CODEX_HOME``,
    the API key the ``env_key`` provider insists on (pitfall 3), a private ``HOME`` and
    ``RUST_LOG=warn`` + ``NO_COLOR`` to keep its stderr small and readable in a failure.
    """
    home = root / "codex-home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        CONFIG.format(base_url=base_url, approval_policy=approval_policy, sandbox_mode=sandbox_mode)
    )
    user_home = root / "user-home"
    user_home.mkdir(parents=True, exist_ok=True)
    return {
        "CODEX_HOME": str(home),
        "FAKE_LLM_API_KEY": API_KEY,
        "HOME": str(user_home),
        "RUST_LOG": "warn",
        "NO_COLOR": "1",
    }


def codex_process_env(overrides: dict[str, str]) -> dict[str, str]:
    """The inherited environment minus a developer's own codex/OpenAI settings, plus overrides.

    Keeps a real ``OPENAI_API_KEY`` or ``CODEX_*`` of the machine out of the offline runs.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CODEX_", "OPENAI_", "ARGUS_")) and k != "RUST_LOG"
    }
    env.update(overrides)
    return env
