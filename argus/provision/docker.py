"""``docker`` mode: one container per session, running the runtime under ``argus bridge``.

Every Docker SDK call goes through ``trio.to_thread.run_sync`` on one client, created once.

A container is named ``<ARGUS_CONTAINER_PREFIX>-<sessionId>``, labelled ``io.argus.*``
(session id, gateway id, layout), runs ``ARGUS_RUNTIME_IMAGE`` on ``ARGUS_DOCKER_NETWORK``
with the session home mounted as its ``HOME`` (``/home/argus``) and an optional shared
workspace at ``/workspace``, and gets the session's derived token (never ``ARGUS_TOKEN``).
The gateway reaches the bridge on port 7777 either through a port published on 127.0.0.1
(gateway on the host: ``ARGUS_DOCKER_REACH=publish``) or by container name on the network
(gateway under compose: ``network``).

Closing the runtime (DELETE, runtime exit) stops the bridge and so the container; a gateway
shutdown leaves it running for the next gateway, which re-adopts it (``live_sessions``).
The container is removed only by ``destroy`` (``DELETE /sessions/{id}``). ``collect_orphans``
removes this gateway's containers whose session the store does not know, after logging what
it will remove; an engine that lists no container at all never causes anything to be pruned.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from ..config import Settings
from .base import GatewayLink, Provisioner, ProvisionError, Runtime
from .bridge_runtime import BridgeRuntime

log = logging.getLogger(__name__)

BRIDGE_PORT = 7777
CONTAINER_HOME = "/home/argus"
CONTAINER_WORKSPACE = "/workspace"
LABEL = "io.argus"
CONTAINER_UID = 10001  # the runtime image's `argus` user


class DockerProvisioner(Provisioner):
    """Session containers through the Docker engine API."""

    mode = "docker"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: Any = None
        self._client_lock = trio.Lock()

    def describe(self) -> str:
        """What new sessions run."""
        return f"docker (image {self.settings.runtime_image}, reach {self.settings.docker_reach})"

    def name(self, session_id: str) -> str:
        """The session's container name."""
        return f"{self.settings.container_prefix}-{session_id}"

    def session_home(self, session_id: str) -> Path:
        """The session's home on the host (mounted as the container's HOME)."""
        return self.settings.home_host_path / "sessions" / session_id

    def workspace(self, session_id: str) -> tuple[Path | None, str | None]:
        """The workspace: on the host (for project context), and inside the container."""
        host = self.settings.workspace_host_path or self.session_home(session_id) / "workspace"
        return host, CONTAINER_WORKSPACE

    async def _docker(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one SDK call in a worker thread; engine errors become ProvisionError."""
        import docker.errors

        async with self._client_lock:
            if self._client is None:
                try:
                    self._client = await trio.to_thread.run_sync(docker.from_env)
                except docker.errors.DockerException as exc:
                    raise ProvisionError(f"Docker engine unavailable: {exc}") from exc
        client = self._client

        def call() -> Any:
            return fn(client, *args, **kwargs)

        try:
            return await trio.to_thread.run_sync(call)
        except docker.errors.ImageNotFound as exc:
            raise ProvisionError(f"runtime image not found: {self.settings.runtime_image}") from exc
        except docker.errors.APIError as exc:
            raise ProvisionError(f"Docker engine error: {exc.explanation or exc}") from exc
        except docker.errors.DockerException as exc:
            raise ProvisionError(f"Docker engine unavailable: {exc}") from exc

    # -- containers ------------------------------------------------------------------------

    def labels(self, session_id: str) -> dict[str, str]:
        """The ``io.argus.*`` labels of a session container."""
        return {
            f"{LABEL}.session_id": session_id,
            f"{LABEL}.gateway": self.settings.gateway_id,
            f"{LABEL}.runtime_layout": "argus_bridge_v1",
        }

    def container_env(self, session_id: str) -> dict[str, str]:
        """The container's environment: the session's token and its own settings only."""
        assert self.gateway is not None
        token = self.gateway.session_env(session_id)["ARGUS_SESSION_TOKEN"]
        env = {
            "ARGUS_SESSION_ID": session_id,
            "ARGUS_SESSION_TOKEN": token,
            "ARGUS_JSONL_LINE_LIMIT_BYTES": str(self.settings.jsonl_line_limit_bytes),
        }
        if self.settings.runtime_cmd:
            env["ARGUS_RUNTIME_CMD"] = self.settings.runtime_cmd
        url = self.settings.docker_gateway_url
        if url:
            env.update(GatewayLink(url.rstrip("/"), self.gateway.secret).session_env(session_id))
            env["ARGUS_NODE_TOKEN"] = token
        return env

    def _create_kwargs(self, session_id: str) -> dict[str, Any]:
        from docker.types import Mount

        settings = self.settings
        home = self.session_home(session_id)
        mounts = [Mount(CONTAINER_HOME, str(home), type="bind")]
        if settings.workspace_host_path is not None:
            mounts.append(
                Mount(CONTAINER_WORKSPACE, str(settings.workspace_host_path), type="bind")
            )
        else:
            mounts.append(Mount(CONTAINER_WORKSPACE, str(home / "workspace"), type="bind"))
        command = ["--stderr-log", f"{CONTAINER_HOME}/runtime-stderr.log"]
        if settings.runtime_node and settings.docker_gateway_url:
            command += ["--node-id", f"runtime:{session_id}"]
        kwargs: dict[str, Any] = {
            "image": settings.runtime_image,
            "name": self.name(session_id),
            "labels": self.labels(session_id),
            "environment": self.container_env(session_id),
            "mounts": mounts,
            "command": command,
            "detach": True,
        }
        if os.getuid() != 0:
            # Not root: the container runs as us, so the mounted home stays ours.
            kwargs["user"] = f"{os.getuid()}:{os.getgid()}"
        if settings.docker_network:
            kwargs["network"] = settings.docker_network
        if settings.docker_reach == "publish" and settings.docker_network != "host":
            kwargs["ports"] = {f"{BRIDGE_PORT}/tcp": ("127.0.0.1", None)}
        if settings.runtime_cpus:
            kwargs["nano_cpus"] = int(settings.runtime_cpus * 1e9)
        if settings.runtime_memory:
            kwargs["mem_limit"] = settings.runtime_memory
        if settings.runtime_pids_limit:
            kwargs["pids_limit"] = settings.runtime_pids_limit
        return kwargs

    async def ensure_container(self, session_id: str) -> Any:
        """The session's running container, created and/or started as needed."""
        import docker.errors

        def get_or_create(client: Any) -> Any:
            try:
                container = client.containers.get(self.name(session_id))
            except docker.errors.NotFound:
                home = self.session_home(session_id)
                (home / "workspace").mkdir(parents=True, exist_ok=True, mode=0o700)
                if os.getuid() == 0:  # the image's non-root user must own its home
                    for path in (home, home / "workspace"):
                        os.chown(path, CONTAINER_UID, CONTAINER_UID)
                container = client.containers.create(**self._create_kwargs(session_id))
                log.info("container created session=%s name=%s", session_id, container.name)
            if container.status != "running":
                container.start()
            container.reload()
            return container

        return await self._docker(get_or_create)

    def address(self, container: Any) -> tuple[str, int]:
        """Where the gateway reaches the container's bridge."""
        if self.settings.docker_network == "host":
            return "127.0.0.1", BRIDGE_PORT  # one session at a time: the bridge owns :7777
        if self.settings.docker_reach == "network":
            return container.name, BRIDGE_PORT
        ports = container.attrs["NetworkSettings"]["Ports"].get(f"{BRIDGE_PORT}/tcp") or []
        for binding in ports:
            if binding.get("HostIp") in ("127.0.0.1", "0.0.0.0", ""):
                return "127.0.0.1", int(binding["HostPort"])
        raise ProvisionError("the container's bridge port is not published")

    @asynccontextmanager
    async def open_runtime(self, session_id: str) -> AsyncIterator[Runtime]:
        """Start (or find) the container and connect to its bridge."""
        if self.gateway is None:
            raise ProvisionError("the gateway is not ready yet")
        container = await self.ensure_container(session_id)
        host, port = self.address(container)
        token = self.gateway.session_env(session_id)["ARGUS_SESSION_TOKEN"]
        stream = None
        with trio.move_on_after(self.settings.connect_timeout_s):
            while stream is None:
                stream = await _connect_ready(host, port)
                if stream is None:
                    await trio.sleep(0.1)
        if stream is None:
            raise ProvisionError(
                f"the runtime bridge in {container.name} did not answer on {host}:{port}"
            )
        runtime = BridgeRuntime(
            stream,
            token,
            {"containerId": container.id[:12], "name": container.name},
            self.settings.jsonl_line_limit_bytes,
        )
        try:
            yield runtime
        finally:
            await runtime.close()

    async def destroy(self, session_id: str, purge: bool) -> None:
        """Remove the session's container (and its home with ``purge``)."""
        import docker.errors

        def remove(client: Any) -> None:
            try:
                client.containers.get(self.name(session_id)).remove(force=True)
            except docker.errors.NotFound:
                pass

        await self._docker(remove)
        if purge:
            await trio.to_thread.run_sync(shutil.rmtree, self.session_home(session_id), True)

    async def _ours(self, all_: bool) -> list[Any]:
        label = f"{LABEL}.gateway={self.settings.gateway_id}"
        return await self._docker(lambda c: c.containers.list(all=all_, filters={"label": label}))

    async def live_sessions(self, session_ids: list[str]) -> list[str]:
        """Sessions whose container is running (re-adopted at start-up)."""
        try:
            running = await self._ours(False)
        except ProvisionError as exc:
            log.warning("cannot list containers: %s", exc)
            return []
        known = set(session_ids)
        return [
            c.labels[f"{LABEL}.session_id"]
            for c in running
            if c.labels.get(f"{LABEL}.session_id") in known
        ]

    async def collect_orphans(self, session_ids: list[str]) -> list[str]:
        """Remove this gateway's containers with no known session; their names."""
        containers = await self._ours(True)
        known = set(session_ids)
        orphans = [c for c in containers if c.labels.get(f"{LABEL}.session_id") not in known]
        if not orphans:
            return []
        names = sorted(c.name for c in orphans)
        log.warning("removing %s orphan container(s) with no known session: %s", len(names), names)
        await self._docker(lambda _c: [o.remove(force=True) for o in orphans])
        return names


async def _connect_ready(host: str, port: int) -> trio.SocketStream | None:
    """A connection to a bridge that is listening, or None.

    A published port accepts connections before the container's bridge listens (Docker's
    proxy answers, then hangs up): a ready bridge says nothing until our hello, a proxy
    with nothing behind it closes at once.
    """
    try:
        stream = await trio.open_tcp_stream(host, port)
    except OSError:
        return None
    with trio.move_on_after(0.3):
        try:
            await stream.receive_some(1)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        await stream.aclose()
        return None
    return stream
