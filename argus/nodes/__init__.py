"""The gateway's nodes: devices connected over ``/nodes/ws`` that offer commands.

``registry`` (connected nodes, pending invokes with deadlines), ``scope`` (which caller may
reach which node), ``tools`` (the MCP tools over the registry). The HTTP and WebSocket
surfaces live in ``argus.web`` (``nodes_ws``, ``mcp``, ``nodes_http``); the node-host agent
is its own program (``argus.node_host``); what a node event does to a session is
automation's (``argus.automation.node_events``).
"""
