"""The ``argus bridge`` program: one long-lived runtime behind a numbered, replayable stream.

``server`` is the program. Its wire format is ``argus.protocol.bridge`` and the gateway's
side of a connection is ``argus.provision.bridge_runtime``: the program imports only
Argus's leaves (protocol, procs, workspace), never the gateway.
"""
