"""The balance message as Block Kit: a pure function from a snapshot to a Slack payload.

Slack's limits shape it: at most 50 blocks, 3000 characters per section text, a plain-text
fallback under 4000 characters. However many packs there are, the message stays inside
those limits: family totals always cover every pack, and past `MAX_PACKS_LISTED` the
pack list is cut with a line saying how to see the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from bot.domain.forecast import FamilyForecast
from bot.domain.packs import FamilyTotal, PackStatus, ResourcePack, family_totals, select_packs, status_label
from bot.kling.accounts import AllBalances
from bot.kling.cache import Snapshot
from bot.kling.errors import KlingError
from bot.views.blocks import (
    MAX_BLOCKS,
    SECTION_TEXT_LIMIT,
    chunk_sections,
    context,
    header,
    plain,
    section,
)
from bot.views.forecast import at_risk, forecast_text, worth_saying
from bot.views.format import (
    LAG_NOTE,
    age,
    bar,
    clip,
    mrkdwn_escape,
    percent,
    quantity,
    relative,
    slack_date,
)

# Beyond this many packs a chat message stops being readable; the rest are summarised.
MAX_PACKS_LISTED = 40
COMMAND = "/kling-balance"

Message = dict[str, Any]


def family_line(
    total: FamilyTotal, now: datetime, forecast: FamilyForecast | None = None, *, warning_days: int = 7
) -> str:
    """A family's totals; with its forecast, how long it lasts at this pace or what it will
    waste, and a mark when it is at risk so the eye finds it."""
    if total.online_packs:
        risky = forecast is not None and at_risk(forecast, now, warning_days=warning_days)
        text = (
            (":rotating_light: " if risky else "") + f"*{mrkdwn_escape(total.family)}*  `{bar(total.fraction_left)}` "
            f"{quantity(total.remaining)} / {quantity(total.total)} left ({percent(total.fraction_left)})"
        )
        if total.next_expiry:
            text += f" · next expiry {slack_date(total.next_expiry)} ({relative(total.next_expiry, now)})"
    else:
        text = f"*{mrkdwn_escape(total.family)}*  nothing active yet"
    if total.pending_packs:
        text += f" · +{quantity(total.pending_remaining)} in {total.pending_packs} pack(s) not yet active"
    if forecast is not None and total.online_packs:
        text += f"\n      _At this pace:_ {forecast_text(forecast, now)}"
    return text


def by_risk(totals: Sequence[FamilyTotal], forecasts: Sequence[FamilyForecast] | None) -> list[FamilyTotal]:
    """Families in the forecast's order (riskiest first); those without one keep theirs, after."""
    if not forecasts:
        return list(totals)
    rank = {(f.account, f.family): i for i, f in enumerate(forecasts)}
    return sorted(totals, key=lambda t: rank.get((t.account, t.family), len(rank)))


def forecast_of(total: FamilyTotal, forecasts: Sequence[FamilyForecast] | None) -> FamilyForecast | None:
    return next((f for f in forecasts or () if (f.account, f.family) == (total.account, total.family)), None)


def pack_entry(pack: ResourcePack, now: datetime, unused_at_expiry: float | None = None) -> str:
    status = status_label(pack.status)
    status_text = status if pack.status == PackStatus.ONLINE else f"*{status}*"
    lines = [
        f"*{mrkdwn_escape(pack.name)}*",
        f"`{bar(pack.fraction_left)}` {quantity(pack.remaining)} / {quantity(pack.total)} "
        f"({percent(pack.fraction_left)}) · {mrkdwn_escape(status_text, keep_markup=True)}",
    ]
    # In time order: a pack not yet active starts before it expires.
    if pack.status == PackStatus.TO_BE_ONLINE and pack.effective_time:
        lines[1] += f" · starts {slack_date(pack.effective_time)}"
    if pack.invalid_time:
        verb = "expired" if pack.invalid_time <= now else "expires"
        lines[1] += f" · {verb} {slack_date(pack.invalid_time)} ({relative(pack.invalid_time, now)})"
    if unused_at_expiry is not None and worth_saying(unused_at_expiry, pack.total):
        lines[0] = ":rotating_light: " + lines[0]
        lines[1] += f" · ~{quantity(round(unused_at_expiry))} will expire unused at this pace"
    return "\n".join(lines)


def packs_by_risk(
    packs: Sequence[ResourcePack], forecasts: Sequence[FamilyForecast] | None
) -> tuple[list[ResourcePack], dict[tuple[str, str], float]]:
    """Packs that will waste units at this pace first (soonest expiry first), then the rest in
    their usual order; and what each will leave unused."""
    unused = {(pf.pack.account, pf.pack.pack_id): pf.expires_unused for f in forecasts or () for pf in f.packs}

    def wasting(p: ResourcePack) -> bool:
        return worth_saying(unused.get((p.account, p.pack_id), 0.0), p.total)

    return [p for p in packs if wasting(p)] + [p for p in packs if not wasting(p)], unused


def _fallback_line(total: FamilyTotal) -> str:
    return (
        f"{mrkdwn_escape(total.family)}: {quantity(total.remaining)} / {quantity(total.total)} left "
        f"({percent(total.fraction_left)})"
    )


def stale_note(snapshot: Snapshot, now: datetime) -> str | None:
    if not snapshot.stale:
        return None
    # What happened in words for people; hosts, codes and settings stay in the logs.
    reason = f" {mrkdwn_escape(snapshot.error.public_message)}" if snapshot.error else ""
    return (
        f":warning: Kling could not be asked just now, so these balances are from *{age(snapshot.age(now))} ago*."
        + reason
    )


def _footer(snapshot: Snapshot, now: datetime, *, include_inactive: bool, hidden_inactive: int) -> str:
    parts = [LAG_NOTE, f"Fetched from Kling {slack_date(snapshot.fetched_at)} ({age(snapshot.age(now))} ago)."]
    if not include_inactive and hidden_inactive:
        parts.append(f"{hidden_inactive} expired or used-up pack(s) hidden: `{COMMAND} all` shows them.")
    return " ".join(parts)


def balance_message(
    snapshot: Snapshot,
    now: datetime,
    *,
    include_inactive: bool = False,
    name_filter: str = "",
    forecasts: Sequence[FamilyForecast] | None = None,
    warning_days: int = 7,
) -> Message:
    """The `/kling-balance` reply: {"text": fallback, "blocks": [...]}; with `forecasts`,
    families riskiest first, each with how long it lasts at this pace."""
    packs = select_packs(snapshot.packs, include_inactive=include_inactive, name_filter=name_filter)
    matching_all = select_packs(snapshot.packs, include_inactive=True, name_filter=name_filter)
    hidden_inactive = len(matching_all) - len(packs)
    # The header is plain_text: Slack formats nothing there but still decodes &amp; &lt; &gt;.
    shown_filter = mrkdwn_escape(name_filter.strip(), keep_markup=True)
    title = "Kling balance" + (f": “{shown_filter}”" if shown_filter else "")

    blocks: list[dict[str, Any]] = [header(title)]
    note = stale_note(snapshot, now)
    if note:
        blocks.append(section(note))

    if not packs:
        text = _empty_text(snapshot, name_filter=name_filter, hidden_inactive=hidden_inactive)
        blocks.append(section(text))
        blocks.append(context(_footer(snapshot, now, include_inactive=True, hidden_inactive=0)))
        return {"text": plain(text), "blocks": blocks}

    totals = by_risk(family_totals(matching_all), forecasts)
    packs, unused = packs_by_risk(packs, forecasts)
    # Budget: header/stale note so far, then families, pack list, "more" lines and footer.
    reserved = 3
    family_blocks, families_shown = chunk_sections(
        [family_line(t, now, forecast_of(t, forecasts), warning_days=warning_days) for t in totals],
        max_sections=max(1, (MAX_BLOCKS - len(blocks) - reserved) // 3),
    )
    blocks.extend(family_blocks)
    if families_shown < len(totals):
        blocks.append(context(f"…and {len(totals) - families_shown} more famil(ies) not shown."))
    if totals:
        blocks.append({"type": "divider"})

    pack_blocks, packs_shown = chunk_sections(
        [pack_entry(p, now, unused.get((p.account, p.pack_id))) for p in packs[:MAX_PACKS_LISTED]],
        max_sections=MAX_BLOCKS - len(blocks) - reserved,
        separator="\n\n",
    )
    blocks.extend(pack_blocks)
    if packs_shown < len(packs):
        blocks.append(
            context(
                mrkdwn_escape(
                    f"…and {len(packs) - packs_shown} more pack(s) not listed (the totals above include them). "
                    f"Narrow the list with `{COMMAND} <part of a name>`, or run `kling-bot balance` for every pack.",
                    keep_markup=True,
                )
            )
        )
    blocks.append(context(_footer(snapshot, now, include_inactive=include_inactive, hidden_inactive=hidden_inactive)))

    fallback_lines = ["Kling balance" + (" (stale)" if snapshot.stale else "")]
    fallback_lines += [_fallback_line(t) for t in totals if t.online_packs]
    fallback_lines.append(LAG_NOTE)
    return {"text": plain("\n".join(fallback_lines)), "blocks": blocks}


def balances_message(
    balances: AllBalances,
    now: datetime,
    *,
    include_inactive: bool = False,
    name_filter: str = "",
    forecasts: Sequence[FamilyForecast] | None = None,
    warning_days: int = 7,
) -> Message:
    """The reply for every account asked. One account: exactly `balance_message` (or the
    error). Several: a section per account, its totals and packs, and one plain sentence for
    each account that could not be read; totals are never summed across accounts."""
    if not balances.multi:
        [answer] = balances.accounts
        if answer.snapshot is None:
            assert answer.error is not None
            return error_message(answer.error)
        return balance_message(
            answer.snapshot,
            now,
            include_inactive=include_inactive,
            name_filter=name_filter,
            forecasts=forecasts,
            warning_days=warning_days,
        )
    shown_filter = mrkdwn_escape(name_filter.strip(), keep_markup=True)
    title = "Kling balance" + (f": “{shown_filter}”" if shown_filter else "")
    blocks: list[dict[str, Any]] = [header(title)]
    fallback = ["Kling balance" + (" (stale)" if any(a.stale for a in balances.accounts) else "")]
    budget = MAX_PACKS_LISTED
    hidden_total = 0
    for answer in balances.accounts:
        name = mrkdwn_escape(answer.account.name)
        if answer.snapshot is None:
            public = answer.error.public_message if answer.error else "Kling did not answer."
            blocks.append(section(f":warning: *Account {name}*: couldn't get its balances. {mrkdwn_escape(public)}"))
            fallback.append(f"Account {name}: could not be read.")
            continue
        snapshot = answer.snapshot
        packs, unused = packs_by_risk(
            select_packs(snapshot.packs, include_inactive=include_inactive, name_filter=name_filter), forecasts
        )
        matching_all = select_packs(snapshot.packs, include_inactive=True, name_filter=name_filter)
        hidden_total += len(matching_all) - len(packs)
        totals = by_risk(family_totals(matching_all), forecasts)
        lines = [f":office: *Account {name}*"]
        note = stale_note(snapshot, now)
        if note:
            lines.append(note)
        if packs or totals:
            lines += [family_line(t, now, forecast_of(t, forecasts), warning_days=warning_days) for t in totals]
        else:
            lines.append(_empty_text(snapshot, name_filter=name_filter, hidden_inactive=len(matching_all)))
        family_blocks, _ = chunk_sections(lines, max_sections=2)
        blocks.extend(family_blocks)
        listed = packs[:budget]
        budget -= len(listed)
        if listed:
            entries = [pack_entry(p, now, unused.get((p.account, p.pack_id))) for p in listed]
            pack_blocks, _ = chunk_sections(entries, max_sections=3, separator="\n\n")
            blocks.extend(pack_blocks)
        blocks.append({"type": "divider"})
        fallback += [f"{name} / {_fallback_line(t)}" for t in totals if t.online_packs]
    if len(blocks) > MAX_BLOCKS - 2:
        blocks = blocks[: MAX_BLOCKS - 2]
        blocks.append(context(f"…more not shown: `{COMMAND} &lt;account name&gt;` shows one account."))
    fetched = [a.snapshot.fetched_at for a in balances.readable if a.snapshot]
    parts = [LAG_NOTE]
    if fetched:
        oldest = min(fetched)
        parts.append(f"Fetched from Kling {slack_date(oldest)} ({age(max(timedelta(0), now - oldest))} ago).")
    if budget <= 0:
        parts.append(f"Past {MAX_PACKS_LISTED} packs the list is cut: `{COMMAND} &lt;account name&gt;` narrows it.")
    if not include_inactive and hidden_total:
        parts.append(f"{hidden_total} expired or used-up pack(s) hidden: `{COMMAND} all` shows them.")
    blocks.append(context(" ".join(parts)))
    fallback.append(LAG_NOTE)
    return {"text": plain("\n".join(fallback)), "blocks": blocks}


def _empty_text(snapshot: Snapshot, *, name_filter: str, hidden_inactive: int) -> str:
    if not snapshot.packs:
        return (
            "Kling reports no resource packs bought in the period the bot looks back over. Buy a pack in "
            "the Kling console; if yours were bought earlier, ask whoever runs the bot to look further back."
        )
    if name_filter.strip():
        if hidden_inactive:
            return (
                f"No active pack name contains “{mrkdwn_escape(name_filter.strip())}”; "
                f"{hidden_inactive} expired or used-up one(s) do: `{COMMAND} all {mrkdwn_escape(name_filter.strip())}`."
            )
        families = sorted({p.family for p in snapshot.packs}, key=str.casefold)
        return (
            f"No pack name contains “{mrkdwn_escape(name_filter.strip())}”. "
            f"Families on this account: {mrkdwn_escape(', '.join(families))}."
        )
    return (
        f"No active packs: all {len(snapshot.packs)} pack(s) on this account have expired or been used up. "
        f"`{COMMAND} all` lists them; buy a new pack in the Kling console."
    )


def error_message(error: KlingError) -> Message:
    # End users get what happened and what they can do; the details are logged by the caller.
    text = f":warning: Couldn't get balances from Kling. {mrkdwn_escape(error.public_message)}"
    return {"text": plain(text), "blocks": [section(clip(text, SECTION_TEXT_LIMIT))]}


def refusal_message() -> Message:
    text = (
        "Sorry, Kling balances are restricted to certain people or channels here. Ask whoever runs the bot to add you."
    )
    return {"text": plain(text), "blocks": [section(text)]}


def internal_error_message() -> Message:
    text = (
        ":warning: Something went wrong inside the bot while answering. It has been logged; "
        "please try again, and tell whoever runs the bot if it keeps happening."
    )
    return {"text": plain(text), "blocks": [section(text)]}


HELP_LINES = (
    f"`{COMMAND}`: every active pack's balance and expiry, with totals per family",
    f"`{COMMAND} all`: include expired and used-up packs",
    f"`{COMMAND} share`: post the balances in this channel for everyone",
    f"`{COMMAND} refresh`: ask Kling now instead of using the cached answer",
    f"`{COMMAND} <part of a name>`: only packs whose name contains it, e.g. `{COMMAND} video`",
    f"`{COMMAND} subscribe 20%` or `subscribe 500 for Video Generation`: DM me when a family falls below it",
    f"`{COMMAND} subscriptions`: list mine; `{COMMAND} unsubscribe 20%` or `unsubscribe all` to stop",
    f"`{COMMAND} help`: this message",
)


def help_message(account_names: Mapping[str, str] | None = None) -> Message:
    """Usage; with several accounts, how to pick one (named as configured)."""
    lines = list(HELP_LINES)
    if account_names:
        example = next(iter(account_names.values()))
        lines[5:5] = [
            f"`{COMMAND} <account>`: one account only ({', '.join(account_names.values())}), e.g. "
            f"`{COMMAND} {example}`",
            f"`{COMMAND} subscribe 20% for Video Generation on {example}`: one account's family; without "
            "`on` a threshold watches each family of every account",
        ]
    text = "*Kling balance: usage*\n" + "\n".join(f"• {line}" for line in lines)
    text += "\nWords combine: `" + COMMAND + " all share video`. " + LAG_NOTE
    text = mrkdwn_escape(text, keep_markup=True)  # `<part of a name>` must reach Slack as &lt;…&gt;
    return {"text": plain(text), "blocks": [section(text)]}


# Buttons on a balance reply; the value carries what was asked, so a press repeats it.
REFRESH_ACTION = "balance_refresh"
SHOW_ALL_ACTION = "balance_show_all"
SHARE_ACTION = "balance_share"


def with_buttons(message: Message, value: str, *, include_inactive: bool, shared: bool) -> Message:
    """The reply with Refresh, Show all and Share in channel buttons, still within 50 blocks
    (the footer stays last but one; a pack section gives way if needed)."""
    buttons = [{"type": "button", "action_id": REFRESH_ACTION, "text": plain_text("Refresh"), "value": value}]
    if not include_inactive:
        buttons.append({"type": "button", "action_id": SHOW_ALL_ACTION, "text": plain_text("Show all"), "value": value})
    if not shared:
        buttons.append(
            {"type": "button", "action_id": SHARE_ACTION, "text": plain_text("Share in channel"), "value": value}
        )
    blocks = list(message.get("blocks") or [])
    if len(blocks) >= MAX_BLOCKS:
        blocks = [*blocks[: MAX_BLOCKS - 2], blocks[-1]]
    return {**message, "blocks": [*blocks, {"type": "actions", "block_id": "balance_buttons", "elements": buttons}]}


def plain_text(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}
