"""Foresight end to end: stand-in Kling, a real database with history, a fake clock moving
through days, and the `/kling-balance` reply through Bolt."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
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


def burn(world: World, days: int, packs_at: Callable[[int], list[dict]], *, polls_per_day: int = 2) -> None:
    """Poll through `days` days; `packs_at(step)` gives Kling's packs at each poll."""
    for step in range(days * polls_per_day):
        world.kling.packs = packs_at(step)
        if step:
            world.clock.advance(timedelta(days=1).total_seconds() / polls_per_day - 30 * 60)
        world.check()


def test_a_family_running_out_within_the_window_is_warned_once(world: World) -> None:
    """At 200/day from 2,400, the run-out enters the 7-day window on day 5: warned then, once, also across a restart."""
    from tests.world import ALERTS

    def video(step: int) -> list[dict]:
        left = 2400 - 100 * step
        return [make_pack("Video Generation - 5,000", total=5000, remaining=left, pack_id="v", expires_in_days=60)]

    burn(world, 6, video)
    world.restart()
    burn(world, 1, lambda step: video(12 + step))
    warnings = [p for p in world.posts(ALERTS) if "At this pace" in p["text"]]
    assert len(warnings) == 1
    text = all_text(warnings[0])
    assert "runs out on" in text and "200/day" in text and "days before its packs expire" in text


def test_a_purchase_re_arms_the_run_out_warning(world: World) -> None:
    """Warned, then a purchase pushes the run-out far out, then it comes back: warned again."""
    from tests.world import ALERTS

    def packs(step: int, bought: bool) -> list[dict]:
        left = 1600 - 100 * step
        extra = [make_pack("Video Generation - new", total=20000, remaining=20000, pack_id="n")] if bought else []
        old = make_pack("Video Generation - old", total=5000, remaining=left, pack_id="v", expires_in_days=60)
        return [old, *extra]

    burn(world, 3, lambda s: packs(s, False))
    assert len([p for p in world.posts(ALERTS) if "At this pace" in p["text"]]) == 1
    burn(world, 1, lambda s: packs(6 + s, True))  # a big purchase: months of headroom
    world.kling.packs = packs(8, False)  # the new pack is used up elsewhere / refunded
    world.check()
    world.check()
    assert len([p for p in world.posts(ALERTS) if "At this pace" in p["text"]]) == 2


def test_expiring_pack_warning_says_what_will_be_lost_at_this_pace(world: World) -> None:
    """A pack used 50/day with 950 left when it comes within 7 days of expiry: about 600 will be lost, said once."""
    from tests.world import ALERTS

    def packs(step: int) -> list[dict]:
        left = 1100 - 25 * step
        return [make_pack("Video Generation - 2,000", total=2000, remaining=left, pack_id="w", expires_in_days=10)]

    burn(world, 4, packs)
    expiring = [p for p in world.posts(ALERTS) if "expires" in p["text"]]
    assert len(expiring) == 1
    text = all_text(expiring[0])
    assert re.search(r"about 6\d\d of its 950 left will be lost", text) and "50/day" in text


def test_no_expiry_warning_for_a_pack_used_up_first(world: World) -> None:
    """A pack that at this pace is used up before it expires gets no expiry warning."""
    from tests.world import ALERTS

    def packs(step: int) -> list[dict]:
        left = 600 - 100 * step
        return [
            make_pack(
                "Video Generation - 2,000",
                total=2000,
                remaining=left,
                pack_id="u",
                expires_in_days=6,
                purchased_days_ago=5,
            ),
            make_pack("Video Generation - big", total=90000, remaining=90000, pack_id="b", expires_in_days=300),
        ]

    burn(world, 2, packs)
    assert [p for p in world.posts(ALERTS) if "expires" in p["text"]] == []


def test_packs_that_will_waste_come_first_and_say_how_much(world: World) -> None:
    """In the reply, a pack that will expire with units left at this pace is listed first, marked, with the amount."""
    world.kling.packs = [
        make_pack("Video Generation - steady", total=10000, remaining=5000, pack_id="s", expires_in_days=300),
        make_pack(
            "Lip Sync - 2,000", total=2000, remaining=1500, pack_id="w", purchased_days_ago=100, expires_in_days=5
        ),
    ]
    text = all_text(world.command(""))
    packs_part = text.split("Lip Sync - 2,000", 1)
    assert len(packs_part) == 2 and "Video Generation - steady" in packs_part[1]
    assert ":rotating_light: *Lip Sync - 2,000*" in text and "will expire unused at this pace" in text


def test_a_held_back_expiry_reminder_comes_when_use_stops(world: World) -> None:
    """Projected to be used up in time, no reminder; when use stops and waste appears, the reminder comes, once."""
    from tests.world import ALERTS

    def packs(step: int) -> list[dict]:
        left = 600 - 100 * min(step, 2)
        return [
            make_pack(
                "Video Generation - 1,000", total=1000, remaining=left, pack_id="h", purchased_days_ago=2,
                expires_in_days=7.2,
            )
        ]  # fmt: skip

    burn(world, 1, packs)  # inside the window, but at 250/day it is used up long before: held back
    assert [p for p in world.posts(ALERTS) if "expires" in p["text"]] == []
    burn(world, 5, lambda step: packs(2))  # use stops at 400 left
    expiring = [p for p in world.posts(ALERTS) if "expires" in p["text"]]
    assert len(expiring) == 1 and "will be lost" in expiring[0]["text"]
