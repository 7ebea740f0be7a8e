"""The daily digest as Block Kit: a pure function of what happened since the last one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from bot.domain.forecast import FamilyForecast
from bot.domain.packs import FamilyTotal, PackStatus, ResourcePack
from bot.views.alerts import in_account
from bot.views.balance import COMMAND, family_line
from bot.views.blocks import context, header, plain, section
from bot.views.charts import MAX_SERIES, TrendSeries, trend_chart, trend_lines
from bot.views.forecast import forecast_text
from bot.views.format import LAG_NOTE, mrkdwn_escape, quantity, relative, slack_date

MAX_LISTED = 15


@dataclass(frozen=True)
class FamilyUsage:
    total: FamilyTotal
    used: float


@dataclass(frozen=True)
class DigestData:
    now: datetime
    since: datetime
    first: bool
    usage: Sequence[FamilyUsage]
    expiring: Sequence[ResourcePack]
    ended: Sequence[ResourcePack]
    zone_name: str
    digest_time: time
    stale_note: str | None = None
    any_packs: bool = True
    # Where the usage history starts, when later than `since` (the bot has been watching for
    # less than the period); None when there is no history at all yet.
    history_from: datetime | None = None
    has_history: bool = True
    # Several accounts: display names by key (sections and lines name the account), and the
    # accounts that could not be asked for this digest.
    account_names: Mapping[str, str] | None = None
    failed_accounts: Sequence[str] = ()
    # The forecast per family (riskiest first) and the remaining quantity per day.
    forecasts: Sequence[FamilyForecast] = ()
    warning_days: int = 7
    trend: Trend | None = None


@dataclass(frozen=True)
class Trend:
    labels: tuple[str, ...]
    series: tuple[TrendSeries, ...]


def _listed(lines: list[str], what: str, *, budget: int = 2700) -> str:
    """Up to MAX_LISTED lines, and no more than fit one section, then how many are left."""
    shown: list[str] = []
    used = 0
    for line in lines[:MAX_LISTED]:
        if used + len(line) + 1 > budget:
            break
        shown.append(line)
        used += len(line) + 1
    if len(shown) < len(lines):
        shown.append(f"…and {len(lines) - len(shown)} more {what}: `{COMMAND} all` lists them.")
    return "\n".join(shown)


def _period(data: DigestData) -> str:
    """What the usage figures cover, said honestly: never "24 h" from a few minutes of history."""
    if data.history_from is not None and data.history_from > data.since:
        return f"since {slack_date(data.history_from)}, when the bot started watching"
    if data.first:
        return "in the last 24 h"
    return f"since the last digest ({relative(data.since, data.now)})"


def digest_message(data: DigestData) -> dict[str, Any]:
    local = data.now.astimezone(ZoneInfo(data.zone_name))
    blocks: list[dict[str, Any]] = [header(f"Kling daily digest: {local:%a %d %b %Y}")]
    fallback = [f"Kling daily digest {local:%Y-%m-%d}"]
    if data.stale_note:
        blocks.append(section(f":warning: {mrkdwn_escape(data.stale_note)}"))

    names = data.account_names
    for account in data.failed_accounts:
        label = (names or {}).get(account, account)
        blocks.append(
            section(f":warning: Kling could not be asked for account *{mrkdwn_escape(label)}*: it is missing here.")
        )
        fallback.append(f"Account {mrkdwn_escape(label)}: Kling could not be asked.")
    period = _period(data)
    if data.usage:
        lines = []
        last_account = None
        for row in data.usage:
            if names and row.total.account != last_account:
                last_account = row.total.account
                lines.append(f"_Account_ *{mrkdwn_escape(names.get(last_account, last_account))}*")
            forecast = next(
                (f for f in data.forecasts if (f.account, f.family) == (row.total.account, row.total.family)), None
            )
            line = family_line(row.total, data.now, forecast, warning_days=data.warning_days)
            used = f"used {quantity(row.used)} {period}" if data.has_history else "usage: no history yet"
            line += f"\n      {used}"
            lines.append(line)
            left = (
                f"{quantity(row.total.remaining)} left"
                if row.total.online_packs
                else f"nothing active yet (+{quantity(row.total.pending_remaining)} not yet active)"
            )
            where = f"{mrkdwn_escape(names.get(row.total.account, row.total.account))} / " if names else ""
            fallback.append(f"{where}{mrkdwn_escape(row.total.family)}: {left}, {used}")
            if forecast is not None and row.total.online_packs:
                fallback.append(f"  at this pace: {forecast_text(forecast, data.now)}")
        blocks.append(section("*Balances*\n" + _listed(lines, "families")))
    elif data.any_packs:
        blocks.append(section("*Balances*\nNo active packs: everything has expired or been used up."))
        fallback.append("No active packs.")
    else:
        blocks.append(section("*Balances*\nKling reports no resource packs in the look-back window."))
        fallback.append("No packs.")

    if data.trend is not None:
        lines = trend_lines(data.trend.labels, data.trend.series[:MAX_SERIES])
        chart = trend_chart("Units left per family, last 7 days", data.trend.labels, data.trend.series)
        if chart is not None and lines:
            # The chart for clients that draw it; the sparklines for notifications and the rest.
            blocks.append(section(":chart_with_downwards_trend: *Trend*\n" + "\n".join(lines)))
            blocks.append(chart)
            fallback.extend(lines)

    if data.expiring:
        lines = [
            f"• *{mrkdwn_escape(p.name)}*{in_account(p.account, names)}: {quantity(p.remaining)} left, expires "
            f"{slack_date(p.invalid_time)} ({relative(p.invalid_time, data.now)})"
            for p in data.expiring
            if p.invalid_time
        ]
        blocks.append(section(":hourglass_flowing_sand: *Expiring soon*\n" + _listed(lines, "packs")))
        fallback.append(f"{len(data.expiring)} pack(s) expiring soon.")

    if data.ended:
        lines = []
        for p in data.ended:
            name = f"*{mrkdwn_escape(p.name)}*{in_account(p.account, names)}"
            if p.status == PackStatus.RUN_OUT:
                lines.append(f"• {name} was used up")
            else:
                lines.append(f"• {name} expired with {quantity(p.remaining)} unused")
        blocks.append(section(f"*Ended {period}*\n" + _listed(lines, "packs")))
        fallback.append(f"{len(data.ended)} pack(s) ended.")

    blocks.append(
        context(
            f"Sent every day at {data.digest_time:%H:%M} {data.zone_name} time. {LAG_NOTE} "
            f"`{COMMAND}` shows the balances any time."
        )
    )
    # One line each: run together, a notification reads as one long sentence.
    return {"text": plain("\n".join(fallback)), "blocks": blocks}
