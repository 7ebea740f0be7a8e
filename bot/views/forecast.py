"""The forecast in words: how long a family lasts at this pace, and what it will waste."""

from __future__ import annotations

from datetime import datetime

from bot.domain.forecast import FamilyForecast, RateBasis
from bot.views.format import quantity

# Below this share of a pack's total, units expiring unused are not worth a word.
WASTE_WORTH_SAYING = 0.01


def day_token(when: datetime) -> str:
    """A date each Slack reader sees in their own time zone ("Dec 8"), UTC as fallback."""
    return f"<!date^{int(when.timestamp())}^{{date_short}}|{when:%d %b}>"


def at_risk(f: FamilyForecast, now: datetime, *, warning_days: int) -> bool:
    """Runs out within the warning window, or will waste a share worth saying."""
    days = f.days_to_run_out(now)
    return (days is not None and days <= warning_days) or worth_saying(f.expires_unused, f.total)


def worth_saying(unused: float, total: float) -> bool:
    return unused > 0 and total > 0 and unused >= WASTE_WORTH_SAYING * total


def rate_text(f: FamilyForecast) -> str:
    if f.rate_basis == RateBasis.NONE or f.rate_per_day <= 0:
        return "no use yet"
    text = f"{quantity(round(f.rate_per_day, 1 if f.rate_per_day < 10 else 0))}/day"
    if f.rate_basis == RateBasis.SINCE_PURCHASE:
        text += ", average since purchase"
    return text


def forecast_text(f: FamilyForecast, now: datetime, *, slack: bool = True) -> str:
    """ "runs out in ~12 days, Dec 8, at 1,050/day" or "2,300 will expire unused on Dec 1 at this
    pace (300/day)"; `slack` False gives plain dates for the terminal."""

    def day(when: datetime) -> str:
        return day_token(when) if slack else f"{when:%d %b}"

    parts = []
    days = f.days_to_run_out(now)
    if f.runs_out_at is not None and days is not None:
        parts.append(f"runs out in ~{max(1, round(days))} day{'s' if round(days) != 1 else ''}, {day(f.runs_out_at)}")
    if worth_saying(f.expires_unused, f.total):
        soonest = min(
            (p.pack.invalid_time for p in f.packs if p.expires_unused > 0 and p.pack.invalid_time),
            default=None,
        )
        when = f" from {day(soonest)}" if soonest else ""
        parts.append(f"{quantity(round(f.expires_unused))} will expire unused{when} at this pace")
    rate = rate_text(f)
    if not parts:
        return "lasts past its packs' expiry" + (f" at {rate}" if rate != "no use yet" else ": no use yet")
    return "; ".join(parts) + (f" ({rate})" if rate != "no use yet" else "")
