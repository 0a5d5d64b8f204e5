"""The ``argus node-host`` program: a device agent that connects to ``/nodes/ws``.

``host`` (the connection, the command handlers, ``main``) and ``jobs`` (background
processes and their logs). A separate program: it imports only Argus's leaves (``procs``),
never the gateway, so it can run on a laptop or inside a runtime container.
"""
