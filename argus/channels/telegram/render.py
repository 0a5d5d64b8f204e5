"""Reply text for Telegram: HEARTBEAT_OK suppression, Markdown -> HTML subset, 4096-unit parts.

* ``strip_heartbeat`` keeps the original gateway's rule, applied to every turn: a reply
  with ``HEARTBEAT_OK`` at its start or end whose remainder is at most 300 characters is
  not sent; a longer remainder is sent without the token; a token in the middle changes
  nothing. The check also runs on a copy without HTML tags and ``* ` ~ _`` decoration.
* ``to_html`` is the original's best-effort converter (fences, headers, quotes, bullets,
  inline code, links, emphasis), with one fix: only http(s)/tg/mailto links become ``<a>``.
* ``render_parts`` splits on block boundaries (blank lines, fence edges) into parts whose
  HTML is at most 4096 UTF-16 code units (Telegram's unit), reopening a code block that had
  to be cut, and pairs each part with its plain text for the ``can't parse entities`` resend.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

HEARTBEAT_TOKEN = "HEARTBEAT_OK"
HEARTBEAT_MAX_REST = 300
LIMIT = 4096

_TAG = re.compile(r"<[^>]*>")
_HEADER = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*$")
_QUOTE = re.compile(r"^\s{0,3}>\s?(.*)$")
_BULLET = re.compile(r"^\s{0,3}[-*+]\s+(.+?)\s*$")
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\[([^\]\n]+)\]\(((?:[^()\s]|\([^()\s]*\))*)\)")
_TAG_TOKEN = re.compile(r"<(/?)([a-z]+)[^>]*>")
_SAFE_HREF = re.compile(r"^(https?://|tg://|mailto:)", re.IGNORECASE)
_EMPHASIS = [
    (re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*"), "b"),
    (re.compile(r"__(?=\S)(.+?)(?<=\S)__"), "b"),
    (re.compile(r"~~(?=\S)(.+?)(?<=\S)~~"), "s"),
    (re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])"), "i"),
    (re.compile(r"(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])"), "i"),
]


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units (what Telegram counts)."""
    return len(text.encode("utf-16-le")) // 2


# -- HEARTBEAT_OK ----------------------------------------------------------------------------


def _strip_token(text: str) -> tuple[str, bool]:
    rest, stripped = text.strip(), False
    while True:
        if rest.startswith(HEARTBEAT_TOKEN):
            rest, stripped = rest[len(HEARTBEAT_TOKEN) :].strip(), True
        elif rest.endswith(HEARTBEAT_TOKEN):
            rest, stripped = rest[: -len(HEARTBEAT_TOKEN)].strip(), True
        else:
            return rest, stripped


def _normalized(text: str) -> str:
    text = _TAG.sub(" ", text).replace("&nbsp;", " ")
    text = text.strip().strip("*`~_").strip()
    return re.sub(r"\s+", " ", text)


def strip_heartbeat(text: str) -> str | None:
    """The text to send, or None when the reply is only an acknowledgement (or blank)."""
    if not isinstance(text, str) or not text.strip():
        return None
    if HEARTBEAT_TOKEN not in text:
        return text.strip()
    for candidate in (text, _normalized(text)):
        rest, stripped = _strip_token(candidate)
        if stripped:
            rest = rest.strip().strip("*`~_").strip()
            if len(rest) <= HEARTBEAT_MAX_REST:
                return None
            return rest
    return text.strip()


# -- Markdown -> HTML ------------------------------------------------------------------------


def _inline(text: str) -> str:
    slots: list[str] = []

    def keep(rendered: str) -> str:
        slots.append(rendered)
        return f"\x00{len(slots) - 1}\x00"

    def code(m: re.Match[str]) -> str:
        return keep(f"<code>{html.escape(m.group(1), quote=False)}</code>")

    def link(m: re.Match[str]) -> str:
        label, href = m.group(1), m.group(2).strip("\"'")
        if not href or not _SAFE_HREF.match(href):
            return keep(html.escape(label, quote=False))
        return keep(
            f'<a href="{html.escape(href, quote=True)}">{html.escape(label, quote=False)}</a>'
        )

    text = _INLINE_CODE.sub(code, text)
    text = _LINK.sub(link, text)
    text = html.escape(text, quote=False)
    plain = text
    for pattern, tag in _EMPHASIS:
        text = pattern.sub(lambda m, t=tag: f"<{t}>{m.group(1)}</{t}>", text)
    if not _balanced(text):
        text = plain  # overlapping markers (``*a **b* c**``): no emphasis rather than bad HTML
    return re.sub(r"\x00(\d+)\x00", lambda m: slots[int(m.group(1))], text)


def _balanced(text: str) -> bool:
    """Whether the emphasis tags in ``text`` nest properly."""
    stack: list[str] = []
    for closing, tag in _TAG_TOKEN.findall(text):
        if not closing:
            stack.append(tag)
        elif not stack or stack.pop() != tag:
            return False
    return not stack


def _line(line: str) -> str:
    if not line.strip():
        return ""
    if m := _HEADER.match(line):
        return f"<b>{_inline(m.group(1))}</b>"
    if m := _QUOTE.match(line):
        return "│ " + _inline(m.group(1))
    if m := _BULLET.match(line):
        return "• " + _inline(m.group(1))
    return _inline(line)


@dataclass(frozen=True, slots=True)
class Block:
    """A paragraph (rendered lines) or a code block (raw lines)."""

    lines: tuple[str, ...]
    code: bool


def _closes_fence(line: str) -> bool:
    """A closing fence is backticks alone (CommonMark): "```b" is text, and keeps its "b"."""
    bare = line.strip()
    return len(bare) >= 3 and set(bare) == {"`"}


def blocks_of(markdown: str) -> list[Block]:
    """Split Markdown into paragraphs and fenced code blocks (an unclosed fence is text)."""
    text = markdown.replace("\r\n", "\n").replace("\r", "\n")
    out: list[Block] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            out.append(Block(tuple(para), False))
            para.clear()

    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            end = next((j for j in range(i + 1, len(lines)) if _closes_fence(lines[j])), None)
            if end is not None:
                flush()
                code = lines[i + 1 : end]
                while code and not code[-1].strip():
                    code.pop()
                out.append(Block(tuple(code), True))
                i = end + 1
                continue
        if not line.strip():
            flush()
        else:
            para.append(line)
        i += 1
    flush()
    return out


def _code_html(lines: list[str]) -> str:
    return "<pre><code>" + html.escape("\n".join(lines), quote=False) + "\n</code></pre>"


def to_html(markdown: str) -> str:
    """The whole reply as Telegram HTML (no length limit)."""
    return "\n\n".join(_render_block(b) for b in blocks_of(markdown)).strip()


def _render_block(block: Block) -> str:
    if block.code:
        return _code_html(list(block.lines))
    return "\n".join(_line(line) for line in block.lines)


@dataclass(frozen=True, slots=True)
class Part:
    """One message: its HTML and the plain text sent if Telegram refuses the HTML."""

    html: str
    plain: str


def _plain(block: Block) -> str:
    return "\n".join(block.lines)


def _pieces(block: Block, limit: int) -> list[Part]:
    """A block as parts that each fit ``limit``, cutting it by lines, then by characters."""
    whole = Part(_render_block(block), _plain(block))
    if utf16_len(whole.html) <= limit:
        return [whole]
    overhead = utf16_len(_code_html([])) if block.code else 0
    parts: list[Part] = []
    current: list[str] = []

    def emit() -> None:
        if current:
            sub = Block(tuple(current), block.code)
            parts.append(Part(_render_block(sub), _plain(sub)))
            current.clear()

    for line in block.lines:
        trial = Block((*current, line), block.code)
        if utf16_len(_render_block(trial)) <= limit:
            current.append(line)
            continue
        emit()
        if utf16_len(_render_block(Block((line,), block.code))) <= limit:
            current.append(line)
            continue
        # One line longer than a message: cut its raw text, escaped piece by piece.
        for chunk in _cut(line, limit - overhead):
            if block.code:
                parts.append(Part(_code_html([chunk]), chunk))
            else:
                parts.append(Part(html.escape(chunk, quote=False), chunk))
    emit()
    return parts


def _cut(line: str, room: int) -> list[str]:
    """``line`` in pieces whose escaped form is at most ``room`` UTF-16 units each."""
    pieces: list[str] = []
    start, used = 0, 0
    for i, char in enumerate(line):
        cost = utf16_len(html.escape(char, quote=False))
        if used + cost > room:
            pieces.append(line[start:i])
            start, used = i, 0
        used += cost
    pieces.append(line[start:])
    return [p for p in pieces if p]


def render_parts(markdown: str, limit: int = LIMIT) -> list[Part]:
    """The reply as messages of at most ``limit`` UTF-16 units each, split between blocks."""
    parts: list[Part] = []
    html_acc: list[str] = []
    plain_acc: list[str] = []

    def flush() -> None:
        if html_acc:
            parts.append(Part("\n\n".join(html_acc), "\n\n".join(plain_acc)))
            html_acc.clear()
            plain_acc.clear()

    for block in blocks_of(markdown):
        for piece in _pieces(block, limit):
            joined = utf16_len("\n\n".join([*html_acc, piece.html]))
            if html_acc and joined > limit:
                flush()
            html_acc.append(piece.html)
            plain_acc.append(piece.plain)
    flush()
    return [p for p in parts if p.html.strip() or p.plain.strip()]
