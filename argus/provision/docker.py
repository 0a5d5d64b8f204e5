"""``docker`` mode: one container per session, running the runtime under ``argus bridge``.

What docker and swarm share (engine client, names, labels, environment, limits, the bridge
connection, re-adoption and orphan collection) is in ``container.py``; this module only
creates, finds and removes containers.

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
from pathlib import Path
from typing import Any

import trio

from .base import ProvisionError
from .container import (
    BRIDGE_PORT,
    CONTAINER_HOME,
    CONTAINER_UID,
    CONTAINER_WORKSPACE,
    LABEL,
    ContainerProvisioner,
    Endpoint,
    Owned,
)

log = logging.getLogger(__name__)


class DockerProvisioner(ContainerProvisioner):
    """Session containers through the Docker engine API."""

    mode = "docker"

    def describe(self) -> str:
        """What new sessions run."""
        return f"docker (image {self.settings.runtime_image}, reach {self.settings.docker_reach})"

    def session_home(self, session_id: str) -> Path:
        """The session's home on the host (mounted as the container's HOME)."""
        return self.settings.home_host_path / "sessions" / session_id

    def workspace(self, session_id: str) -> tuple[Path | None, str | None]:
        """The workspace: on the host (for project context), and inside the container."""
        host = self.settings.workspace_host_path or self.session_home(session_id) / "workspace"
        return host, CONTAINER_WORKSPACE

    def container_env(self, session_id: str) -> dict[str, str]:
        """The container's environment: the session's token and its own settings only."""
        return self.runtime_env(session_id, with_token=True)

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
        kwargs: dict[str, Any] = {
            "image": settings.runtime_image,
            "name": self.name(session_id),
            "labels": self.labels(session_id),
            "environment": self.container_env(session_id),
            "mounts": mounts,
            "command": self.bridge_args(session_id),
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
            kwargs["nano_cpus"] = self.nano_cpus()
        if settings.runtime_memory:
            kwargs["mem_limit"] = settings.runtime_memory
        if settings.runtime_pids_limit:
            kwargs["pids_limit"] = settings.runtime_pids_limit
        return kwargs

    async def ensure_container(self, session_id: str) -> Any:
        """The session's running container, created and/or started as needed."""
        import docker.errors

        self.session_token(session_id)  # refuse before creating anything
        create_kwargs = self._create_kwargs(session_id)

        def get_or_create(client: Any) -> Any:
            try:
                container = client.containers.get(self.name(session_id))
            except docker.errors.NotFound:
                home = self.session_home(session_id)
                (home / "workspace").mkdir(parents=True, exist_ok=True, mode=0o700)
                if os.getuid() == 0:  # the image's non-root user must own its home
                    for path in (home, home / "workspace"):
                        os.chown(path, CONTAINER_UID, CONTAINER_UID)
                container = client.containers.create(**create_kwargs)
                log.info("container created session=%s name=%s", session_id, container.name)
            if container.status != "running":
                container.start()
            container.reload()
            return container

        return await self.engine.call(get_or_create)

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

    async def ensure(self, session_id: str) -> Endpoint:
        """Start (or find) the container; where its bridge listens."""
        container = await self.ensure_container(session_id)
        host, port = self.address(container)
        info = {"containerId": container.id[:12], "name": container.name}
        return Endpoint(host, port, info, f"container {container.name}")

    async def remove(self, session_id: str, purge: bool) -> None:
        """Remove the session's container (and its home with ``purge``)."""
        import docker.errors

        def remove(client: Any) -> None:
            try:
                client.containers.get(self.name(session_id)).remove(force=True)
            except docker.errors.NotFound:
                pass

        await self.engine.call(remove)
        if purge:
            await trio.to_thread.run_sync(shutil.rmtree, self.session_home(session_id), True)

    async def list_ours(self) -> list[Owned]:
        """This gateway's containers, running or not."""
        label = f"{LABEL}.gateway={self.settings.gateway_id}"
        found = await self.engine.call(
            lambda c: c.containers.list(all=True, filters={"label": label})
        )
        return [
            Owned(c.labels.get(f"{LABEL}.session_id"), c.name, c.status == "running", c)
            for c in found
        ]

    async def remove_owned(self, items: list[Owned]) -> None:
        """Remove these containers (their homes stay on the host)."""
        await self.engine.call(lambda _c: [o.ref.remove(force=True) for o in items])
