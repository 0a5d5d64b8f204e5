"""The project context of gateway turns.

The block keeps the original's exact shape (``# Project Context``, then ``[NAME]`` …
``[/NAME]`` per file, in the order AGENTS.md, SOUL.md, USER.md, and HEARTBEAT.md for
heartbeat turns) and fixes its weaknesses: YAML front matter is stripped, and each file and
the whole block are capped with a visible marker, so a runaway file cannot blow the model's
context or the daemon's memory. Everything here reads files: call it from a worker thread.
"""

from __future__ import annotations

from pathlib import Path

from ..workspace import HEARTBEAT_FILE, strip_front_matter

CONTEXT_FILES = ("AGENTS.md", "SOUL.md", "USER.md")


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
