"""Who is calling, and which nodes they may reach.

Three kinds of credentials reach the node surfaces:

* the admin token (``ARGUS_TOKEN``): everything, every node;
* the node token (``ARGUS_NODE_TOKEN``, else the admin token): may connect a node on
  ``/nodes/ws`` under any id (devices such as a laptop);
* a session token (``ast.<sessionId>.<mac>``, see ``argus.tokens``), which a runtime gets
  instead of any gateway secret: on ``/nodes/ws`` it may only connect ``runtime:<sid>``;
  on ``/mcp`` it reaches only that runtime node and the nodes the admin allowed for the
  session in ``ARGUS_NODE_ALLOW``; it opens nothing else (no ``/ws``, ``/sessions``,
  ``/automation``, ``/nodes``).

``ARGUS_NODE_ALLOW`` is a comma-separated list: ``mac`` lets every session reach node
``mac``; ``abc123/mac`` lets only session ``abc123``. ``*`` as the node allows every node.
With ``ARGUS_TOKEN`` unset (loopback only), a caller without a token is the admin.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

from .. import auth
from ..auth import session_of_token

RUNTIME_PREFIX = "runtime:"


def runtime_node_id(session_id: str) -> str:
    """The node id of a session's own runtime node."""
    return RUNTIME_PREFIX + session_id


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: the admin, or one session."""

    session_id: str | None  # None: the admin

    @property
    def is_admin(self) -> bool:
        """Whether this caller may do anything."""
        return self.session_id is None


ADMIN = Principal(None)


def parse_allow_list(value: str | None) -> list[tuple[str | None, str]]:
    """``ARGUS_NODE_ALLOW`` as (session or None for all, node pattern) pairs."""
    entries: list[tuple[str | None, str]] = []
    for raw in (value or "").split(","):
        item = raw.strip()
        if not item:
            continue
        session, sep, node = item.partition("/")
        entries.append((session.strip(), node.strip()) if sep else (None, item))
    return entries


class Scopes:
    """Authentication and the reachability rule, for the node surfaces and ``/mcp``."""

    def __init__(
        self,
        admin_token: str | None,
        node_token: str | None,
        secret: str,
        allow: list[tuple[str | None, str]],
        session_exists: Callable[[str], bool] = lambda session_id: True,
    ) -> None:
        self.admin_token = admin_token
        self.node_token = node_token or admin_token
        self.secret = secret
        self.allow = allow
        # A deleted session's token must stop working even though its MAC still verifies.
        self.session_exists = session_exists

    def _session(self, token: str | None) -> str | None:
        session_id = session_of_token(self.secret, token)
        if session_id is None or not self.session_exists(session_id):
            return None
        return session_id

    def principal(self, token: str | None) -> Principal | None:
        """The caller a token proves (admin or a live session), or None (unauthorised)."""
        session_id = self._session(token)
        if session_id is not None:
            return Principal(session_id)
        if auth.token_matches(self.admin_token, token):
            return ADMIN
        return None

    def node_principal(self, token: str | None) -> Principal | None:
        """Who may connect a node: the node token (any id) or a session token (its own)."""
        session_id = self._session(token)
        if session_id is not None:
            return Principal(session_id)
        if auth.token_matches(self.node_token, token):
            return ADMIN
        return None

    def may_reach(self, principal: Principal, node_id: str) -> bool:
        """Whether ``principal`` may list or invoke ``node_id``."""
        if principal.is_admin:
            return True
        if node_id == runtime_node_id(principal.session_id or ""):
            return True
        for session, pattern in self.allow:
            if session not in (None, principal.session_id):
                continue
            if pattern == node_id or fnmatch.fnmatchcase(node_id, pattern):
                if node_id.startswith(RUNTIME_PREFIX) and pattern != node_id:
                    continue  # another session's runtime node only by its exact id
                return True
        return False
