"""Trend charts and sparklines: Slack's data_visualization limits, gaps in the data, escaping."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from bot.views.charts import TrendSeries, sparkline, trend_chart, trend_lines
from tests.blocks import assert_valid_chart, assert_valid_message

WEEK = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def small_chart() -> dict[str, Any]:
    """Two series over a week: a valid chart for the rejection tests to break."""
    chart = trend_chart(
        "Units left, 7 days",
        WEEK,
        [TrendSeries("Video", (70, 60, 50, 40, 30, 20, 10)), TrendSeries("Image", (7, 7, 6, 6, 5, 5, 4))],
    )
    assert chart is not None
    return chart


def test_limits_enforced_for_ten_long_named_series_of_forty_days() -> None:
    """10 series × 40 days with 60-char names and title: 6 series, the last 20 days, names clipped and unique."""
    labels = [f"A long day label that clips alike, day {i}" for i in range(40)]
    values = tuple(float(1000 - i * 7) for i in range(40))
    series = [TrendSeries("Video Generation " + "x" * 43, values) for _ in range(10)]
    chart = trend_chart("T" * 60, labels, series)
    assert chart is not None
    assert_valid_chart(chart)
    assert_valid_message({"text": "trend", "blocks": [chart, copy.deepcopy(chart)]})
    assert chart["title"] == "T" * 49 + "…"
    body = chart["chart"]
    assert body["type"] == "line" and body["axis_config"]["y_label"] == "units left"
    assert len(body["series"]) == 6
    names = [one["name"] for one in body["series"]]
    assert names[0] == "Video Generation xx…"
    assert names[1] == "Video Generation… 2" and names[5] == "Video Generation… 6"
    assert all(len(n) <= 20 for n in names) and len(set(names)) == 6
    categories = body["axis_config"]["categories"]
    assert len(categories) == 20 and all(len(c) <= 20 for c in categories)
    assert categories[0] == "A long day label th…" and categories[1] == "A long day label… 2"
    assert len(set(categories)) == 20, "labels clipped alike are told apart"
    first = body["series"][0]["data"]
    assert len(first) == 20
    # The newest 20 days are kept: day 20's value is first, day 39's last.
    assert first[0]["value"] == 1000 - 20 * 7 and first[-1]["value"] == 1000 - 39 * 7
    assert [p["label"] for p in first] == categories


def test_first_six_series_are_kept_in_the_callers_order() -> None:
    """The caller orders series by risk, so the first six given are the ones drawn."""
    series = [TrendSeries(f"Family {i}", (10.0, 9.0)) for i in range(10)]
    chart = trend_chart("Trend", ("a", "b"), series)
    assert chart is not None
    assert [one["name"] for one in chart["chart"]["series"]] == [f"Family {i}" for i in range(6)]


def test_days_without_data_are_skipped_and_empty_series_dropped() -> None:
    """None days leave no point; a series with no value in the window gives its slot to the next."""
    series = [
        TrendSeries("Gappy", (100.0, None, 80.0, None, 60.123456, None, None)),
        TrendSeries("Empty", (None,) * 7),
        TrendSeries("Late", (5.0, 4.0)),  # first seen two days ago: lined up with Sat and Sun
        TrendSeries("Broken", (math.nan, math.inf, 3.0)),
    ]
    chart = trend_chart("Trend", WEEK, series)
    assert chart is not None
    assert_valid_chart(chart)
    drawn = {one["name"]: one["data"] for one in chart["chart"]["series"]}
    assert list(drawn) == ["Gappy", "Late", "Broken"]
    assert drawn["Gappy"] == [
        {"label": "Mon", "value": 100.0},
        {"label": "Wed", "value": 80.0},
        {"label": "Fri", "value": 60.12},
    ]
    assert drawn["Late"] == [{"label": "Sat", "value": 5.0}, {"label": "Sun", "value": 4.0}]
    assert drawn["Broken"] == [{"label": "Sun", "value": 3.0}], "NaN and infinity count as no data"
    assert chart["chart"]["axis_config"]["categories"] == list(WEEK)


@pytest.mark.parametrize(
    ("labels", "series"),
    [
        (("Sun",), [TrendSeries("Video", (10.0,))]),
        (WEEK, [TrendSeries("Video", (None, None, None, 10.0, None, None, None))]),
        (WEEK, [TrendSeries("Video", (None,) * 6 + (10.0,)), TrendSeries("Image", (None,) * 6 + (3.0,))]),
        (WEEK, [TrendSeries("Video", (None,) * 7)]),
        (WEEK, []),
        ((), [TrendSeries("Video", (1.0, 2.0))]),
    ],
)
def test_nothing_to_draw_gives_none(labels: tuple[str, ...], series: list[TrendSeries]) -> None:
    """A single day of data, or none at all, is no trend: no chart."""
    assert trend_chart("Trend", labels, series) is None


def test_blank_title_and_names_get_stand_ins() -> None:
    """Slack requires a title and names, so blank ones are replaced and newlines flattened."""
    chart = trend_chart("  \n", ("a", "b"), [TrendSeries("", (1.0, 2.0)), TrendSeries("two\nlines", (1.0, 2.0))])
    assert chart is not None
    assert_valid_chart(chart)
    assert chart["title"] == "Remaining units"
    assert [one["name"] for one in chart["chart"]["series"]] == ["Series", "two lines"]


def test_sparkline_scales_between_min_and_max() -> None:
    """The smallest value is the lowest bar, the largest the highest, the rest in proportion."""
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert sparkline([700, 600, 100]) == "█▇▁"
    assert sparkline([12400, 9100]) == "█▁"


def test_sparkline_of_a_flat_series_is_mid_height() -> None:
    """With no change there is no scale: every day is the same half-height bar."""
    assert sparkline([5, 5, 5]) == "▄▄▄"
    assert sparkline([42]) == "▄"


def test_sparkline_shows_missing_days_as_spaces() -> None:
    """None (and NaN) days are gaps; the scale comes from the known values only."""
    assert sparkline([10, None, 0, math.nan, 5]) == "█ ▁ ▅"
    assert sparkline([None, 3, None]) == " ▄ "


def test_sparkline_without_values_is_empty() -> None:
    """No values, or only missing ones, give an empty string."""
    assert sparkline([]) == ""
    assert sparkline([None, None]) == ""


def test_trend_lines_escape_names_and_summarise_the_change() -> None:
    """A hostile name cannot ping or format; each line shows sparkline, first → last and days covered."""
    lines = trend_lines(
        WEEK,
        [
            TrendSeries("<!channel> *x*", (12400, 11000, 11000, 10500, 9800, 9500, 9100)),
            TrendSeries("Gappy", (None, 50, None, 30, None, None)),  # lined up with Tue…Sun
            TrendSeries("Once", (None,) * 6 + (7.5,)),
            TrendSeries("Never", ()),
        ],
    )
    assert len(lines) == 4
    assert lines[0].startswith("*&lt;!channel&gt; ∗x∗* `")
    assert "<!channel>" not in lines[0]
    assert lines[0].endswith("` 12,400 → 9,100 over 7 days")
    assert lines[1] == "*Gappy* `█ ▁` 50 → 30 over 3 days"
    assert lines[2] == "*Once* `▄` 7.5 on Sun"
    assert lines[3] == "*Never* no data"


# The example from the Slack surfaces reference (section 1), trimmed to three days.
REFERENCE_EXAMPLE: dict[str, Any] = {
    "type": "data_visualization",
    "title": "Balance, 7 days (k USD)",
    "chart": {
        "type": "line",
        "axis_config": {"categories": ["Mon", "Tue", "Wed"]},
        "series": [
            {"name": "Operating", "data": [{"label": "Mon", "value": 12}, {"label": "Tue", "value": 11}]},
            {"name": "Reserve", "data": [{"label": "Wed", "value": 48}]},
        ],
    },
}


def test_assert_valid_chart_accepts_valid_charts() -> None:
    """The reference example and our own chart pass, so the rejections below are about the broken limit."""
    assert_valid_chart(REFERENCE_EXAMPLE)
    assert_valid_chart(small_chart())


def break_chart(how: str) -> dict[str, Any]:
    """A copy of small_chart() with one documented limit broken."""
    chart = small_chart()
    series = chart["chart"]["series"]
    if how == "seven series":
        series.extend({"name": f"Extra {i}", "data": series[0]["data"]} for i in range(5))
    elif how == "21 points":
        labels = [f"d{i}" for i in range(21)]
        chart["chart"]["axis_config"]["categories"] = labels
        series[0]["data"] = [{"label": label, "value": 1} for label in labels]
        series[1]["data"] = [{"label": "d0", "value": 1}]
    elif how == "duplicate name":
        series[1]["name"] = series[0]["name"]
    elif how == "51-char title":
        chart["title"] = "x" * 51
    return chart


@pytest.mark.parametrize(
    ("how", "complaint"),
    [
        ("seven series", "7 series"),
        ("21 points", "has 21 points"),
        ("duplicate name", "series names repeat"),
        ("51-char title", "chart title is 51 chars"),
    ],
)
def test_assert_valid_chart_rejects_broken_limits(how: str, complaint: str) -> None:
    """7 series, a 21-point series, a repeated name or a 51-char title each fail, for that reason."""
    with pytest.raises(AssertionError, match=complaint):
        assert_valid_chart(break_chart(how))


def test_assert_valid_message_allows_at_most_two_charts() -> None:
    """A chart block passes as part of a message, but a third chart in one message does not."""
    chart = small_chart()
    assert_valid_message({"text": "trend", "blocks": [chart, chart]})
    with pytest.raises(AssertionError, match="3 charts"):
        assert_valid_message({"text": "trend", "blocks": [chart, chart, chart]})
    with pytest.raises(AssertionError, match="series names repeat"):
        assert_valid_message({"text": "trend", "blocks": [break_chart("duplicate name")]})
