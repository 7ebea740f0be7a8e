"""Warnings and threshold DMs as Block Kit: pure functions from events to Slack payloads.

Every message says whether it will repeat, so nobody has to guess.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.domain.alerts import EventKind, PackEvent
from bot.domain.forecast import REARM_MARGIN, FamilyForecast
from bot.domain.packs import ResourcePack, family_totals
from bot.domain.thresholds import Level, Threshold, ThresholdKind
from bot.views.balance import COMMAND
from bot.views.blocks import chunk_sections, context, header, plain, section
from bot.views.forecast import day_token
from bot.views.forecast import rate_text as forecast_rate_text
from bot.views.format import LAG_NOTE, bar, clip, mrkdwn_escape, percent, quantity, relative, slack_date

Message = dict[str, Any]


def _message(text: str, detail: str, footer: str, repeat: str = "") -> Message:
    """A warning; `line` is its one-line form, used when several are sent together."""
    line = f"{text} _{repeat}_" if repeat else text
    return {
        "text": plain(f"{text} {detail}"),
        "blocks": [section(f"{text}\n{detail}".strip()), context(footer)],
        "line": clip(line, 1000),
    }


def _expiry(pack_event: PackEvent, now: datetime) -> str:
    when = pack_event.pack.invalid_time
    return f"{slack_date(when)} ({relative(when, now)})" if when else "no expiry date"


def family_advice(pack: ResourcePack, packs: Sequence[ResourcePack], now: datetime) -> str:
    """What the rest of the pack's family holds, and so whether anyone needs to buy."""
    others = [p for p in packs if p.family == pack.family and p.pack_id != pack.pack_id]
    [total] = family_totals(others) or [None]
    family = f"*{mrkdwn_escape(pack.family)}*"
    if total is not None and total.online_packs:
        return (
            f"{family} still has {quantity(total.remaining)} left in {total.online_packs} other active "
            f"pack{'s' if total.online_packs != 1 else ''}; nothing to do yet."
        )
    if total is not None and total.pending_packs:
        starts = min((p.effective_time for p in others if p.effective_time and p.is_active), default=None)
        when = f", starting {slack_date(starts)}" if starts and starts > now else ""
        return (
            f"{family} has nothing else active now; {quantity(total.pending_remaining)} more is bought and not yet "
            f"active{when}."
        )
    return f"{family} has nothing left: buy a new pack in the Kling console to keep generating."


def in_account(account: str, names: Mapping[str, str] | None) -> str:
    """ " (account *studio*)" when several accounts are watched; nothing with one."""
    if not names:
        return ""
    return f" (account *{mrkdwn_escape(names.get(account, account))}*)"


def pack_event_message(
    event: PackEvent,
    now: datetime,
    packs: Sequence[ResourcePack] = (),
    *,
    account_names: Mapping[str, str] | None = None,
    unused_at_expiry: float | None = None,
    rate_text: str = "",
) -> Message:
    """A pack warning; `packs` (everything its account reported) says what the rest of its
    family holds; `account_names` (several accounts) names the account."""
    pack = event.pack
    name = f"*{mrkdwn_escape(pack.name)}*{in_account(pack.account, account_names)}"
    balance = f"{quantity(pack.remaining)} / {quantity(pack.total)} left"
    once = "You will not be warned again about this pack unless it comes back and ends again."
    once_short = "Said once."
    if event.kind == EventKind.RUN_OUT:
        return _message(
            f":red_circle: {name} is used up.",
            f"All {quantity(pack.total)} are spent. {family_advice(pack, packs, now)}",
            f"{once} {LAG_NOTE}",
            once_short,
        )
    if event.kind == EventKind.EXPIRED:
        unused = (
            f"{quantity(pack.remaining)} of {quantity(pack.total)} went unused."
            if pack.remaining > 0
            else "Nothing was left unused."
        )
        return _message(
            f":hourglass: {name} has expired. {unused}",
            family_advice(pack, packs, now),
            f"{once} {LAG_NOTE}",
            once_short,
        )
    if event.kind == EventKind.EXPIRING:
        repeat = (
            "You will get one more reminder a day before it expires."
            if event.days and event.days > 1
            else "This is the last reminder about this pack."
        )
        if unused_at_expiry is not None:
            # What will be lost then at this pace, not merely what is left now.
            lost = min(pack.remaining, unused_at_expiry)
            pace = f" (the family's {rate_text})" if rate_text and rate_text != "no use yet" else ""
            headline = (
                f":warning: {name} expires {_expiry(event, now)}: at this pace{pace} about "
                f"{quantity(round(lost))} of its {quantity(pack.remaining)} left will be lost."
            )
        else:
            headline = f":warning: {name} expires {_expiry(event, now)} with {quantity(pack.remaining)} unused."
        return _message(
            headline,
            f"`{bar(pack.fraction_left)}` {balance} ({percent(pack.fraction_left)}). Use it before then, "
            "or it is lost.",
            f"{repeat} {LAG_NOTE}",
            "One more reminder at 1 day." if event.days and event.days > 1 else "Last reminder.",
        )
    # Balance and expiry go in the first line, which is all a grouped warning shows.
    if event.kind == EventKind.CAME_ONLINE:
        return _message(
            f":large_green_circle: {name} is now active: {balance}; expires {_expiry(event, now)}.",
            "",
            "A one-off notice for this pack.",
            once_short,
        )
    return _message(
        f":new: New pack {name}: {balance}; expires {_expiry(event, now)}.",
        "",
        "A one-off notice for this pack.",
        once_short,
    )


# A batch message: header, sections of lines, footer, inside Slack's 50 blocks.
BATCH_MAX_SECTIONS = 45


def batch_messages(lines: list[str], *, title: str = "pack warnings") -> list[tuple[int, Message]]:
    """Several warnings as few messages as fit Slack's limits: [(how many lines, message)]."""
    out: list[tuple[int, Message]] = []
    start = 0
    while start < len(lines):
        sections, used = chunk_sections(lines[start:], max_sections=BATCH_MAX_SECTIONS)
        chunk = lines[start : start + used]
        blocks = [
            header(f"Kling: {len(chunk)} {title}"),
            *sections,
            context("Sent together so the channel is not flooded; each is said once, as noted. " + LAG_NOTE),
        ]
        out.append((used, {"text": plain("\n".join([f"Kling: {len(chunk)} {title}", *chunk])), "blocks": blocks}))
        start += used
    return out


def describe_threshold(threshold: Threshold) -> str:
    if threshold.kind == ThresholdKind.PERCENT:
        return f"{quantity(threshold.value)}%"
    return f"{quantity(threshold.value)} units"


def describe_rearm(threshold: Threshold) -> str:
    if threshold.kind == ThresholdKind.PERCENT:
        return f"{quantity(threshold.rearm_at)}%"
    return f"{quantity(round(threshold.rearm_at, 2))} units"


def threshold_dm(
    threshold: Threshold,
    level: Level,
    *,
    family_filter: str,
    account_filter: str = "",
    account_names: Mapping[str, str] | None = None,
    to_channel: bool = False,
    subscription_id: int | None = None,
) -> Message:
    scope = f"*{mrkdwn_escape(level.family)}*{in_account(level.account, account_names)}"
    now_text = f"{quantity(level.remaining)} / {quantity(level.total)} left ({level.percent:.0f}%)"
    if level.total <= 0:
        now_text = "no active pack left"
    unsubscribe = (
        f"`{COMMAND} unsubscribe {describe_threshold(threshold).replace(' units', '')}"
        + (f" for {mrkdwn_escape(family_filter)}" if family_filter else "")
        + (f" on {mrkdwn_escape((account_names or {}).get(account_filter, account_filter))}" if account_filter else "")
        + (" here" if to_channel else "")
        + "`"
    )
    message = _message(
        f":chart_with_downwards_trend: {scope} fell below {'this channel' + chr(39) + 's' if to_channel else 'your'} "
        f"threshold of {describe_threshold(threshold)}: "
        f"{now_text}.",
        "That is across its active packs.",
        f"You will not get this again until it recovers above {describe_rearm(threshold)} (say, after a new pack "
        f"is bought). Stop these with {unsubscribe}. {LAG_NOTE}",
        f"Again only after it recovers above {describe_rearm(threshold)}.",
    )
    if subscription_id is None:
        return message
    stop = {
        "type": "button",
        "action_id": STOP_THRESHOLD_ACTION,
        "text": {"type": "plain_text", "text": "Stop this threshold", "emoji": True},
        "value": str(subscription_id),
        "confirm": {
            "title": {"type": "plain_text", "text": "Stop this threshold?"},
            "text": {"type": "plain_text", "text": "No more messages for it."},
            "confirm": {"type": "plain_text", "text": "Stop it"},
            "deny": {"type": "plain_text", "text": "Keep it"},
        },
    }
    return {**message, "blocks": [*message["blocks"], {"type": "actions", "block_id": "stop", "elements": [stop]}]}


def run_out_ahead_message(
    forecast: FamilyForecast, now: datetime, *, warning_days: int, account_names: Mapping[str, str] | None = None
) -> Message:
    """ "At this pace Video Generation runs out on Dec 3, in 6 days, 11 days before its packs expire." """
    assert forecast.runs_out_at is not None
    family = f"*{mrkdwn_escape(forecast.family)}*{in_account(forecast.account, account_names)}"
    days = max(1, round(forecast.days_to_run_out(now) or 0))
    expiries = [p.pack.invalid_time for p in forecast.packs if p.pack.invalid_time]
    before = ""
    if expiries and max(expiries) > forecast.runs_out_at:
        spare = round((max(expiries) - forecast.runs_out_at).total_seconds() / 86400)
        if spare >= 1:
            before = f", {spare} day{'s' if spare != 1 else ''} before its packs expire"
    return _message(
        f":hourglass_flowing_sand: At this pace {family} runs out on {day_token(forecast.runs_out_at)}, "
        f"in {days} day{'s' if days != 1 else ''}{before}.",
        f"{quantity(round(forecast.remaining))} left, using {forecast_rate_text(forecast)}. Buy a pack in the Kling "
        "console before then, or slow down.",
        f"Said once. It comes again only if the projection moves past {warning_days + REARM_MARGIN.days} days "
        f"(a purchase, a slower pace) and then back within {warning_days}. {LAG_NOTE}",
        "Said once.",
    )


MUTE_ACTION = "mute"
STOP_THRESHOLD_ACTION = "threshold_stop"
UNMUTE_ACTION = "unmute"


def with_mute(message: Message, scope: str, label: str, *, what: str = "pack") -> Message:
    """A warning with a "Mute this pack for 7 days" button; `mute_scope` lets the sender skip
    it while muted (batched warnings keep the scope too, without the button)."""
    button = {
        "type": "button",
        "action_id": MUTE_ACTION,
        "text": {"type": "plain_text", "text": f"Mute this {what} for 7 days", "emoji": True},
        "value": json.dumps({"s": scope, "l": label[:300]}, ensure_ascii=False),
    }
    blocks = [*message["blocks"], {"type": "actions", "block_id": "mute", "elements": [button]}]
    return {**message, "blocks": blocks, "mute_scope": scope}


def muted_message(blocks: Sequence[dict[str, Any]], *, scope: str, label: str, by: str, until: datetime) -> Message:
    """The warning as it was, saying who muted it and until when, with an Unmute button."""
    kept = [b for b in blocks if b.get("type") != "actions"]
    note = (
        f":mute: Muted by user {mrkdwn_escape(by)} until {slack_date(until)}: no warnings about "
        f"*{mrkdwn_escape(label)}* until then."
    )
    unmute = {
        "type": "button",
        "action_id": UNMUTE_ACTION,
        "text": {"type": "plain_text", "text": "Unmute", "emoji": True},
        "value": json.dumps({"s": scope, "l": label[:300]}, ensure_ascii=False),
    }
    return {
        "text": plain(note),
        "blocks": [*kept[:47], context(note), {"type": "actions", "block_id": "mute", "elements": [unmute]}],
    }


def unmuted_message(blocks: Sequence[dict[str, Any]], *, label: str, by: str) -> Message:
    kept = [b for b in blocks if b.get("type") != "actions" and b.get("block_id") != "mute"]
    note = f":bell: Unmuted by user {mrkdwn_escape(by)}: warnings about *{mrkdwn_escape(label)}* resume."
    return {"text": plain(note), "blocks": [*kept[:48], context(note)]}
