"""The workspace files every runtime gets: the shipped templates and their front matter.

Why a leaf of its own: the gateway (automation seeds a session's workspace before its first
turn) and ``argus bridge`` (``--bootstrap-workspace`` in a container) both copy the
templates, and the bridge is a separate program that may import only leaves.
Everything here reads or writes files: call it from a worker thread inside the gateway.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

HEARTBEAT_FILE = "HEARTBEAT.md"
TEMPLATE_FILES = ("AGENTS.md", "SOUL.md", "USER.md", "HEARTBEAT.md")


def strip_front_matter(text: str) -> str:
    """Drop a leading ``---`` … ``---`` block (BOM and CRLF tolerated) and leading blank lines."""
    text = text.lstrip("\ufeff")
    lines = text.splitlines()
    if lines and lines[0].strip() == "---":
        for i in range(1, len(lines)):
            if lines[i].strip() == "---":
                lines = lines[i + 1 :]
                break
    while lines and not lines[0].strip():
        lines.pop(0)
    return "\n".join(lines)


def templates_dir() -> Path:
    """Where the shipped templates are (inside the installed package)."""
    return Path(str(resources.files("argus") / "templates"))


def bootstrap_templates(workspace: Path, source: Path | None = None) -> list[str]:
    """Copy missing templates into ``workspace`` (never overwriting); the names written."""
    source = source or templates_dir()
    workspace.mkdir(parents=True, exist_ok=True)
    written = []
    for name in TEMPLATE_FILES:
        target = workspace / name
        if target.exists():
            continue
        try:
            text = strip_front_matter((source / name).read_text(encoding="utf-8")).strip()
        except OSError:
            text = f"# {name}"
        tmp = target.with_name(f".{name}.{os.getpid()}.tmp")
        tmp.write_text(text + "\n", encoding="utf-8")
        try:
            os.link(tmp, target)  # atomic, and fails if someone created it meanwhile
        except FileExistsError:
            pass
        else:
            written.append(name)
        finally:
            tmp.unlink(missing_ok=True)
    return written
