"""One validated configuration model for the daemon, read from ``ARGUS_*`` and CLI flags.

Why one model: every value is checked once, at start-up, before anything listens or spawns.
A bad value is refused with a message that names the variable (``ARGUS_PORT``) or flag
(``--port``) and says what is wrong; the CLI turns that into exit code 2 with no traceback.
The original read many variables lazily with unguarded ``float()``/``int()`` calls, so a typo
surfaced as a failure of every provisioning long after start-up.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

ENV_PREFIX = "ARGUS_"

MiB = 1024 * 1024


class ConfigError(Exception):
    """A configuration value was refused; ``str()`` is the user-facing message."""


class Settings(BaseModel):
    """Everything the daemon can be told, with safe defaults for a personal machine."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="Bind address (ARGUS_HOST, --host).")
    port: int = Field(8080, ge=0, le=65535, description="Bind port; 0 picks a free one.")
    insecure: bool = Field(
        False, description="Allow a non-loopback bind without ARGUS_TOKEN (ARGUS_INSECURE)."
    )
    token: SecretStr | None = Field(
        None, description="Admin token for /ws and the HTTP API. Empty means auth is off."
    )
    allowed_origins: tuple[str, ...] = Field(
        (), description="Extra WebSocket Origins allowed besides loopback (comma-separated)."
    )
    tls_certfile: Path | None = Field(
        None, description="PEM certificate: serve https:// and wss:// (with --keyfile)."
    )
    tls_keyfile: Path | None = Field(None, description="PEM private key of --certfile.")
    provision_mode: Literal["local", "tcp", "docker", "swarm"] = "local"
    runtime_cmd: str | None = Field(
        None, description="Runtime command run through `sh -c`; unset = argus demo-runtime."
    )
    home_host_path: Path = Field(default_factory=lambda: Path.home() / ".argus")
    workspace_host_path: Path | None = None
    jsonl_line_limit_bytes: int = Field(128 * MiB, ge=1024)
    connect_timeout_s: float = Field(30.0, gt=0, le=3600)
    tcp_host: str = "127.0.0.1"
    tcp_port: int = Field(7777, ge=1, le=65535)
    # At least a few read chunks (128 KiB each), or entries could be evicted before any
    # client had a chance to take them.
    replay_buffer_bytes: int = Field(16 * MiB, ge=1 * MiB)
    client_queue_bytes: int = Field(
        8 * MiB, ge=64 * 1024, description="How far a client may fall behind before 1013."
    )
    coalesce_deltas: bool = True
    ws_max_message_bytes: int = Field(16 * MiB, ge=1024)
    ws_send_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="A peer that reads nothing this long is dropped."
    )
    ws_fast_path: bool = Field(
        True, description="Serve WebSocket upgrades on wsproto directly (web/fastws.py)."
    )
    max_inflight_requests: int = Field(4096, ge=1)
    max_sessions: int = Field(1000, ge=1)
    stderr_tail_bytes: int = Field(16 * 1024, ge=256)
    shutdown_timeout_s: float = Field(10.0, gt=0, le=600)
    stop_timeout_s: float = Field(5.0, gt=0, le=600)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = Field(
        "text", description="text: human-readable lines; json: one JSON object per line."
    )
    auth_fail_limit: int = Field(
        20, ge=1, le=1_000_000, description="Auth failures per address per window before 429."
    )
    auth_fail_window_s: float = Field(
        60.0, gt=0, le=86_400, description="The window of ARGUS_AUTH_FAIL_LIMIT."
    )
    # -- automation (issue 4) ------------------------------------------------------------
    followup_mode: Literal["each", "batch"] = Field(
        "each", description="Queued inputs run one per turn (each) or all in the next (batch)."
    )
    followup_max: int = Field(100, ge=1, le=100_000, description="Queued inputs per lane.")
    system_events_max: int = Field(2000, ge=1, le=100_000, description="Events per thread.")
    turn_stall_s: float = Field(
        900.0, gt=0, description="A turn with no runtime output this long is interrupted."
    )
    automation_approval_policy: Literal["untrusted", "on-request", "never"] = Field(
        "on-request", description="approvalPolicy of the daemon's own turns."
    )
    automation_sandbox: Literal["read-only", "workspace-write", "danger-full-access"] = Field(
        "workspace-write", description="Sandbox of the threads the daemon starts."
    )
    heartbeat_interval_s: float = Field(1800.0, ge=1, description="Heartbeat period per session.")
    heartbeat_active_hours: str | None = Field(
        None, description="e.g. 08:00-22:00 or 08:00-22:00@Europe/Berlin; unset = always."
    )
    prompt_file_max_bytes: int = Field(32 * 1024, ge=256, description="Cap per context file.")
    prompt_total_max_bytes: int = Field(96 * 1024, ge=1024, description="Cap for the context.")
    turn_start_grace_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="After re-adopting a bridge: how long an earlier gateway's unanswered"
        " turn/start may still be answered before its inputs are queued again.",
    )
    cron_run_history: int = Field(50, ge=1, le=10_000, description="Runs kept per cron job.")
    # -- runtime bridge (issue 3) ---------------------------------------------------------
    local_detach: bool = Field(
        True, description="Run local runtimes under a detached argus bridge (survive restarts)."
    )
    bridge_ring_bytes: int = Field(
        16 * MiB, ge=1 * MiB, description="Runtime output a bridge keeps for a returning gateway."
    )
    # -- docker provisioner (issue 3) -----------------------------------------------------
    runtime_image: str = Field("argus-runtime", description="Image of session containers.")
    container_prefix: str = Field("argus", description="Containers are named PREFIX-<session>.")
    docker_network: str | None = Field(None, description="Network session containers join.")
    docker_reach: Literal["publish", "network"] = Field(
        "publish",
        description="Reach containers by a port published on 127.0.0.1, or by name on the net.",
    )
    docker_gateway_url: str | None = Field(
        None, description="The gateway's URL as containers see it (for their node-host and MCP)."
    )
    runtime_cpus: float | None = Field(None, gt=0, description="CPUs per session container.")
    runtime_memory: str | None = Field(None, description="Memory per container, e.g. 2g.")
    runtime_pids_limit: int | None = Field(None, ge=16, description="Processes per container.")
    session_idle_s: float = Field(
        1800.0, gt=0, description="Stop a container with no clients and no turn after this."
    )
    gateway_id: str = Field("default", description="Labels this gateway's containers.")
    # -- swarm provisioner (issue 16) ------------------------------------------------------
    swarm_network: str | None = Field(
        None, description="Attachable overlay network session services join ('host' allowed)."
    )
    swarm_constraints: tuple[str, ...] = Field(
        (), description="Placement constraints of session services (comma-separated)."
    )
    swarm_bridge_port: int = Field(
        7777, ge=1, le=65535, description="Bridge port in a task (the node's, on 'host')."
    )
    # -- nodes and MCP (issue 5) -----------------------------------------------------------
    node_token: SecretStr | None = Field(
        None, description="Token devices use on /nodes/ws; unset = the admin token."
    )
    node_allow: str | None = Field(
        None, description="Nodes sessions may reach: 'mac' (all sessions) or 'SESSION/mac'."
    )
    node_invoke_max_ms: int = Field(
        300_000, ge=1000, le=3_600_000, description="Longest wait for one node invoke."
    )
    mcp_session_ttl_s: float = Field(3600.0, gt=0, description="Idle MCP sessions expire.")
    mcp_max_sessions: int = Field(
        10_000, ge=1, description="MCP sessions kept; past it the least recently used goes."
    )
    malloc_trim_s: float = Field(
        30.0, ge=0, description="Return freed heap to the OS this often (glibc; 0: never)."
    )
    runtime_node: bool = Field(
        True, description="Run an argus node-host beside each local runtime (runtime:<id>)."
    )

    @field_validator("home_host_path", "workspace_host_path", "tls_certfile", "tls_keyfile")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        value = value.expanduser()
        if not value.is_absolute():
            raise ValueError("must be an absolute path")
        return value

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())
        return value

    @field_validator("swarm_constraints", mode="before")
    @classmethod
    def _split_constraints(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(c.strip() for c in value.split(",") if c.strip())
        return value

    @field_validator("swarm_constraints")
    @classmethod
    def _constraints_are_expressions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for constraint in value:
            if "==" not in constraint and "!=" not in constraint:
                raise ValueError(f"{constraint!r} is not 'attribute==value' or 'attribute!=value'")
        return value

    @field_validator("token", "node_token", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: Any) -> Any:
        # Stripped like the Authorization header it is compared with.
        if isinstance(value, str):
            return value.strip() or None
        return value

    @field_validator("runtime_cmd", mode="before")
    @classmethod
    def _empty_cmd_is_none(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @property
    def admin_token(self) -> str | None:
        """The admin token in clear, for the auth module only (never log it)."""
        return self.token.get_secret_value() if self.token is not None else None

    @property
    def node_token_value(self) -> str | None:
        """The node token in clear (never log it)."""
        return self.node_token.get_secret_value() if self.node_token is not None else None

    @property
    def binds_loopback_only(self) -> bool:
        """True when ``host`` can only be reached from this machine."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host.strip("[]")).is_loopback
        except ValueError:
            return False


# Field name -> how the user spells it, for error messages.
def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    return ENV_PREFIX + field.upper()


# Flags whose spelling is not the field name.
CLI_FLAGS = {
    "home_host_path": "--home",
    "workspace_host_path": "--workspace",
    "tls_certfile": "--certfile",
    "tls_keyfile": "--keyfile",
}

_BOOL_TRUE = {"1", "true", "yes", "on"}
_BOOL_FALSE = {"0", "false", "no", "off", ""}


def _env_values(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, field in Settings.model_fields.items():
        raw = environ.get(env_name(name))
        if raw is None:
            continue
        if field.annotation is bool:
            lowered = raw.strip().lower()
            if lowered in _BOOL_TRUE:
                values[name] = True
            elif lowered in _BOOL_FALSE:
                values[name] = False
            else:
                raise ConfigError(f"{env_name(name)}: expected 1/0/true/false, got {raw!r}")
            continue
        values[name] = raw
    return values


def load_settings(
    cli: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build ``Settings`` from the environment, overridden by CLI flags that were given.

    Raises ``ConfigError`` naming the offending variable or flag. Also enforces the
    cross-field rules: no non-loopback bind without a token unless ``insecure``, and the
    per-client lag bound cannot exceed the replay buffer (a client cut off for lagging must
    be able to resume from the buffer).
    """
    environ = os.environ if environ is None else environ
    values = _env_values(environ)
    sources = {k: env_name(k) for k in values}
    for key, value in (cli or {}).items():
        if value is not None:
            values[key] = value
            sources[key] = CLI_FLAGS.get(key, "--" + key.replace("_", "-"))
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            where = sources.get(field, env_name(field))
            given = values.get(field)
            shown = "" if field in ("token", "node_token") else f" (got {given!r})"
            problems.append(f"{where}: {err['msg']}{shown}")
        raise ConfigError("; ".join(problems)) from None
    if not settings.binds_loopback_only and settings.token is None and not settings.insecure:
        raise ConfigError(
            f"{sources.get('host', 'ARGUS_HOST')}: refusing to listen on {settings.host} "
            "without ARGUS_TOKEN; set a token or pass --insecure"
        )
    _check_tls(settings, sources)
    if settings.client_queue_bytes > settings.replay_buffer_bytes:
        raise ConfigError(
            "ARGUS_CLIENT_QUEUE_BYTES: must not exceed ARGUS_REPLAY_BUFFER_BYTES "
            f"({settings.client_queue_bytes} > {settings.replay_buffer_bytes})"
        )
    return settings


def _check_tls(settings: Settings, sources: Mapping[str, str]) -> None:
    """Certificate and key come together and are readable files (checked before binding)."""
    cert, key = settings.tls_certfile, settings.tls_keyfile
    if (cert is None) != (key is None):
        given = "tls_certfile" if cert is not None else "tls_keyfile"
        missing = "tls_keyfile" if cert is not None else "tls_certfile"
        raise ConfigError(
            f"{sources.get(given, env_name(given))}: TLS needs both a certificate and a key; "
            f"{CLI_FLAGS[missing]} ({env_name(missing)}) is not set"
        )
    for field, path in (("tls_certfile", cert), ("tls_keyfile", key)):
        if path is not None and not os.access(path, os.R_OK):
            raise ConfigError(f"{sources.get(field, env_name(field))}: cannot read {path}")
