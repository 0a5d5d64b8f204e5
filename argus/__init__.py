"""Argus: puts agent runtimes such as ``codex app-server`` on the network.

Each runtime gets a session that remote clients reach over WebSocket; sessions outlive
disconnects and can be shared by several clients. See docs/architecture.md.
"""

__version__ = "0.1.0"
