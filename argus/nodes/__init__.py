"""Nodes: devices that connect over ``/nodes/ws`` and offer commands, and the node-host agent.

``registry`` (connected nodes, pending invokes), ``ws`` (the ``/nodes/ws`` endpoint),
``scope`` (who may reach which node), ``mcp`` (the ``/mcp`` endpoint), ``host`` and
``jobs`` (the ``argus node-host`` agent).
"""
