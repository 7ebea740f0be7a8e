"""Replies to `subscribe`, `unsubscribe` and `subscriptions`."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from bot.domain.commands import UsageProblem
from bot.store.db import SubscriptionRow
from bot.subscriptions import Subscribed, UnknownFamily, Unsubscribed, threshold_of
from bot.views.alerts import describe_rearm, describe_threshold, in_account
from bot.views.balance import COMMAND
from bot.views.blocks import plain, section
from bot.views.format import LAG_NOTE, mrkdwn_escape, quantity

Message = dict[str, Any]


def _reply(text: str) -> Message:
    return {"text": plain(text), "blocks": [section(text)]}


def _scope(family: str, account: str = "", names: Mapping[str, str] | None = None) -> str:
    text = f"*{mrkdwn_escape(family)}*" if family else "any family"
    if names:
        text += f" on account *{mrkdwn_escape(names.get(account, account))}*" if account else " on any account"
    return text


def _row_text(row: SubscriptionRow, names: Mapping[str, str] | None = None) -> str:
    where = f" (posts in {channel_link(row.channel)})" if row.channel else ""
    return f"below {describe_threshold(threshold_of(row))} for {_scope(row.family, row.account, names)}{where}"


def channel_link(channel: str) -> str:
    """<#C123> (a link to the channel, which pings nobody) for a real channel ID; else escaped text."""
    if re.fullmatch(r"[CG][A-Z0-9_]{2,30}", channel):
        return f"<#{channel}>"
    return mrkdwn_escape(channel)


# A problem is the bot's own mrkdwn (code spans included) quoting what was typed in “…”.
_QUOTED = re.compile(r"(“[^”]*”)")


def usage_message(problem: UsageProblem) -> Message:
    said = "".join(mrkdwn_escape(part, keep_markup=not part.startswith("“")) for part in _QUOTED.split(problem.problem))
    # The usage texts name placeholders such as `for <family>`: escaped here, as they are sent.
    return _reply(f"{said}\nUsage: {mrkdwn_escape(problem.usage, keep_markup=True)}")


def subscribed_message(result: Subscribed | UnknownFamily, account_names: Mapping[str, str] | None = None) -> Message:
    if isinstance(result, UnknownFamily):
        typed = mrkdwn_escape(result.typed)
        listed = mrkdwn_escape(", ".join(result.families[:20])) or "none yet"
        if result.ambiguous:
            return _reply(
                f"“{typed}” matches {len(result.families)} families: {listed}. Nothing was saved; "
                "type more of the name you mean."
            )
        return _reply(
            f"No pack family matches “{typed}”. Families on this account: {listed}. "
            "Nothing was saved; try again with one of those."
        )
    what = f"below {describe_threshold(result.threshold)} for {_scope(result.family, result.account, account_names)}"
    if not result.created:
        return _reply(f"You already have this one: DM when {what}. `{COMMAND} subscriptions` lists yours.")
    who = f"I'll post in {channel_link(result.channel)}" if result.channel else "I'll DM you"
    lines = [
        f":white_check_mark: {who} when {what}: once each time it falls below, and again only after "
        f"it recovers above {describe_rearm(result.threshold)}.",
    ]
    if not result.checked:
        scope = "whether that family exists nor " if result.family else ""
        lines.append(
            f":warning: Kling could not be asked just now, so I could not check {scope}the level it is at. "
            "The subscription is saved and is checked at every poll; "
            f"`{COMMAND} subscriptions` lists it, `{COMMAND} unsubscribe` stops it."
        )
    below = [lvl for lvl in result.levels if lvl.measure(result.threshold.kind) < result.threshold.value]
    for level in result.levels[:10]:
        lines.append(
            f"• {mrkdwn_escape(level.family)}{in_account(level.account, account_names)}: "
            f"{quantity(level.remaining)} / {quantity(level.total)} left ({level.percent:.0f}%) now"
        )
    for family in result.inactive[:10]:
        lines.append(f"• {mrkdwn_escape(family)}: nothing active yet, so nothing to compare until a pack is online")
    if below:
        lines.append("Already below it now, so expect a DM at the next check.")
    if result.checked:
        lines.append(f"Checked against Kling every poll. {LAG_NOTE}")
    return _reply("\n".join(lines))


def subscriptions_message(rows: Sequence[SubscriptionRow], account_names: Mapping[str, str] | None = None) -> Message:
    if not rows:
        return _reply(f"You have no threshold subscriptions. Add one with `{COMMAND} subscribe 20%`.")
    lines = ["*Your threshold DMs*"] + [f"• {_row_text(row, account_names)}" for row in rows[:40]]
    if len(rows) > 40:
        lines.append(f"…and {len(rows) - 40} more.")
    lines.append(
        mrkdwn_escape(
            f"Stop one with `{COMMAND} unsubscribe <threshold>`, or all with `{COMMAND} unsubscribe all`.",
            keep_markup=True,
        )
    )
    return _reply("\n".join(lines))


def unsubscribed_message(result: Unsubscribed, account_names: Mapping[str, str] | None = None) -> Message:
    if result.ambiguous:
        return _reply(
            f"You have {len(result.ambiguous)} subscriptions; say which to stop, or `{COMMAND} unsubscribe all`:\n"
            + "\n".join(f"• {_row_text(row, account_names)}" for row in result.ambiguous[:40])
        )
    if not result.removed:
        return _reply(f"Nothing matched, so nothing changed. `{COMMAND} subscriptions` lists yours.")
    return _reply("Stopped: " + "; ".join(_row_text(row, account_names) for row in result.removed[:40]) + ".")


def admins_only_message() -> Message:
    return _reply(
        "Only the bot's admins can add a threshold that posts to a channel. A threshold without `here` DMs you instead."
    )


def mute_refusal_message() -> Message:
    return _reply("Only the bot's admins can mute warnings in a shared channel; ask one of them.")
