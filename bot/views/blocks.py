"""Block Kit building blocks shared by every view, kept inside Slack's limits."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from bot.views.format import clip, escape_stray_controls

MAX_BLOCKS = 50
SECTION_TEXT_LIMIT = 3000
HEADER_LIMIT = 150
FALLBACK_LIMIT = 3900

Block = dict[str, Any]


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_TEXT_LIMIT)}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, SECTION_TEXT_LIMIT)}]}


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": clip(text, HEADER_LIMIT), "emoji": True}}


# Marks Slack would format, by its rules: an opening mark not after a letter or digit and
# before a non-space, a closing one after a non-space and not before a letter or digit, both on
# one line. So the underscores inside `my_pack_v2` or `:white_check_mark:` are not markup.
_CODE_SPAN = re.compile(r"(?<![^\W_])`([^`\n]+)`(?![^\W_])")
_STYLED = re.compile(r"(?<![^\W_])([*_~])(?=\S)([^\n]*?\S)\1(?![^\W_])")


def _unstyled(text: str) -> str:
    while True:  # nested styles (*_x_*) take a pass each
        stripped = _STYLED.sub(r"\2", text)
        if stripped == text:
            return text
        text = stripped


def plain(mrkdwn: str) -> str:
    """A fallback `text` from mrkdwn: what notifications and screen readers show, where marks
    would be read out as they are. Bold, italics, strike and code marks go; the text stays
    escaped, since Slack parses `text` for mentions too."""
    parts = _CODE_SPAN.split(mrkdwn)  # odd parts are code spans' content: shown as written
    text = "".join(part if i % 2 else _unstyled(part) for i, part in enumerate(parts))
    return clip(escape_stray_controls(text), FALLBACK_LIMIT)


def chunk_sections(entries: Sequence[str], *, max_sections: int, separator: str = "\n") -> tuple[list[Block], int]:
    """Pack entries into as few sections as fit the per-section text limit, using at most
    `max_sections`; return the sections and how many entries they hold."""
    texts: list[str] = []
    used = 0
    current = ""
    for entry in entries:
        entry = clip(entry, SECTION_TEXT_LIMIT)
        candidate = f"{current}{separator}{entry}" if current else entry
        if len(candidate) > SECTION_TEXT_LIMIT:
            if len(texts) + 1 >= max_sections:
                break
            texts.append(current)
            candidate = entry
        current = candidate
        used += 1
    if current and len(texts) < max_sections:
        texts.append(current)
    return [section(t) for t in texts], used
