"""The project context of gateway turns, and the workspace templates.

The block keeps the original's exact shape (``# Project Context``, then ``[NAME]`` …
``[/NAME]`` per file, in the order AGENTS.md, SOUL.md, USER.md, and HEARTBEAT.md for
heartbeat turns) and fixes its weaknesses: YAML front matter is stripped, and each file and
the whole block are capped with a visible marker, so a runaway file cannot blow the model's
context or the daemon's memory. Everything here reads files: call it from a worker thread.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

CONTEXT_FILES = ("AGENTS.md", "SOUL.md", "USER.md")
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


def truncate(text: str, cap: int, name: str) -> str:
    """``text`` cut to ``cap`` characters with a marker saying how much was left out."""
    if len(text) <= cap:
        return text
    return text[:cap].rstrip() + f"\n[... {name} truncated: {len(text) - cap} more characters]"


def read_project_context(
    workspace: Path, *, heartbeat: bool, file_cap: int, total_cap: int
) -> str | None:
    """The ``# Project Context`` block of ``workspace``, or None when no file has content."""
    names = (*CONTEXT_FILES, HEARTBEAT_FILE) if heartbeat else CONTEXT_FILES
    blocks: list[str] = []
    for name in names:
        path = workspace / name
        try:
            with path.open("r", encoding="utf-8") as f:
                raw = f.read(file_cap * 4 + 1024)  # never read a huge file whole
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            blocks.append(f"[{name}]\n(failed to read {name}: {exc})\n[/{name}]")
            continue
        content = truncate(strip_front_matter(raw).strip(), file_cap, name)
        blocks.append(f"[{name}]\n{content}\n[/{name}]")
    if not blocks:
        return None
    return truncate("# Project Context\n\n" + "\n\n".join(blocks), total_cap, "Project Context")


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
