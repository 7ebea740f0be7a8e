"""Remaining-quantity trends: a native Block Kit line chart, plus text sparklines for the places
that do not draw charts (notifications, older clients, the digest's fallback text). Pure: no I/O.

Slack's `data_visualization` block is newer than slack_sdk's models, so the chart is a plain dict;
`Block.parse` would drop it. Slack rejects the whole message (`invalid_blocks`) when one limit is
broken, so every limit is enforced here rather than left to the caller.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.views.format import mrkdwn_escape, quantity

# Documented limits of data_visualization (see the Slack surfaces reference, section 1).
TITLE_LIMIT = 50
MAX_SERIES = 6
MAX_POINTS = 20
NAME_LIMIT = 20  # series names, point labels and categories alike
AXIS_LABEL_LIMIT = 50
# Slack also refuses a third chart in one message, though it does not document it.
MAX_CHARTS_PER_MESSAGE = 2

Y_LABEL = "units left"
# Slack wants a title and a name; these stand in when the caller's text is blank.
DEFAULT_TITLE = "Remaining units"
DEFAULT_NAME = "Series"
DEFAULT_LABEL = "day"

SPARK_CHARS = "▁▂▃▄▅▆▇█"
# A flat series has no scale to place it on; half height reads as "steady", not "empty" or "full".
SPARK_FLAT = SPARK_CHARS[3]
SPARK_GAP = " "


@dataclass(frozen=True)
class TrendSeries:
    """One family's remaining quantity per day, oldest first; None for a day without data."""

    name: str
    values: tuple[float | None, ...]


def trend_chart(title: str, labels: Sequence[str], series: Sequence[TrendSeries]) -> dict[str, Any] | None:
    """A `data_visualization` line chart of the series over the days in `labels`, inside Slack's
    limits: the last 20 days, the first 6 series that have data there (the caller orders them by
    risk), text clipped, names made unique. Values line up with labels from the newest end, so a
    family first seen three days ago may pass three values. None when no series has data or
    fewer than two days have any: one point is not a trend."""
    window = _tail(labels, MAX_POINTS)
    categories = _unique_clipped(window, NAME_LIMIT, DEFAULT_LABEL)
    drawn: list[tuple[str, list[dict[str, Any]]]] = []
    days_with_data: set[int] = set()
    for one in series:
        if len(drawn) == MAX_SERIES:
            break
        aligned = _aligned(one.values, len(window))
        data = [
            {"label": categories[i], "value": round(value, 2)} for i, value in enumerate(aligned) if value is not None
        ]
        if not data:
            continue  # nothing to draw; its slot goes to the next series rather than an empty line
        days_with_data.update(i for i, value in enumerate(aligned) if value is not None)
        drawn.append((one.name, data))
    if len(days_with_data) < 2:
        return None
    names = _unique_clipped([name for name, _ in drawn], NAME_LIMIT, DEFAULT_NAME)
    return {
        "type": "data_visualization",
        "title": _clip(_one_line(title) or DEFAULT_TITLE, TITLE_LIMIT),
        "chart": {
            "type": "line",
            "axis_config": {"categories": categories, "y_label": Y_LABEL},
            "series": [{"name": name, "data": data} for name, (_, data) in zip(names, drawn, strict=True)],
        },
    }


def sparkline(values: Sequence[float | None]) -> str:
    """ "▇▆▆▅▃▂▁": each value scaled between the smallest and largest given, a space for a day
    without data, so the trend survives where charts are not drawn. Empty when there is no value."""
    cleaned = [_finite(v) for v in values]
    known = [v for v in cleaned if v is not None]
    if not known:
        return ""
    low, high = min(known), max(known)
    span = high - low
    top = len(SPARK_CHARS) - 1

    def char(value: float | None) -> str:
        if value is None:
            return SPARK_GAP
        if span <= 0:
            return SPARK_FLAT
        return SPARK_CHARS[round((value - low) / span * top)]

    return "".join(char(v) for v in cleaned)


def trend_lines(labels: Sequence[str], series: Sequence[TrendSeries]) -> list[str]:
    """One mrkdwn line per series for the digest: "*name* `▇▆▅▄` 12,400 → 9,100 over 7 days".
    The sparkline and the day count run from the first to the last day with data (values lined
    up with labels from the newest end, as in trend_chart); no 20-day cap, text has room."""
    lines: list[str] = []
    for one in series:
        name = f"*{mrkdwn_escape(_one_line(one.name) or DEFAULT_NAME)}*"
        aligned = _aligned(one.values, len(labels))
        known = [(i, value) for i, value in enumerate(aligned) if value is not None]
        if not known:
            lines.append(f"{name} no data")
            continue
        (first, start), (last, end) = known[0], known[-1]
        spark = f"`{sparkline(aligned[first : last + 1])}`"
        if first == last:
            # A single reading has no change to report; say which day it is from instead.
            day = mrkdwn_escape(_one_line(labels[first]))
            lines.append(f"{name} {spark} {quantity(start)} on {day}")
            continue
        days = last - first + 1
        lines.append(f"{name} {spark} {quantity(start)} → {quantity(end)} over {days} days")
    return lines


def _tail(items: Sequence[str], limit: int) -> list[str]:
    # Newest days matter most for a run-out forecast, so a long history loses its oldest days.
    return list(items[-limit:]) if len(items) > limit else list(items)


def _aligned(values: Sequence[float | None], days: int) -> list[float | None]:
    """The values for the last `days` days, oldest first: both sequences end today, so they are
    matched from the newest end; days before a series' first value are None."""
    recent = [_finite(v) for v in values[-days:]] if days else []
    return [None] * (days - len(recent)) + recent


def _finite(value: float | None) -> float | None:
    # NaN or infinity would make the chart payload invalid JSON for Slack, so such a day counts
    # as a day without data.
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _one_line(text: str) -> str:
    # Chart text and mrkdwn names are single-line; a stray newline or tab would break the layout.
    return " ".join(text.split())


def _clip(text: str, limit: int) -> str:
    # Unlike format.clip, trims the space before "…" so "Video Generation …" reads "Video Generation…".
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _unique_clipped(texts: Iterable[str], limit: int, default: str) -> list[str]:
    """Each text clipped to `limit`, later duplicates numbered ("Video Generati… 2"). Slack
    requires unique series names, and two families can share their first 20 characters. Compared
    without case so two names Slack might treat as one still differ."""
    taken: set[str] = set()
    result: list[str] = []
    for text in texts:
        base = _one_line(text) or default
        candidate = _clip(base, limit)
        number = 1
        while candidate.casefold() in taken:
            number += 1
            suffix = f" {number}"
            candidate = _clip(base, limit - len(suffix)) + suffix
        taken.add(candidate.casefold())
        result.append(candidate)
    return result
