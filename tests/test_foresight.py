"""Foresight end to end: stand-in Kling, a real database with history, a fake clock moving
through days, and the `/kling-balance` reply through Bolt."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from tests.blocks import all_text, assert_valid_message
from tests.stand_ins.kling import FakeKling, make_pack
from tests.stand_ins.slack import FakeSlack
from tests.world import World


@pytest.fixture
def world(kling: FakeKling, slack: FakeSlack, database_url: str) -> Iterator[World]:
    w = World(kling, slack, database_url)
    yield w
    w.close()


def test_fresh_install_forecasts_from_the_average_since_purchase(world: World) -> None:
    """No history: the reply uses the since-purchase average and says so."""
    world.kling.packs = [
        make_pack("Video Generation - 3,000", total=3000, remaining=410, purchased_days_ago=80, expires_in_days=4)
    ]
    reply = world.command("")
    assert_valid_message(reply)
    text = all_text(reply)
    assert "average since purchase" in text and "will expire unused" in text


def test_history_gives_a_recent_rate_and_the_riskiest_family_comes_first(world: World) -> None:
    """Two days at 200/day: Video runs out in ~3 days and is listed (and marked) before a healthy family."""
    for step in range(5):
        world.kling.packs = [
            make_pack(
                "Image Generation - 50,000",
                total=50000,
                remaining=45000 - 500 * step,
                pack_id="img",
                expires_in_days=200,
            ),
            make_pack("Video Generation - 1,000", total=1000, remaining=1000 - 100 * step, pack_id="vid"),
        ]
        if step:
            world.clock.advance(timedelta(hours=12).total_seconds() - 30 * 60)
        world.check()
    text = all_text(world.command(""))
    assert text.index("Video Generation") < text.index("Image Generation")
    assert ":rotating_light: *Video Generation*" in text and ":rotating_light: *Image" not in text
    video = text.split("Image Generation")[0]
    assert "runs out in ~3 days" in video and "200/day" in video and "since purchase" not in video


def test_digest_has_forecast_lines_a_trend_chart_and_sparklines(
    kling: FakeKling, slack: FakeSlack, database_url: str
) -> None:
    """After a week of polls the digest says how long each family lasts, and draws the week as a
    line chart (within Slack's limits) with a sparkline beside it for notifications."""
    from datetime import UTC, datetime

    from tests.fake_clock import FakeClock
    from tests.world import DIGEST

    start = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
    w = World(kling, slack, database_url, clock=FakeClock(start), DIGEST_TIME="09:00")
    try:
        for day in range(8):
            w.set_time(start + timedelta(days=day))
            kling.packs = [
                make_pack("Video Generation - 10,000", total=10000, remaining=9000 - 600 * day, pack_id="v", now=start),
                make_pack("Image Generation - 5,000", total=5000, remaining=5000 - 50 * day, pack_id="i", now=start),
            ]
            w.jobs.check()
        w.set_time(start + timedelta(days=8, hours=-0.5))
        w.jobs.digest()
        post = w.posts(DIGEST)[-1]
        assert_valid_message(post)
        [chart] = [b for b in post["blocks"] if b["type"] == "data_visualization"]
        assert [s["name"] for s in chart["chart"]["series"]] == ["Video Generation", "Image Generation"]
        assert len(chart["chart"]["series"][0]["data"]) == 7
        text = all_text(post)
        assert "runs out in ~" in text and "600/day" in text
        assert "▇" in post["text"] or "█" in post["text"]  # the sparkline reaches notifications too
    finally:
        w.close()


def test_balance_json_and_table_carry_the_forecast(kling: FakeKling) -> None:
    """`balance --json` has "families" with the forecast fields and "expires_unused" per pack; the table a forecast."""
    import json

    from tests.test_cli import kling_env, run

    kling.packs = [
        make_pack("Video Generation - 3,000", total=3000, remaining=410, purchased_days_ago=80, expires_in_days=4)
    ]
    code, out, _ = run(["balance", "--json"], kling_env(kling))
    assert code == 0
    data = json.loads(out)
    [family] = data["families"]
    assert set(family) == {
        "account", "family", "remaining", "total", "rate_per_day", "rate_basis", "runs_out_at", "expires_unused"
    }  # fmt: skip
    assert family["rate_basis"] == "since_purchase" and family["rate_per_day"] > 0
    assert family["runs_out_at"] is None and family["expires_unused"] > 0
    assert data["packs"][0]["expires_unused"] == family["expires_unused"]
    kling.qps_interval_s = 0
    code, out, _ = run(["balance"], kling_env(kling))
    assert code == 0 and "Forecast per family" in out and "since purchase" in out
