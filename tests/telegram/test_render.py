"""Reply rendering: HEARTBEAT_OK rules, the HTML subset, parts of at most 4096 UTF-16 units."""

from __future__ import annotations

import random

import pytest

from argus.channels.telegram import render
from tests.telegram.standin import parse_html


def test_the_originals_verified_example() -> None:
    markdown = (
        "# Title\nSome **bold** and *it* and `code <x>` and [link](http://a.com?q=1&b=2)\n"
        "> quote\n- item one"
    )
    assert render.to_html(markdown) == (
        "<b>Title</b>\nSome <b>bold</b> and <i>it</i> and <code>code &lt;x&gt;</code> and "
        '<a href="http://a.com?q=1&amp;b=2">link</a>\n│ quote\n• item one'
    )


def test_unsafe_links_lose_their_href() -> None:
    assert render.to_html("[x](javascript:alert(1))") == "x"
    assert render.to_html("[w](https://en.wikipedia.org/wiki/A_(b))") == (
        '<a href="https://en.wikipedia.org/wiki/A_(b)">w</a>'
    )


@pytest.mark.parametrize(
    "text",
    [
        "HEARTBEAT_OK",
        "**HEARTBEAT_OK**",
        "<b>HEARTBEAT_OK</b>",
        "HEARTBEAT_OK All good.",
        "Disk is full. HEARTBEAT_OK",
        "   ",
    ],
)
def test_acknowledgements_are_not_sent(text: str) -> None:
    assert render.strip_heartbeat(text) is None


def test_a_long_remainder_is_sent_without_the_token() -> None:
    long = "x" * 301
    assert render.strip_heartbeat(f"HEARTBEAT_OK {long}") == long
    assert render.strip_heartbeat("foo HEARTBEAT_OK bar") == "foo HEARTBEAT_OK bar"


def test_code_blocks_are_cut_and_reopened() -> None:
    code = "\n".join(f"line {i} <x> & y" for i in range(3000))
    parts = render.render_parts(f"intro\n\n```python\n{code}\n```\n\noutro")
    assert len(parts) > 2
    body = [p for p in parts if "<pre><code>" in p.html]
    assert len(body) >= 2
    assert all(p.html.count("<pre><code>") == p.html.count("</code></pre>") for p in parts)
    for part in parts:
        assert render.utf16_len(part.html) <= render.LIMIT
        visible = parse_html(part.html)  # the stand-in's (Telegram's) parser accepts it
        assert render.utf16_len(visible) <= render.LIMIT
    lines = [ln for p in parts for ln in p.plain.splitlines()]
    assert [ln for ln in lines if ln.startswith("line ")] == code.splitlines()


def test_utf16_units_count_astral_characters_twice() -> None:
    text = "😀" * 3000  # 6000 UTF-16 units, 3000 code points
    parts = render.render_parts(text)
    assert len(parts) == 2
    assert all(render.utf16_len(p.html) <= render.LIMIT for p in parts)
    assert "".join(p.plain for p in parts) == text


def test_random_markdown_always_fits_and_parses() -> None:
    rng = random.Random(5)
    pieces = [
        "**b**",
        "*i*",
        "`c<d>`",
        "[l](https://x.y/?a=1&b=2)",
        "# h",
        "> q",
        "- li",
        "a&b",
        "<tag>",
        "```",
        "\n",
        "\n\n",
        "😀",
        "word " * 50,
        "~~s~~",
        "_u_",
    ]
    for _ in range(200):
        markdown = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 400)))
        for part in render.render_parts(markdown):
            assert render.utf16_len(part.html) <= render.LIMIT
            parse_html(part.html)
