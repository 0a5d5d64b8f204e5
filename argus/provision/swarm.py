"""``swarm`` mode: one Docker Swarm service per session, placed and limited by the swarm.

Why a service: on a cluster, an existing engine should decide where a runtime runs and
refuse overload, not code written here. What docker and swarm share is in ``container.py``;
this module creates, finds and removes services.

A session ``<sid>`` owns, all labelled ``io.argus.*`` (session id, gateway id, layout):

* the service ``<ARGUS_CONTAINER_PREFIX>-<sid>``: 1 replica of ``ARGUS_RUNTIME_IMAGE``
  running ``argus bridge``; restart condition ``none`` (the gateway owns restarts); limits
  *and* reservations from ``ARGUS_RUNTIME_CPUS``/``ARGUS_RUNTIME_MEMORY`` (so the scheduler
  refuses a node that is full), ``ARGUS_RUNTIME_PIDS_LIMIT``, and the placement constraints
  ``ARGUS_SWARM_CONSTRAINTS``; no health check (a task is reported running as soon as its
  container is, and the gateway then waits for the bridge itself);
* the secret ``<name>-token``: the session's derived token, mounted at
  ``/run/secrets/argus-session-token`` (uid 10001, mode 0400) and read by the bridge
  (``--token-file``). Never an environment variable or a label: both show in ``inspect``;
* the volumes ``<name>-home`` (``/home/argus``, the session home) and ``<name>-workspace``
  (``/workspace``), created by the engine on the node of the first task.

A locally built image is referenced by its id (``sha256:…``; a pushed one by its repo
digest), so no node tries a registry for it: every node then needs the image loaded
(``docker save | docker load``), or push it to a registry the nodes can pull from.

The gateway reaches the bridge in one of three ways (``reach`` below):

* ``publish`` (default): the task publishes its bridge port in host mode on its node, and
  the gateway connects to the node's address and that port. For a gateway running as a
  process on a swarm node (a host process cannot join an overlay network). The port is
  bound on every interface of the node (swarm has no per-address publishing): the bridge
  only talks after the session token, compared in constant time;
* ``network`` (``ARGUS_SWARM_NETWORK`` set and ``ARGUS_DOCKER_REACH=network``): the
  service joins that attachable overlay network (endpoint mode ``dnsrr``) and the gateway,
  itself a service on that network, connects to the task's address there;
* ``host`` (``ARGUS_SWARM_NETWORK=host``): host networking; the bridge listens on
  ``ARGUS_SWARM_BRIDGE_PORT`` of its node, so one session per node at a time.

Lifecycle. A runtime that ends (exit, idle reaper, ``stop``) leaves its service with no
running task. The next attach restarts it with a forced update, which makes a new task; its
id differs, and the session tells its clients with ``argus/runtime/restarted``. That update
also pins the service to the node of the previous task (``node.id==…``), because the
session's volumes are on that node: the simplest honest rule. A session whose node is gone
cannot restart (its task stays pending, the attach fails with the scheduler's reason) until
an operator removes the pin or moves the volumes. ``DELETE`` removes the service, waits
until its tasks are gone (``service rm`` is asynchronous, and a volume in use cannot be
removed), then removes the volumes and the secret. The volumes of a task on another node
are not visible to this engine and are left there (logged).
"""

from __future__ import annotations

import logging
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

SECRET_FILE = "argus-session-token"
SECRET_PATH = f"/run/secrets/{SECRET_FILE}"
# Task states (swarmkit): on the way to running, and over.
STARTING = {"new", "pending", "assigned", "accepted", "preparing", "ready", "starting"}
ENDED = {"complete", "shutdown", "failed", "rejected", "remove", "orphaned"}
POLL_S = 0.1


def newest(tasks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The most recently created task."""
    return max(tasks, key=lambda t: t.get("CreatedAt", ""), default=None)


def pin_node(tasks: list[dict[str, Any]]) -> str | None:
    """The node the session's volumes are on: that of its newest task that had a container."""
    ran = [
        t
        for t in tasks
        if ((t.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID")
    ]
    task = newest(ran)
    return task.get("NodeID") if task else None


class SwarmProvisioner(ContainerProvisioner):
    """Session services through a swarm manager's API."""

    mode = "swarm"
    unit = "service"

    @property
    def reach(self) -> str:
        """``publish``, ``network`` or ``host`` (see the module docstring)."""
        network = self.settings.swarm_network
        if network == "host":
            return "host"
        if network and self.settings.docker_reach == "network":
            return "network"
        return "publish"

    def describe(self) -> str:
        """What new sessions run, and where."""
        constraints = ",".join(self.settings.swarm_constraints) or "none"
        return (
            f"swarm (image {self.settings.runtime_image}, reach {self.reach}, "
            f"network {self.settings.swarm_network or 'none'}, constraints {constraints})"
        )

    def secret_name(self, session_id: str) -> str:
        """The swarm secret holding the session's token."""
        return f"{self.name(session_id)}-token"

    def volume_names(self, session_id: str) -> tuple[str, str]:
        """The session's home and workspace volumes."""
        name = self.name(session_id)
        return f"{name}-home", f"{name}-workspace"

    def workspace(self, session_id: str) -> tuple[None, str]:
        """Only the task sees the workspace (a volume on its node)."""
        return None, CONTAINER_WORKSPACE

    # -- the service's spec --------------------------------------------------------------

    def service_kwargs(
        self, session_id: str, image: str, secret_id: str, env: dict[str, str]
    ) -> dict[str, Any]:
        """``services.create`` arguments for a session."""
        from docker.types import (
            EndpointSpec,
            Healthcheck,
            Mount,
            NetworkAttachmentConfig,
            Resources,
            RestartPolicy,
            SecretReference,
            ServiceMode,
        )

        settings = self.settings
        labels = self.labels(session_id)
        home, workspace = self.volume_names(session_id)
        args = [*self.bridge_args(session_id), "--token-file", SECRET_PATH]
        port = settings.swarm_bridge_port
        if port != BRIDGE_PORT:
            args += ["--listen", f"tcp:0.0.0.0:{port}"]
        cpus, memory = self.nano_cpus(), self.memory_bytes()
        resources = Resources(
            cpu_limit=cpus, mem_limit=memory, cpu_reservation=cpus, mem_reservation=memory
        )
        if settings.runtime_pids_limit:
            resources.setdefault("Limits", {})["Pids"] = settings.runtime_pids_limit
        kwargs: dict[str, Any] = {
            "image": image,
            "name": self.name(session_id),
            "labels": labels,
            "container_labels": labels,
            "env": [f"{k}={v}" for k, v in env.items()],
            "args": args,
            "mounts": [
                Mount(CONTAINER_HOME, home, type="volume", labels=labels),
                Mount(CONTAINER_WORKSPACE, workspace, type="volume", labels=labels),
            ],
            "secrets": [
                SecretReference(
                    secret_id,
                    self.secret_name(session_id),
                    filename=SECRET_FILE,
                    uid=str(CONTAINER_UID),
                    gid=str(CONTAINER_UID),
                    mode=0o400,
                )
            ],
            "mode": ServiceMode("replicated", replicas=1),
            "restart_policy": RestartPolicy(condition="none"),
            "healthcheck": Healthcheck(test=["NONE"]),
            "constraints": list(settings.swarm_constraints),
            "resources": resources,
        }
        if self.reach == "host":
            kwargs["networks"] = [NetworkAttachmentConfig("host")]
        elif settings.swarm_network:
            kwargs["networks"] = [NetworkAttachmentConfig(settings.swarm_network)]
        if self.reach == "publish":
            ports = [{"Protocol": "tcp", "TargetPort": port, "PublishMode": "host"}]
            kwargs["endpoint_spec"] = EndpointSpec(ports=ports)
        elif self.reach == "network":
            kwargs["endpoint_spec"] = EndpointSpec(mode="dnsrr")
        return kwargs

    def _image_ref(self, client: Any) -> str:
        """The image by repo digest or id when the engine has it (no registry round trip)."""
        import docker.errors

        try:
            image = client.images.get(self.settings.runtime_image)
        except docker.errors.ImageNotFound:
            return self.settings.runtime_image  # the nodes pull it
        digests = image.attrs.get("RepoDigests") or []
        return digests[0] if digests else image.id

    def _fresh_secret(self, client: Any, session_id: str, token: str) -> str:
        """Create the session's token secret (replacing a stale one no service uses)."""
        import docker.errors

        name = self.secret_name(session_id)
        for secret in client.secrets.list(filters={"name": name}):
            if secret.name != name:
                continue
            try:
                secret.remove()
            except docker.errors.APIError:
                return secret.id  # still in use by a service being removed: same token
        return client.secrets.create(
            name=name, data=token.encode(), labels=self.labels(session_id)
        ).id

    # -- ensure: find, create, restart ---------------------------------------------------

    async def ensure(self, session_id: str) -> Endpoint:
        """The session's service with a running task; where its bridge listens."""
        import docker.errors

        token = self.session_token(session_id)
        env = self.runtime_env(session_id, with_token=False)
        name = self.name(session_id)

        def find_or_start(client: Any) -> tuple[str, set[str], str | None]:
            try:
                service = client.services.get(name)
            except docker.errors.NotFound:
                secret_id = self._fresh_secret(client, session_id, token)
                kwargs = self.service_kwargs(session_id, self._image_ref(client), secret_id, env)
                service = client.services.create(**kwargs)
                log.info("service created session=%s name=%s", session_id, name)
                return service.id, set(), None
            tasks = service.tasks()
            if any(
                t["DesiredState"] == "running" and t["Status"]["State"] not in ENDED for t in tasks
            ):
                return service.id, set(), None
            previous = newest(tasks)
            self._restart(service, tasks)
            log.info("service restarted session=%s name=%s", session_id, name)
            return service.id, {t["ID"] for t in tasks}, previous["ID"] if previous else None

        service_id, old_tasks, restarted_from = await self.engine.call(find_or_start)
        task = await self._wait_running(service_id, name, old_tasks)
        host, port = await self._address(task, name)
        info: dict[str, Any] = {
            "serviceId": service_id[:12],
            "name": name,
            "taskId": task["ID"],
            "nodeId": task.get("NodeID"),
        }
        if restarted_from:
            info["restartedFrom"] = restarted_from
        return Endpoint(host, port, info, f"service {name}")

    def _restart(self, service: Any, tasks: list[dict[str, Any]]) -> None:
        """A new task for a service whose task ended, pinned to the previous task's node."""
        service.reload()
        placement = service.attrs["Spec"]["TaskTemplate"].get("Placement") or {}
        constraints = list(placement.get("Constraints") or [])
        node = pin_node(tasks)
        if node and not any(c.replace(" ", "").startswith("node.id==") for c in constraints):
            constraints.append(f"node.id=={node}")
        service.update(constraints=constraints, force_update=True)

    async def _wait_running(self, service_id: str, name: str, old: set[str]) -> dict[str, Any]:
        """Wait for the service's new task to run; the scheduler's reason if it does not."""
        status = "no task yet"
        with trio.move_on_after(self.settings.connect_timeout_s):
            while True:
                tasks = await self.engine.call(
                    lambda c: c.api.tasks(filters={"service": service_id})
                )
                task = newest([t for t in tasks if t["ID"] not in old])
                if task is not None:
                    state = task["Status"]["State"]
                    detail = task["Status"].get("Err") or task["Status"].get("Message") or ""
                    status = f"{state}: {detail}" if detail else state
                    if state == "running":
                        return task
                    if state in ENDED:
                        if "No such image" in detail:
                            image = self.settings.runtime_image
                            raise ProvisionError(f"runtime image not found on the node: {image}")
                        raise ProvisionError(f"the task of service {name} ended ({status})")
                await trio.sleep(POLL_S)
        # Short: a close reason holds 123 bytes, and the scheduler's words matter most.
        raise ProvisionError(
            f"no task running after {self.settings.connect_timeout_s:g} s: {status}"
        )

    async def _address(self, task: dict[str, Any], name: str) -> tuple[str, int]:
        """Where the gateway reaches the task's bridge."""
        port = self.settings.swarm_bridge_port
        if self.reach == "network":
            for attachment in task.get("NetworksAttachments") or []:
                network = attachment.get("Network", {}).get("Spec", {}).get("Name")
                if network == self.settings.swarm_network and attachment.get("Addresses"):
                    return attachment["Addresses"][0].split("/")[0], port
            return name, port  # the service's DNS name on the network (dnsrr)
        node_id = task.get("NodeID")
        addr = await self.engine.call(lambda c: c.nodes.get(node_id).attrs["Status"]["Addr"])
        if self.reach == "host":
            return addr, port
        for binding in (task["Status"].get("PortStatus") or {}).get("Ports") or []:
            if binding.get("TargetPort") == port and binding.get("PublishedPort"):
                return addr, int(binding["PublishedPort"])
        raise ProvisionError(f"the task of service {name} publishes no bridge port")

    # -- listing and removal -------------------------------------------------------------

    async def list_ours(self) -> list[Owned]:
        """This gateway's services; running = a task that is running or on its way."""
        label = f"{LABEL}.gateway={self.settings.gateway_id}"

        def listing(client: Any) -> list[Owned]:
            services = client.services.list(filters={"label": label})
            if not services:
                return []
            tasks = client.api.tasks(filters={"desired-state": "running"})
            live = {t["ServiceID"] for t in tasks if t["Status"]["State"] not in ENDED}
            return [
                Owned(
                    (s.attrs["Spec"].get("Labels") or {}).get(f"{LABEL}.session_id"),
                    s.name,
                    s.id in live,
                    s,
                )
                for s in services
            ]

        return await self.engine.call(listing)

    async def remove(self, session_id: str, purge: bool) -> None:
        """Remove the service, wait for its tasks to go, then its volumes and secret.

        ``purge`` changes nothing here: the home is a volume of the session, and a deleted
        session leaves nothing behind.
        """
        import docker.errors

        name = self.name(session_id)

        def remove_service(client: Any) -> str | None:
            try:
                service = client.services.get(name)
            except docker.errors.NotFound:
                return None
            service.remove()
            return service.id

        service_id = await self.engine.call(remove_service)
        if service_id is not None:
            await self._wait_tasks_gone(service_id, name)
        await self._remove_leftovers(session_id)

    async def _wait_tasks_gone(self, service_id: str, name: str) -> None:
        """``service rm`` returns at once: wait until no task and no container is left."""
        label = f"com.docker.swarm.service.name={name}"

        def remaining(client: Any) -> int:
            # Filtering by a removed service is an error: list them all (the tasks of a
            # removed service stay listed until their node has shut them down).
            tasks = [t for t in client.api.tasks() if t.get("ServiceID") == service_id]
            containers = client.containers.list(all=True, filters={"label": label})
            return len(tasks) + len(containers)

        with trio.move_on_after(max(30.0, 4 * self.settings.stop_timeout_s)):
            while True:  # the engine has no event for "gone": poll
                if not await self.engine.call(remaining):
                    return
                await trio.sleep(POLL_S * 2)
        log.warning("the tasks of service %s are still there; removing what can go", name)

    async def _remove_leftovers(self, session_id: str) -> None:
        """The session's volumes and secret (retried while a stopping task still uses them)."""
        import docker.errors

        session_label = f"{LABEL}.session_id={session_id}"
        gateway_label = f"{LABEL}.gateway={self.settings.gateway_id}"
        filters = {"label": [session_label, gateway_label]}

        def remove_all(client: Any) -> list[str]:
            busy = []
            for volume in client.volumes.list(filters=filters):
                try:
                    volume.remove()
                except docker.errors.NotFound:
                    pass
                except docker.errors.APIError as exc:
                    busy.append(f"volume {volume.name}: {exc.explanation or exc}")
            for secret in client.secrets.list(filters=filters):
                try:
                    secret.remove()
                except docker.errors.NotFound:
                    pass
                except docker.errors.APIError as exc:
                    busy.append(f"secret {secret.name}: {exc.explanation or exc}")
            return busy

        busy: list[str] = []
        with trio.move_on_after(max(10.0, 2 * self.settings.stop_timeout_s)):
            while True:
                busy = await self.engine.call(remove_all)
                if not busy:
                    break
                await trio.sleep(POLL_S * 3)
        if busy:
            log.warning("left behind for session=%s: %s", session_id, "; ".join(busy))

    async def remove_owned(self, items: list[Owned]) -> None:
        """Remove orphan services with their tasks, volumes and secrets."""
        for item in items:
            service_id = item.ref.id
            await self.engine.call(lambda _c, s=item.ref: s.remove())
            await self._wait_tasks_gone(service_id, item.name)
            if item.session_id:
                await self._remove_leftovers(item.session_id)

    async def collect_orphans_of(self, known: set[str]) -> list[str]:
        """Orphan services (see ``ContainerProvisioner``), then orphan volumes and secrets.

        A volume or secret of this gateway whose session the store does not know, and that
        no service owns, is what a crash between creating it and creating the service left.
        """
        removed = await super().collect_orphans_of(known)
        label = f"{LABEL}.gateway={self.settings.gateway_id}"
        key = f"{LABEL}.session_id"

        def leftovers(client: Any) -> set[str | None]:
            found: set[str | None] = set()
            for volume in client.volumes.list(filters={"label": label}):
                found.add((volume.attrs.get("Labels") or {}).get(key))
            for secret in client.secrets.list(filters={"label": label}):
                found.add((secret.attrs["Spec"].get("Labels") or {}).get(key))
            return found

        for session_id in sorted(s for s in await self.engine.call(leftovers) if s):
            if not self.is_orphan(session_id, known):
                continue
            log.warning("removing the volumes and secret of unknown session=%s", session_id)
            await self._remove_leftovers(session_id)
            removed.append(f"{self.name(session_id)} (volumes, secret)")
        return removed
