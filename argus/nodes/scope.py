"""Who is calling: the admin, a node, or one session (by its derived token).

Why scopes: in the original every runtime held the admin token, so a prompt injection in any
session could list and delete sessions and run commands on every node (§12.5 #37). Here a
runtime only ever holds its session's derived token (``argus.tokens``), which this module
maps back to the session and limits to:

- that session's MCP scope (``/mcp``);
- its own runtime node ``runtime:<sid>`` (registering it on ``/nodes/ws``, invoking it);
- the nodes the admin listed for it in ``ARGUS_NODE_ALLOW``.

It never matches the admin token, so ``/sessions``, ``/nodes``, ``/automation`` and ``/ws``
(which compare with the admin token only) stay closed to it.

``ARGUS_NODE_ALLOW`` is a comma-separated list of entries ``[<sessionId>=]<nodeId>``: a bare
``nodeId`` is reachable from every session, ``<sessionId>=<nodeId>`` from that session only;
``*`` as the node id allows every node (for that session, or for all).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..config import Settings
from ..tokens import PREFIX, derive_session_token
from ..web import auth

RUNTIME_PREFIX = "runtime:"


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the admin (every node) or one session."""

    session_id: str | None  # None: the admin

    @property
    def is_admin(self) -> bool:
        """True for the admin token (or auth off)."""
        return self.session_id is None


def parse_allow(entries: Iterable[str]) -> dict[str, frozenset[str]]:
    """``ARGUS_NODE_ALLOW`` entries -> {sessionId or "*": node ids}."""
    out: dict[str, set[str]] = {}
    for entry in entries:
        entry = entry.strip()
        if not entry:
            continue
        sid, sep, node = entry.partition("=")
        if not sep:
            sid, node = "*", entry
        out.setdefault(sid.strip() or "*", set()).add(node.strip())
    return {k: frozenset(v) for k, v in out.items()}


class Scopes:
    """Token checks for the node and MCP surfaces."""

    def __init__(
        self, settings: Settings, secret: str, session_ids: Callable[[], Iterable[str]]
    ) -> None:
        self.settings = settings
        self.secret = secret
        self.session_ids = session_ids
        self.allow = parse_allow(settings.node_allow)
        self._cache: dict[str, str] = {}  # session id -> token; bounded by the live sessions

    def session_token(self, session_id: str) -> str:
        """The derived token of ``session_id`` (cached; pruned to live sessions)."""
        token = self._cache.get(session_id)
        if token is None:
            if len(self._cache) > 4 * self.settings.max_sessions:
                live = set(self.session_ids())
                self._cache = {k: v for k, v in self._cache.items() if k in live}
            token = self._cache[session_id] = derive_session_token(self.secret, session_id)
        return token

    def session_of(self, token: str | None) -> str | None:
        """The live session whose derived token this is, compared in constant time."""
        if not token or not token.startswith(PREFIX):
            return None
        found = None
        for sid in list(self.session_ids()):
            if hmac.compare_digest(token.encode(), self.session_token(sid).encode()):
                found = sid
        return found

    def admin_caller(self, token: str | None) -> bool:
        """The admin token (or auth off)."""
        return auth.token_matches(self.settings.admin_token, token)

    def mcp_caller(self, token: str | None) -> Caller | None:
        """``/mcp``: the admin token or a session's token; else None (401)."""
        sid = self.session_of(token)
        if sid is not None:
            return Caller(sid)
        if self.settings.admin_token is not None and self.admin_caller(token):
            return Caller(None)
        if self.settings.admin_token is None and token is None:
            return Caller(None)  # auth off (loopback only)
        return None

    def node_may_register(self, token: str | None, node_id: str) -> bool:
        """``/nodes/ws``: may this token register ``node_id``?

        ``runtime:<sid>`` ids are reserved: only that session's token or the admin token may
        claim them (so no other node can stand in for a session's ``self``). Other ids take
        the node token (``ARGUS_NODE_TOKEN``, falling back to the admin token).
        """
        if node_id.startswith(RUNTIME_PREFIX):
            sid = node_id.removeprefix(RUNTIME_PREFIX)
            if token and token.startswith(PREFIX):
                return hmac.compare_digest(token.encode(), self.session_token(sid).encode())
            return self.admin_caller(token)
        node_token = self.settings.node_token_value or self.settings.admin_token
        return auth.token_matches(node_token, token)

    def token_plausible(self, token: str | None) -> bool:
        """A quick pre-check before the connect frame: some credential class could match."""
        if token and token.startswith(PREFIX):
            return True
        node_token = self.settings.node_token_value or self.settings.admin_token
        return auth.token_matches(node_token, token) or self.admin_caller(token)

    def may_reach(self, caller: Caller, node_id: str) -> bool:
        """Whether ``caller`` may list or invoke ``node_id``."""
        if caller.is_admin:
            return True
        if node_id == RUNTIME_PREFIX + caller.session_id:
            return True
        for key in ("*", caller.session_id):
            nodes = self.allow.get(key, frozenset())
            if node_id in nodes:
                return True
            if "*" in nodes and not node_id.startswith(RUNTIME_PREFIX):
                return True  # a wildcard never opens another session's runtime node
        return False
