"""What the container provisioners share: one runtime per session, behind ``argus bridge``.

Docker (a container per session), swarm (a service per session) and, designed on paper,
Kubernetes (a Pod per session, docs/scale-out.md) differ only in how a session's runtime is
created, found and removed. Everything else lives here, once:

* the engine client: created once, every call in a worker thread, engine errors turned
  into ``ProvisionError`` with a reason a client can read (``DockerEngine``);
* the name ``<ARGUS_CONTAINER_PREFIX>-<sessionId>``, the ``io.argus.*`` labels (session id,
  gateway id, layout), the runtime's environment (never ``ARGUS_TOKEN``), the bridge's
  arguments and the resource limits from ``ARGUS_RUNTIME_*``;
* the bridge connection: wait until the bridge really answers (a published port accepts
  before the bridge listens), then a ``BridgeRuntime`` with the session's token;
* the lifecycle on top of three engine operations a subclass provides:

  ``ensure(session_id) -> Endpoint``
      find or create the runtime, start it when it is stopped, say where its bridge is;
  ``list_ours() -> list[Owned]``
      this gateway's runtimes, found by the ``io.argus.gateway`` label;
  ``remove(session_id)`` / ``remove_owned(items)``
      remove a runtime and what belongs to it.

``live_sessions`` (re-adoption) and ``collect_orphans`` are written once on ``list_ours``,
with the same safety guard for every engine: only runtimes labelled with this gateway's id
and a session id are considered (a gateway running as a service beside them is not one),
only those whose session the store does not know are removed (logged first), and the store
is never pruned from what the engine lists.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
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
LAYOUT = "argus_bridge_v1"


@dataclass
class Endpoint:
    """Where a session's bridge listens, and what ``GET /sessions`` shows about it."""

    host: str
    port: int
    info: dict[str, Any] = field(default_factory=dict)
    what: str = ""  # for messages: "container argus-x", "service argus-x"


@dataclass
class Owned:
    """One runtime this gateway owns, as the engine lists it."""

    session_id: str | None
    name: str
    running: bool
    ref: Any = None  # the engine's object, for remove_owned


class DockerEngine:
    """One Docker SDK client for a provisioner; every call in a worker thread.

    Errors become ``ProvisionError`` with the engine's explanation, which ends up in the
    client's close reason (1011 "Provisioning failed: ...").
    """

    def __init__(self, image: str) -> None:
        self.image = image
        self._client: Any = None
        self._lock = trio.Lock()

    async def client(self) -> Any:
        """The SDK client, created on first use (``docker.from_env``)."""
        import docker.errors

        async with self._lock:
            if self._client is None:
                try:
                    self._client = await trio.to_thread.run_sync(docker.from_env)
                except docker.errors.DockerException as exc:
                    raise ProvisionError(f"Docker engine unavailable: {exc}") from exc
        return self._client

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(client, *args, **kwargs)`` in a worker thread."""
        import docker.errors

        client = await self.client()

        def run() -> Any:
            return fn(client, *args, **kwargs)

        try:
            return await trio.to_thread.run_sync(run)
        except docker.errors.ImageNotFound as exc:
            raise ProvisionError(f"runtime image not found: {self.image}") from exc
        except docker.errors.APIError as exc:
            explanation = str(exc.explanation or exc)
            if "not a swarm manager" in explanation:
                explanation = (
                    "this Docker engine is not a swarm manager "
                    "(run `docker swarm init`, or point DOCKER_HOST at a manager)"
                )
            raise ProvisionError(f"Docker engine error: {explanation}") from exc
        except docker.errors.DockerException as exc:
            raise ProvisionError(f"Docker engine unavailable: {exc}") from exc


class ContainerProvisioner(Provisioner):
    """A runtime per session in an engine, reached through its bridge on TCP."""

    #: The manager runs its idle reaper for these modes (stopped runtimes restart on attach).
    stops_idle_runtimes = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = DockerEngine(settings.runtime_image)
        # Sessions whose runtime was asked for while orphan collection ran: a session
        # created after the collection took its list of known sessions is not an orphan.
        self._collecting = False
        self._asked_during_collection: set[str] = set()

    # -- shared description of a session's runtime -----------------------------------------

    def name(self, session_id: str) -> str:
        """The runtime's name in the engine."""
        return f"{self.settings.container_prefix}-{session_id}"

    def labels(self, session_id: str) -> dict[str, str]:
        """The ``io.argus.*`` labels of everything a session owns in the engine."""
        return {
            f"{LABEL}.session_id": session_id,
            f"{LABEL}.gateway": self.settings.gateway_id,
            f"{LABEL}.runtime_layout": LAYOUT,
        }

    def session_token(self, session_id: str) -> str:
        """The session's derived token (never the admin token)."""
        if self.gateway is None:
            raise ProvisionError("the gateway is not ready yet")
        return self.gateway.session_env(session_id)["ARGUS_SESSION_TOKEN"]

    def runtime_env(self, session_id: str, *, with_token: bool) -> dict[str, str]:
        """The runtime's environment: its session's settings, and its token ``with_token``.

        Without the token (swarm: it is a secret file) the bridge reads it from the file
        and hands it to the runtime and node-host itself, so it never shows in ``inspect``.
        """
        assert self.gateway is not None
        token = self.session_token(session_id)
        env = {
            "ARGUS_SESSION_ID": session_id,
            "ARGUS_JSONL_LINE_LIMIT_BYTES": str(self.settings.jsonl_line_limit_bytes),
        }
        if self.settings.runtime_cmd:
            env["ARGUS_RUNTIME_CMD"] = self.settings.runtime_cmd
        url = self.settings.docker_gateway_url
        if url:
            env.update(GatewayLink(url.rstrip("/"), self.gateway.secret).session_env(session_id))
            env["ARGUS_NODE_TOKEN"] = token
        if with_token:
            env["ARGUS_SESSION_TOKEN"] = token
        else:
            for key in ("ARGUS_SESSION_TOKEN", "ARGUS_MCP_TOKEN", "ARGUS_NODE_TOKEN"):
                env.pop(key, None)
        return env

    def bridge_args(self, session_id: str) -> list[str]:
        """Arguments after the image's ``argus bridge --listen tcp:0.0.0.0:7777`` entry point."""
        args = ["--stderr-log", f"{CONTAINER_HOME}/runtime-stderr.log"]
        if self.settings.runtime_node and self.settings.docker_gateway_url:
            args += ["--node-id", f"runtime:{session_id}"]
        return args

    def memory_bytes(self) -> int | None:
        """``ARGUS_RUNTIME_MEMORY`` in bytes (``2g`` -> 2147483648)."""
        if not self.settings.runtime_memory:
            return None
        from docker.utils import parse_bytes

        try:
            return int(parse_bytes(self.settings.runtime_memory))
        except Exception as exc:  # docker.errors.DockerException on a bad unit
            raise ProvisionError(
                f"ARGUS_RUNTIME_MEMORY: not a size: {self.settings.runtime_memory!r}"
            ) from exc

    def nano_cpus(self) -> int | None:
        """``ARGUS_RUNTIME_CPUS`` in the engine's unit (1e-9 CPU)."""
        return int(self.settings.runtime_cpus * 1e9) if self.settings.runtime_cpus else None

    # -- what each engine does differently ---------------------------------------------------

    @abc.abstractmethod
    async def ensure(self, session_id: str) -> Endpoint:
        """Find or create the session's runtime, started; where its bridge listens."""

    @abc.abstractmethod
    async def list_ours(self) -> list[Owned]:
        """This gateway's runtimes (by the ``io.argus.gateway`` label)."""

    @abc.abstractmethod
    async def remove(self, session_id: str, purge: bool) -> None:
        """Remove the session's runtime and what belongs to it."""

    @abc.abstractmethod
    async def remove_owned(self, items: list[Owned]) -> None:
        """Remove these runtimes (orphans) and what belongs to them."""

    # -- the shared lifecycle ------------------------------------------------------------------

    @asynccontextmanager
    async def open_runtime(self, session_id: str) -> AsyncIterator[Runtime]:
        """Start (or find) the session's runtime and connect to its bridge."""
        token = self.session_token(session_id)
        if self._collecting:
            self._asked_during_collection.add(session_id)
        endpoint = await self.ensure(session_id)
        stream = None
        with trio.move_on_after(self.settings.connect_timeout_s):
            while stream is None:
                stream = await connect_ready(endpoint.host, endpoint.port)
                if stream is None:
                    await trio.sleep(0.1)
        if stream is None:
            raise ProvisionError(
                f"the runtime bridge in {endpoint.what} did not answer on "
                f"{endpoint.host}:{endpoint.port}"
            )
        runtime = BridgeRuntime(stream, token, endpoint.info, self.settings.jsonl_line_limit_bytes)
        try:
            yield runtime
        finally:
            await runtime.close()

    async def destroy(self, session_id: str, purge: bool) -> None:
        """``DELETE /sessions/{id}``: remove the session's runtime (see ``remove``)."""
        await self.remove(session_id, purge)

    async def live_sessions(self, session_ids: list[str]) -> list[str]:
        """Known sessions whose runtime is running (re-adopted at start-up)."""
        try:
            owned = await self.list_ours()
        except ProvisionError as exc:
            log.warning("cannot list runtimes: %s", exc)
            return []
        known = set(session_ids)
        return [o.session_id for o in owned if o.running and o.session_id in known]  # type: ignore[misc]

    def is_orphan(self, session_id: str | None, known: set[str]) -> bool:
        """Whether what carries this session id may be removed as an orphan."""
        if session_id is None or session_id in known:
            return False
        return session_id not in self._asked_during_collection

    async def collect_orphans(self, session_ids: list[str]) -> list[str]:
        """Remove this gateway's runtimes with no known session; their names."""
        self._collecting = True
        try:
            return await self.collect_orphans_of(set(session_ids))
        finally:
            self._collecting = False
            self._asked_during_collection.clear()

    async def collect_orphans_of(self, known: set[str]) -> list[str]:
        """``collect_orphans`` proper (an engine may remove more: volumes, secrets)."""
        orphans = [o for o in await self.list_ours() if self.is_orphan(o.session_id, known)]
        if not orphans:
            return []
        names = sorted(o.name for o in orphans)
        log.warning(
            "removing %s orphan %s(s) with no known session: %s", len(names), self.unit, names
        )
        await self.remove_owned(orphans)
        return names

    #: What one runtime is called in this engine, for log lines.
    unit = "container"


async def connect_ready(host: str, port: int) -> trio.SocketStream | None:
    """A connection to a bridge that is listening, or None.

    A published port accepts connections before the bridge behind it listens (Docker's
    proxy answers, then hangs up): a ready bridge says nothing until our hello, a proxy with
    nothing behind it closes at once.
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
