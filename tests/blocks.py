"""Check a Slack message against Block Kit's limits the way Slack would."""

from __future__ import annotations

import math
from typing import Any

from slack_sdk.models.blocks import Block

MAX_MESSAGE_BLOCKS = 50
# data_visualization limits (shared reference, slack-surfaces.md section 1). Written out here
# rather than imported from bot.views.charts, so the check stays independent of the code it checks.
CHART_TITLE_LIMIT = 50
CHART_TEXT_LIMIT = 20  # series names, point labels, pie labels, categories
CHART_AXIS_LABEL_LIMIT = 50
CHART_MAX_SERIES = 6
CHART_MAX_POINTS = 20
CHART_TYPES = ("pie", "bar", "area", "line")
# Undocumented; Slack answers invalid_blocks for a third chart.
MAX_CHARTS_PER_MESSAGE = 2
BLOCK_ID_LIMIT = 255


def assert_valid_message(message: dict[str, Any], *, max_blocks: int = MAX_MESSAGE_BLOCKS) -> None:
    """Fallback text present and short enough; every block parses and keeps its limits."""
    text = message.get("text")
    assert isinstance(text, str) and text.strip(), "every message needs a plain-text fallback"
    assert len(text) < 4000, f"fallback text is {len(text)} chars"
    blocks = message.get("blocks") or []
    assert 0 < len(blocks) <= max_blocks, f"{len(blocks)} blocks"
    charts = [raw for raw in blocks if raw.get("type") == "data_visualization"]
    assert len(charts) <= MAX_CHARTS_PER_MESSAGE, f"{len(charts)} charts in one message"
    for raw in blocks:
        if raw.get("type") == "data_visualization":
            # slack_sdk has no model for it (Block.parse returns None), so check it by hand.
            assert_valid_chart(raw)
            continue
        block = Block.parse(raw)
        assert block is not None, f"unknown block type: {raw.get('type')}"
        block.to_dict()  # raises SlackObjectFormationError on a broken limit


def _is_number(value: Any) -> bool:
    # bool is an int to Python but not a number to Slack; NaN and infinity are not valid JSON.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _short_text(value: Any, limit: int, what: str) -> None:
    assert isinstance(value, str) and value.strip(), f"{what} must be non-empty text: {value!r}"
    assert len(value) <= limit, f"{what} is {len(value)} chars (limit {limit}): {value!r}"


def assert_valid_chart(block: dict[str, Any]) -> None:
    """A data_visualization block keeps every documented limit: title ≤50; pie 1–6 segments with
    labels ≤20 and values >0; bar/area/line 1–6 series with unique names ≤20, each 1–20 points
    whose labels ≤20 are listed in the categories (each ≤20); values finite numbers."""
    assert isinstance(block, dict), f"a block is a dict, not {type(block).__name__}"
    assert block.get("type") == "data_visualization", f"not a chart: {block.get('type')!r}"
    _short_text(block.get("title"), CHART_TITLE_LIMIT, "chart title")
    if "block_id" in block:
        _short_text(block["block_id"], BLOCK_ID_LIMIT, "block_id")
    chart = block.get("chart")
    assert isinstance(chart, dict), "chart must be an object"
    kind = chart.get("type")
    assert kind in CHART_TYPES, f"chart type {kind!r}"
    if kind == "pie":
        segments = chart.get("segments")
        assert isinstance(segments, list), "a pie needs a segments list"
        assert 1 <= len(segments) <= CHART_MAX_SERIES, f"{len(segments)} segments"
        for segment in segments:
            assert isinstance(segment, dict), "a segment is an object"
            _short_text(segment.get("label"), CHART_TEXT_LIMIT, "segment label")
            value = segment.get("value")
            assert _is_number(value) and value > 0, f"segment value {value!r}"
        return
    axis = chart.get("axis_config")
    assert isinstance(axis, dict), f"a {kind} chart needs axis_config"
    categories = axis.get("categories")
    assert isinstance(categories, list) and categories, "axis_config needs categories"
    for category in categories:
        _short_text(category, CHART_TEXT_LIMIT, "category")
    # Categories set the x order and a label names one of them; a repeat would make that ambiguous.
    assert len(set(categories)) == len(categories), f"repeated categories: {categories}"
    for key in ("x_label", "y_label"):
        if key in axis:
            _short_text(axis[key], CHART_AXIS_LABEL_LIMIT, key)
    series = chart.get("series")
    assert isinstance(series, list), f"a {kind} chart needs a series list"
    assert 1 <= len(series) <= CHART_MAX_SERIES, f"{len(series)} series"
    names: list[str] = []
    for one in series:
        assert isinstance(one, dict), "a series is an object"
        _short_text(one.get("name"), CHART_TEXT_LIMIT, "series name")
        names.append(one["name"])
        data = one.get("data")
        assert isinstance(data, list), f"series {one['name']!r} needs a data list"
        assert 1 <= len(data) <= CHART_MAX_POINTS, f"series {one['name']!r} has {len(data)} points"
        for point in data:
            assert isinstance(point, dict), "a data point is an object"
            _short_text(point.get("label"), CHART_TEXT_LIMIT, "point label")
            assert point["label"] in categories, f"label {point['label']!r} is not a category"
            assert _is_number(point.get("value")), f"point value {point.get('value')!r}"
    assert len(set(names)) == len(names), f"series names repeat: {names}"


def all_text(message: dict[str, Any]) -> str:
    """Everything a reader can see in the blocks, joined."""
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                parts.append(node["text"])
            for value in node.values():
                if isinstance(value, dict | list):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(message.get("blocks") or [])
    return "\n".join(parts)
