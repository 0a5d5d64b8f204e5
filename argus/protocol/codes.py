"""Every code a client can see, named, in one place: JSON-RPC errors and WebSocket closes.

Why one module: these numbers are part of the wire contract (docs/client-guide.md lists
them), so each is written once here and referred to by name everywhere else.
"""

from __future__ import annotations

# JSON-RPC error codes used by the gateway itself. The standard ones keep their meaning;
# the -3200x range is ours and documented in docs/client-guide.md.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
GATEWAY_ERROR = -32000
RUNTIME_EXITED = -32001
TOO_MANY_REQUESTS = -32002
QUEUE_FULL = -32003  # a follow-up or system-event queue is at its bound; nothing was added

# WebSocket close codes (RFC 6455 section 7.4.1) as the gateway uses them.
CLOSE_NORMAL = 1000  # the client or node is done
CLOSE_GOING_AWAY = 1001  # the session stopped, or the gateway is shutting down
CLOSE_ABNORMAL = 1006  # never sent: the peer vanished without a close frame
CLOSE_POLICY_VIOLATION = (
    1008  # unauthorized, foreign Origin, bad options (HTTP 403 if before accept)
)
CLOSE_INTERNAL_ERROR = 1011  # the runtime exited or could not be provisioned; a send timed out
CLOSE_SERVICE_RESTART = 1012  # a node connection replaced by a newer one with the same id
CLOSE_TRY_AGAIN_LATER = 1013  # too slow (resume with since=), or a limit was reached
MAX_CLOSE_REASON_BYTES = 123  # a close frame's payload is 125 bytes, 2 of them the code
