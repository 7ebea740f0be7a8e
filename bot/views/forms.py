"""The "Add a threshold" modal: the same thresholds as `/kling-balance subscribe`, in a form.

Pure: builds the view and reads a submission into the command's own types, or the field
errors Slack shows inside the modal (`response_action: errors`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from bot.domain.alerts import key_part
from bot.domain.commands import SubscribeArgs
from bot.domain.thresholds import ThresholdSyntaxError, parse_threshold

THRESHOLD_FORM = "threshold_form"
ADD_THRESHOLD_ACTION = "threshold_add"
EVERY = "*"
# Slack's limits: 100 options a select, option text 75 characters, option value 150.
MAX_OPTIONS = 100
OPTION_TEXT = 75
OPTION_VALUE = 140
PRIVATE_METADATA_LIMIT = 3000


def _option(text: str, value: str) -> dict[str, Any]:
    shown = text if len(text) <= OPTION_TEXT else text[: OPTION_TEXT - 1] + "…"
    return {"text": {"type": "plain_text", "text": shown}, "value": value}


def family_value(family: str) -> str:
    return key_part(family, OPTION_VALUE)


def threshold_form(families: Sequence[str], account_names: Mapping[str, str] | None) -> dict[str, Any]:
    """The modal. Families come from what Kling reports (plus "every family")."""
    offered = _fitting(list(families)[: MAX_OPTIONS - 1])
    family_options = [_option("Every family", EVERY)] + [_option(f, family_value(f)) for f in offered]
    blocks: list[dict[str, Any]] = [
        {
            "type": "input",
            "block_id": "value",
            "label": {"type": "plain_text", "text": "DM me when a family falls below"},
            "element": {
                "type": "plain_text_input",
                "action_id": "value",
                "placeholder": {"type": "plain_text", "text": "20"},
            },
        },
        {
            "type": "input",
            "block_id": "unit",
            "label": {"type": "plain_text", "text": "In"},
            "element": {
                "type": "static_select",
                "action_id": "unit",
                "initial_option": _option("percent of its total", "percent"),
                "options": [_option("percent of its total", "percent"), _option("units left", "units")],
            },
        },
        {
            "type": "input",
            "block_id": "family",
            "label": {"type": "plain_text", "text": "Family"},
            "element": {
                "type": "static_select",
                "action_id": "family",
                "initial_option": family_options[0],
                "options": family_options,
            },
        },
    ]
    if account_names:
        options = [_option("Every account", EVERY)] + [_option(n, k) for k, n in list(account_names.items())[:99]]
        blocks.append(
            {
                "type": "input",
                "block_id": "account",
                "label": {"type": "plain_text", "text": "Account"},
                "element": {
                    "type": "static_select",
                    "action_id": "account",
                    "initial_option": options[0],
                    "options": options,
                },
            }
        )
    blocks.append(
        {
            "type": "input",
            "block_id": "channel",
            "optional": True,
            "label": {"type": "plain_text", "text": "Post to a channel instead of a DM to me"},
            "hint": {"type": "plain_text", "text": "Leave empty for a DM. A channel needs the bot in it."},
            "element": {"type": "conversations_select", "action_id": "channel"},
        }
    )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": "Said once per fall below it, again only after it recovers a margin above."}
            ],
        }
    )
    return {
        "type": "modal",
        "callback_id": THRESHOLD_FORM,
        "title": {"type": "plain_text", "text": "Add a threshold"},
        "submit": {"type": "plain_text", "text": "Add"},
        "close": {"type": "plain_text", "text": "Cancel"},
        # The families offered, so the submission is read without asking Kling again.
        "private_metadata": json.dumps(offered),
        "blocks": blocks,
    }


def _fitting(families: list[str]) -> list[str]:
    """As many families as fit the view's 3,000 characters of private_metadata."""
    while families and len(json.dumps(families)) > PRIVATE_METADATA_LIMIT:
        families = families[:-1]
    return families


def offered_families(private_metadata: str | None) -> list[str]:
    try:
        names = json.loads(private_metadata or "[]")
    except ValueError:
        return []
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def read_threshold_form(
    values: Mapping[str, Mapping[str, Any]], families: Sequence[str]
) -> SubscribeArgs | dict[str, str]:
    """The submission as subscribe arguments, or {block_id: error} for Slack to show."""

    def chosen(block: str) -> str:
        option = (values.get(block, {}).get(block) or {}).get("selected_option") or {}
        return str(option.get("value") or "")

    typed = str((values.get("value", {}).get("value") or {}).get("value") or "").strip()
    unit = chosen("unit") or "percent"
    if not typed:
        return {"value": "Type a number, like 20."}
    try:
        threshold = parse_threshold(f"{typed}%" if unit == "percent" and not typed.endswith("%") else typed)
    except ThresholdSyntaxError as exc:
        return {"value": str(exc)[:150]}
    family_choice = chosen("family")
    family = ""
    if family_choice and family_choice != EVERY:
        matches = [f for f in families if family_value(f) == family_choice]
        if not matches:
            return {"family": "That family is no longer reported by Kling: pick another."}
        family = matches[0]
    account = chosen("account")
    channel = chosen_channel(values)
    if channel and not channel.startswith(("C", "G")):
        return {"channel": "Pick a channel (or leave it empty for a DM to you)."}
    return SubscribeArgs(threshold, family, account if account and account != EVERY else "", here=bool(channel))


def chosen_channel(values: Mapping[str, Mapping[str, Any]]) -> str:
    return str((values.get("channel", {}).get("channel") or {}).get("selected_conversation") or "")
