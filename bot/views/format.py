"""Small pure formatting helpers shared by the Slack and terminal views."""

from __future__ import annotations

from datetime import datetime, timedelta

LAG_NOTE = "Remaining quantities can lag by up to 12 h (Kling's statistics delay)."


def quantity(value: float) -> str:
    """1180.0 -> "1,180"; 12.25 -> "12.25"."""
    if abs(value - round(value)) < 1e-9:
        return f"{round(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def percent(fraction: float | None) -> str:
    if fraction is None:
        return "n/a"
    pct = fraction * 100
    return f"{pct:.0f}%" if pct >= 10 or pct == 0 else f"{pct:.1f}%"


def bar(fraction: float | None, width: int = 10) -> str:
    if fraction is None:
        return "·" * width
    filled = round(fraction * width)
    if fraction > 0 and filled == 0:
        filled = 1  # anything left shows as a sliver, never as empty
    return "▓" * filled + "░" * (width - filled)


def relative(when: datetime, now: datetime) -> str:
    """ "in 3 days", "in 5 hours", "2 days ago"."""
    delta = when - now
    future = delta >= timedelta(0)
    seconds = abs(delta.total_seconds())
    if seconds < 60:
        return "now"
    if seconds < 3600:
        n, unit = int(seconds // 60), "minute"
    elif seconds < 48 * 3600:
        n, unit = int(seconds // 3600), "hour"
    else:
        # Nearest whole day: a pack expiring in 3 days 23 hours reads "in 4 days".
        n, unit = round(seconds / 86400), "day"
    text = f"{n} {unit}{'' if n == 1 else 's'}"
    return f"in {text}" if future else f"{text} ago"


def age(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 48 * 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} days"


def utc_text(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC")


def iso_utc(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat().replace("+00:00", "Z")


def slack_date(when: datetime) -> str:
    """A date token each Slack reader sees in their own time zone, UTC as fallback."""
    return f"<!date^{int(when.timestamp())}^{{date_short_pretty}} {{time}}|{utc_text(when)}>"


def mrkdwn_escape(text: str) -> str:
    """Escape the three characters Slack treats as control characters in mrkdwn."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
