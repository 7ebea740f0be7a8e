"""Small pure formatting helpers shared by the Slack and terminal views."""

from __future__ import annotations

import re
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


# mrkdwn has no escape for its formatting marks, so a mark that could open or close formatting
# becomes a look-alike. (A zero-width space beside a mark makes Slack format more, not less,
# and a code span cannot hold a backtick.) A mark between two letters or digits cannot format,
# so `video_gen` keeps its underscore and still matches when copied back into a command.
_LOOKALIKES = {"*": "∗", "_": "ˍ", "~": "∼", "`": "ˋ"}
_LIVE_MARK = re.compile(r"`|(?<![^\W_])[*_~]|[*_~](?![^\W_])")
# Slack's date token, written on purpose by slack_date(); an entity; or a control character.
_CONTROL = re.compile(r"(<!date\^[^<>|]*\|[^<>]*>)|(&(?:amp|lt|gt);)|[<>&]")


def mrkdwn_escape(text: str, *, keep_markup: bool = False) -> str:
    """Text for mrkdwn that Slack shows as written: `&`, `<` and `>` as entities, so a name such
    as `<!channel>` cannot ping or link; and the marks `*`, `_`, `~` and backticks that could
    start or end formatting as look-alikes (`*bold*` shows as ∗bold∗, not bold). Pack names,
    families and whatever a person typed all go through here. `keep_markup` is for the bot's
    own mrkdwn (its code spans and bold), which needs only the three entities."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text if keep_markup else _LIVE_MARK.sub(lambda m: _LOOKALIKES[m.group()], text)


def escape_stray_controls(text: str) -> str:
    """Escape any `<`, `>` or `&` left raw, keeping entities and date tokens: a last guard, so
    text that skipped mrkdwn_escape still cannot ping anyone."""
    return _CONTROL.sub(lambda m: m.group(1) or m.group(2) or mrkdwn_escape(m.group(), keep_markup=True), text)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
