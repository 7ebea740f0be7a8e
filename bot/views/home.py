"""The App Home tab: the balances at a glance, the forecast, the packs at risk and the viewer's
thresholds, as a `home` view inside Slack's limits (100 blocks), whatever the numbers.

Pure: the listener gathers the data and publishes what this returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.domain.forecast import FamilyForecast
from bot.domain.mutes import Mute
from bot.domain.packs import family_totals, select_packs
from bot.kling.accounts import AllBalances
from bot.store.db import SubscriptionRow
from bot.subscriptions import threshold_of
from bot.views.alerts import describe_threshold
from bot.views.balance import (
    COMMAND,
    by_risk,
    family_line,
    forecast_of,
    pack_entry,
    packs_by_risk,
    stale_note,
)
from bot.views.blocks import chunk_sections, context, header, section
from bot.views.forecast import worth_saying
from bot.views.format import LAG_NOTE, age, mrkdwn_escape, slack_date
from bot.views.forms import ADD_THRESHOLD_ACTION

View = dict[str, Any]
MAX_VIEW_BLOCKS = 100
# Room kept for the thresholds, the footer and the "more" lines below the balances.
RESERVED_BLOCKS = 20
MAX_AT_RISK = 10
MAX_THRESHOLDS = 30
# Thresholds listed with a Remove button each (one block apiece); the rest as text.
MAX_THRESHOLD_BUTTONS = 10
THRESHOLD_REMOVE_ACTION = "threshold_remove"


def _view(blocks: list[dict[str, Any]]) -> View:
    return {"type": "home", "blocks": blocks[:MAX_VIEW_BLOCKS]}


def refused_home() -> View:
    """For someone outside KLING_ALLOWED_USERS: polite, and no numbers."""
    return _view(
        [
            header("Kling balances"),
            section(
                "Kling balances are restricted to certain people here, so there is nothing to show you. "
                "Ask whoever runs the bot if you need them."
            ),
        ]
    )


HOME_REFRESH_ACTION = "home_refresh"


def home_view(
    balances: AllBalances,
    now: datetime,
    *,
    forecasts: Sequence[FamilyForecast] | None,
    thresholds: Sequence[SubscriptionRow],
    account_names: Mapping[str, str] | None = None,
    warning_days: int = 7,
    notice: str = "",
    mutes: Sequence[Mute] = (),
) -> View:
    """`notice`: a sentence about the last button pressed (say, a threshold already removed)."""
    blocks: list[dict[str, Any]] = [
        header("Kling balances"),
        {
            "type": "actions",
            "block_id": "home_buttons",
            "elements": [
                {
                    "type": "button",
                    "action_id": HOME_REFRESH_ACTION,
                    "text": {"type": "plain_text", "text": "Refresh", "emoji": True},
                    "value": "refresh",
                },
                {
                    "type": "button",
                    "action_id": ADD_THRESHOLD_ACTION,
                    "text": {"type": "plain_text", "text": "Add a threshold", "emoji": True},
                    "value": "add",
                    "style": "primary",
                },
            ],
        },
    ]
    if notice:
        blocks.append(context(mrkdwn_escape(notice)))
    budget = MAX_VIEW_BLOCKS - RESERVED_BLOCKS
    for answer in balances.accounts:
        title = f":office: *Account {mrkdwn_escape(answer.account.name)}*\n" if balances.multi else ""
        if answer.snapshot is None:
            public = answer.error.public_message if answer.error else "Kling did not answer."
            blocks.append(section(f"{title}:warning: Couldn't get balances from Kling. {mrkdwn_escape(public)}"))
            continue
        snapshot = answer.snapshot
        note = stale_note(snapshot, now)
        totals = by_risk(family_totals(snapshot.packs), forecasts)
        lines = [title.strip()] if title else []
        if note:
            lines.append(note)
        lines += [family_line(t, now, forecast_of(t, forecasts), warning_days=warning_days) for t in totals]
        if not totals:
            lines.append("No active packs." if snapshot.packs else "Kling reports no resource packs.")
        room = max(1, (budget - len(blocks)) // max(1, len(balances.accounts)))
        family_blocks, shown = chunk_sections(lines, max_sections=room)
        blocks.extend(family_blocks)
        if shown < len(lines):
            blocks.append(context(f"…and {len(lines) - shown} more famil(ies): `{COMMAND}` lists every one."))
        packs, unused = packs_by_risk(select_packs(snapshot.packs), forecasts)
        at_risk = [p for p in packs if worth_saying(unused.get((p.account, p.pack_id), 0.0), p.total)]
        if at_risk:
            entries = [pack_entry(p, now, unused.get((p.account, p.pack_id))) for p in at_risk[:MAX_AT_RISK]]
            risk_blocks, _ = chunk_sections(
                [":rotating_light: *Packs at risk*", *entries], max_sections=2, separator="\n\n"
            )
            blocks.extend(risk_blocks)
            if len(at_risk) > MAX_AT_RISK:
                blocks.append(context(f"…and {len(at_risk) - MAX_AT_RISK} more at risk: `{COMMAND}` shows them."))
        blocks.append(
            context(f"Fetched from Kling {slack_date(snapshot.fetched_at)} ({age(snapshot.age(now))} ago). {LAG_NOTE}")
        )
        blocks.append({"type": "divider"})
    blocks.extend(_thresholds(thresholds, account_names))
    if mutes:
        lines = ["*Muted warnings*"] + [
            f"• *{mrkdwn_escape(m.label)}* until {slack_date(m.until)} (by user {mrkdwn_escape(m.muted_by)})"
            for m in mutes[:20]
        ]
        if len(mutes) > 20:
            lines.append(f"…and {len(mutes) - 20} more.")
        mute_blocks, _ = chunk_sections(lines, max_sections=2)
        blocks.extend(mute_blocks)
    return _view(blocks)


def _thresholds(rows: Sequence[SubscriptionRow], names: Mapping[str, str] | None) -> list[dict[str, Any]]:
    if not rows:
        return [
            section(
                "*Your thresholds*\nNone yet. `" + COMMAND + " subscribe 20%` DMs you when a family falls below 20%."
            )
        ]
    blocks: list[dict[str, Any]] = [section("*Your thresholds*")]
    for row in rows[:MAX_THRESHOLD_BUTTONS]:
        line = section(f"• below {describe_threshold(threshold_of(row))} for {_scope(row, names)}")
        line["accessory"] = {
            "type": "button",
            "action_id": THRESHOLD_REMOVE_ACTION,
            "text": {"type": "plain_text", "text": "Remove", "emoji": True},
            "value": str(row.id),
            "confirm": {
                "title": {"type": "plain_text", "text": "Remove this threshold?"},
                "text": {"type": "plain_text", "text": "You will get no more DMs for it."},
                "confirm": {"type": "plain_text", "text": "Remove"},
                "deny": {"type": "plain_text", "text": "Keep it"},
                "style": "danger",
            },
        }
        blocks.append(line)
    more = [
        f"• below {describe_threshold(threshold_of(r))} for {_scope(r, names)}" for r in rows[MAX_THRESHOLD_BUTTONS:]
    ]
    if more:
        shown = more[:MAX_THRESHOLDS]
        if len(more) > MAX_THRESHOLDS:
            shown.append(f"…and {len(more) - MAX_THRESHOLDS} more: `{COMMAND} subscriptions` lists them.")
        text_blocks, _ = chunk_sections(shown, max_sections=2)
        blocks.extend(text_blocks)
    blocks.append(
        context(
            mrkdwn_escape(
                f"Add one with `{COMMAND} subscribe 20%`; `{COMMAND} unsubscribe …` stops one too.", keep_markup=True
            )
        )
    )
    return blocks


def _scope(row: SubscriptionRow, names: Mapping[str, str] | None) -> str:
    scope = f"*{mrkdwn_escape(row.family)}*" if row.family else "any family"
    if names:
        where = names.get(row.account, row.account) if row.account else "any account"
        scope += f" on {mrkdwn_escape(where)}"
    return scope
