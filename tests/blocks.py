"""Check a Slack message against Block Kit's limits the way Slack would."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import Block

MAX_MESSAGE_BLOCKS = 50


def assert_valid_message(message: dict[str, Any], *, max_blocks: int = MAX_MESSAGE_BLOCKS) -> None:
    """Fallback text present and short enough; every block parses and keeps its limits."""
    text = message.get("text")
    assert isinstance(text, str) and text.strip(), "every message needs a plain-text fallback"
    assert len(text) < 4000, f"fallback text is {len(text)} chars"
    blocks = message.get("blocks") or []
    assert 0 < len(blocks) <= max_blocks, f"{len(blocks)} blocks"
    for raw in blocks:
        block = Block.parse(raw)
        assert block is not None, f"unknown block type: {raw.get('type')}"
        block.to_dict()  # raises SlackObjectFormationError on a broken limit


def all_text(message: dict[str, Any]) -> str:
    """Everything a reader can see in the blocks, joined."""
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                parts.append(node["text"])
            for value in node.values():
                if isinstance(value, dict | list):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(message.get("blocks") or [])
    return "\n".join(parts)
