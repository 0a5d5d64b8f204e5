"""Property-based fuzzing (hypothesis) of the Telegram renderer (channels/telegram/render).

For any reply text: rendering never raises, every part fits Telegram's 4096 UTF-16 units
(HTML and its plain fallback), every part's HTML has balanced tags, and no text is lost
(the plain parts hold every letter, digit and emoji of the input, in order).
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from argus.channels.telegram import render

TAG = re.compile(r"<(/?)([a-z]+)[^>]*>")
TOKENS = [*"ab *_~`#>-+[]()\n\t<>&\"'", "```", "\n\n", "😀", "é", "word", "http://x.y"]
markdown = st.lists(st.sampled_from(TOKENS), max_size=300).map("".join)


FENCE_INFO = re.compile(r"(?m)^(\s*```)[^\n]*")


def letters(text: str) -> str:
    return re.sub(r"[^\w😀]", "", text)


def is_subsequence(small: str, big: str) -> bool:
    rest = iter(big)
    return all(ch in rest for ch in small)


def balanced(html: str) -> bool:
    stack = []
    for closing, name in TAG.findall(html):
        if not closing:
            stack.append(name)
        elif not stack or stack.pop() != name:
            return False
    return not stack


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markdown, st.integers(min_value=64, max_value=4096))
def test_parts_fit_and_are_balanced(text: str, limit: int) -> None:
    parts = render.render_parts(text, limit)
    for part in parts:
        assert render.utf16_len(part.html) <= limit
        assert render.utf16_len(part.plain) <= limit
        assert balanced(part.html), part.html
    # Markup may be consumed (an empty fence is no message, a fence's language tag is not
    # shown); the words never are, and nothing is invented: the output's letters lie between
    # the input's without language tags and the whole input's, in order.
    shown = letters("".join(p.plain for p in parts))
    assert is_subsequence(letters(FENCE_INFO.sub("", text)), shown)
    assert is_subsequence(shown, letters(text))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_heartbeat_strip_and_html_are_total(text: str) -> None:
    out = render.strip_heartbeat(text)
    assert out is None or isinstance(out, str)
    assert isinstance(render.to_html(text), str)
