"""Block Kit building blocks shared by every view, kept inside Slack's limits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.views.format import clip

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


def plain(mrkdwn: str) -> str:
    """A fallback `text` from mrkdwn: what notifications and screen readers show."""
    # Underscores stay: they are part of names far more often than they are italics.
    return clip(mrkdwn.replace("*", "").replace("`", ""), FALLBACK_LIMIT)


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
