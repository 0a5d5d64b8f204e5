"""Adopting a bridged runtime, whose output lines carry numbers that outlive the gateway.

With a bridge (``argus.bridge``), a session's ``seq`` is ``base + line number``: the same
numbers before and after a gateway restart, so a client resumes with ``since`` across one.
``adopt`` runs once per connection to a bridge:

* it presents ``since`` (what this gateway already consumed from that bridge instance) and
  the ``base`` a fresh bridge should take (the replay log's last number);
* a gateway that starts with an empty log (it restarted) renumbers its log to continue at
  the bridge's first retained line; otherwise numbering continues where it was;
* the bridge's connection generation sets the epoch of the connection's request ids, so
  no id repeats one of an earlier gateway's (whose responses the bridge may still send);
* the cached ``initialize`` result primes the handshake, so clients are not forwarded a
  second ``initialize`` the runtime would refuse.

The session then reads the replayed backlog before it reports the runtime as running, so
a client attaching with ``since`` gets everything.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..protocol import messages as m
from ..protocol.requests import UpstreamIds, bridged_epoch
from ..provision.base import NumberedRuntime
from .connection import RuntimeConnection

if TYPE_CHECKING:
    from .session import Session

log = logging.getLogger(__name__)


async def adopt(session: Session, runtime: NumberedRuntime, conn: RuntimeConnection) -> int:
    """Handshake with the bridge and align the replay log; returns the backlog's last seq."""
    replay = session.replay
    known = session.bridge_instance
    since = replay.last_seq - session.bridge_base if known is not None else 0
    await runtime.hello(since=max(0, since), base=replay.last_seq, instance=known)
    if runtime.instance != known or replay.last_seq == 0:
        start = runtime.base + runtime.first
        if replay.last_seq != start - 1:
            if replay.last_seq:
                log.warning(
                    "bridge numbering differs from the log session=%s log=%s bridge=%s",
                    session.id,
                    replay.last_seq,
                    start - 1,
                )
            replay.restart_at(start)
    session.bridge_instance, session.bridge_base = runtime.instance, runtime.base
    conn.requests.ids = UpstreamIds(bridged_epoch(runtime.generation))
    if runtime.initialize_result is not None:
        conn.handshake.prime(runtime.initialize_result)
    await report_restart(runtime)
    return runtime.base + runtime.head


async def report_restart(runtime: NumberedRuntime) -> None:
    """Tell clients the engine runs a new task for this session (swarm: a new task id).

    The provisioner says so with ``restartedFrom`` in the runtime's info. The note goes
    through the bridge, which numbers it after the backlog, so it keeps its number across
    a gateway restart like every other line.
    """
    previous = runtime.info.pop("restartedFrom", None)
    if previous:
        params = {"taskId": runtime.info.get("taskId"), "previousTaskId": previous}
        await runtime.send_note(m.notification("argus/runtime/restarted", params).encode())
