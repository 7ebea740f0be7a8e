"""The daily digest: at the configured local time (DST included), once per day, with what changed."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.cli import main
from bot.config import Settings
from bot.scheduler import digest_trigger
from tests.blocks import all_text, assert_valid_message
from tests.fake_clock import FakeClock
from tests.stand_ins.kling import FakeKling, make_pack
from tests.stand_ins.slack import FakeSlack
from tests.world import DIGEST, World

BERLIN = {"DIGEST_TIMEZONE": "Europe/Berlin", "DIGEST_TIME": "09:00"}


@pytest.mark.parametrize(
    ("after", "expected_utc"),
    [
        # Spring forward (29 March 2026): 09:00 CET is 08:00 UTC, 09:00 CEST is 07:00 UTC.
        (datetime(2026, 3, 27, 12, tzinfo=UTC), datetime(2026, 3, 28, 8, tzinfo=UTC)),
        (datetime(2026, 3, 28, 12, tzinfo=UTC), datetime(2026, 3, 29, 7, tzinfo=UTC)),
        # Fall back (25 October 2026).
        (datetime(2026, 10, 24, 12, tzinfo=UTC), datetime(2026, 10, 25, 8, tzinfo=UTC)),
        (datetime(2026, 10, 23, 12, tzinfo=UTC), datetime(2026, 10, 24, 7, tzinfo=UTC)),
    ],
)
def test_digest_fires_at_local_nine_on_both_sides_of_dst(after: datetime, expected_utc: datetime) -> None:
    """The schedule is 09:00 Europe/Berlin every day, whatever the UTC offset that day."""
    settings = Settings.from_env({"KLING_API_KEY": "k", **BERLIN})
    fire = digest_trigger(settings).get_next_fire_time(None, after)
    assert fire == expected_utc
    assert fire.astimezone(settings.zone).hour == 9


@pytest.fixture
def berlin(kling: FakeKling, slack: FakeSlack, database_url: str) -> Iterator[World]:
    # The day before spring forward, 08:30 local.
    clock = FakeClock(datetime(2026, 3, 28, 7, 30, tzinfo=UTC))
    w = World(kling, slack, database_url, clock=clock, **BERLIN)
    kling.packs = [
        make_pack("Video Generation - A", total=1000, remaining=1000, pack_id="a", expires_in_days=3, now=clock.now()),
        make_pack("Image Generation - B", total=500, remaining=500, pack_id="b", expires_in_days=90, now=clock.now()),
    ]
    yield w
    w.close()


def test_digest_is_posted_once_at_the_local_time_across_dst(berlin: World) -> None:
    """Polls around 09:00 local post one digest a day, at 09:00 CET and then at 09:00 CEST."""
    berlin.jobs.check()  # 08:30 CET: baseline, no digest yet
    assert berlin.posts(DIGEST) == []
    berlin.set_time(datetime(2026, 3, 28, 8, 0, 30, tzinfo=UTC))  # 09:00:30 CET
    berlin.jobs.digest()
    berlin.check()
    berlin.check()
    [first] = berlin.posts(DIGEST)
    assert_valid_message(first)
    assert "Europe/Berlin" in all_text(first) and "09:00" in all_text(first)
    assert "Sat 28 Mar 2026" in all_text(first)

    berlin.set_time(datetime(2026, 3, 29, 6, 59, tzinfo=UTC))  # 08:59 CEST on the DST day
    berlin.jobs.check()
    assert len(berlin.posts(DIGEST)) == 1
    berlin.set_time(datetime(2026, 3, 29, 7, 0, 30, tzinfo=UTC))  # 09:00:30 CEST
    berlin.jobs.digest()
    berlin.restart()
    berlin.check()
    berlin.jobs.digest()
    posts = berlin.posts(DIGEST)
    assert len(posts) == 2 and "Sun 29 Mar 2026" in all_text(posts[1])


def test_missed_digest_is_caught_up_by_the_next_poll(berlin: World) -> None:
    """If the process was down at 09:00, the next poll within a few hours posts the day's digest."""
    berlin.set_time(datetime(2026, 3, 28, 10, 15, tzinfo=UTC))  # 11:15 CET
    berlin.jobs.check()
    [post] = berlin.posts(DIGEST)
    assert "Kling daily digest" in post["text"]


def test_digest_reports_use_since_the_last_one_and_packs_that_ended(berlin: World) -> None:
    """The second digest says how much each family used since the first, and which packs ran out."""
    berlin.jobs.check()
    berlin.set_time(datetime(2026, 3, 28, 8, 0, 30, tzinfo=UTC))
    berlin.jobs.digest()
    now = berlin.clock.now()
    berlin.set_time(datetime(2026, 3, 28, 15, 0, tzinfo=UTC))
    berlin.kling.packs = [
        make_pack("Video Generation - A", total=1000, remaining=650, pack_id="a", expires_in_days=2.7, now=now),
        make_pack("Image Generation - B", total=500, remaining=0, pack_id="b", status="runOut", now=now),
    ]
    berlin.jobs.check()
    berlin.set_time(datetime(2026, 3, 29, 7, 0, 30, tzinfo=UTC))
    berlin.jobs.digest()
    second = berlin.posts(DIGEST)[1]
    text = all_text(second)
    assert "used 350 since the last digest" in text
    assert "Image Generation - B* was used up" in text
    assert "Expiring soon" in text and "Video Generation - A" in text
    assert "12 h" in text


def test_digest_dry_run_prints_valid_blocks_and_posts_nothing(
    kling: FakeKling, slack: FakeSlack, database_url: str
) -> None:
    """`kling-bot digest --dry-run` prints {channel, text, blocks} as JSON and sends nothing to Slack."""
    env = {
        "KLING_API_BASE": kling.url,
        "KLING_API_KEY": "kling-api-key-test",
        "DATABASE_URL": database_url,
        "DIGEST_CHANNEL": DIGEST,
        "DIGEST_TIMEZONE": "America/New_York",
        "SLACK_API_URL": slack.api_url,
    }
    out, err = io.StringIO(), io.StringIO()
    assert main(["digest", "--dry-run"], environ=env, stdout=out, stderr=err) == 0, err.getvalue()
    payload = json.loads(out.getvalue())
    assert set(payload) == {"channel", "text", "blocks"} and payload["channel"] == DIGEST
    assert_valid_message(payload)
    assert "America/New_York" in all_text(payload)
    assert slack.calls == []


def test_digest_command_posts_once_per_day(kling: FakeKling, slack: FakeSlack, database_url: str) -> None:
    """`kling-bot digest` posts today's digest; a second run the same day says it was already posted."""
    env = {
        "KLING_API_BASE": kling.url,
        "KLING_API_KEY": "kling-api-key-test",
        "DATABASE_URL": database_url,
        "DIGEST_CHANNEL": DIGEST,
        "SLACK_BOT_TOKEN": "xoxb-test-bot-token",
        "SLACK_API_URL": slack.api_url,
    }
    out = io.StringIO()
    assert main(["digest"], environ=env, stdout=out, stderr=io.StringIO()) == 0
    assert "Posted" in out.getvalue()
    kling.qps_interval_s = 0
    out = io.StringIO()
    assert main(["digest"], environ=env, stdout=out, stderr=io.StringIO()) == 0
    assert "already posted" in out.getvalue()
    assert len([c for c in slack.calls_to("chat.postMessage") if c["channel"] == DIGEST]) == 1


def test_digest_command_without_channel_names_the_setting(kling: FakeKling, database_url: str) -> None:
    """Without DIGEST_CHANNEL, `digest` exits 2 naming it."""
    err = io.StringIO()
    env = {"KLING_API_KEY": "k", "SLACK_BOT_TOKEN": "xoxb-1", "DATABASE_URL": database_url}
    assert main(["digest"], environ=env, stdout=io.StringIO(), stderr=err) == 2
    assert "DIGEST_CHANNEL" in err.getvalue()


def test_digest_with_many_packs_stays_within_limits(berlin: World) -> None:
    """Hundreds of families and expiring packs still give a valid digest."""
    now = berlin.clock.now()
    berlin.kling.packs = [
        make_pack(f"Family {i} - pack {i}", pack_id=f"m{i}", expires_in_days=2 + i % 4, now=now) for i in range(400)
    ]
    berlin.set_time(now + timedelta(minutes=31))
    berlin.jobs.check()
    berlin.set_time(datetime(2026, 3, 28, 8, 0, 30, tzinfo=UTC))
    berlin.jobs.digest()
    [post] = berlin.posts(DIGEST)
    assert_valid_message(post)
    assert "more families" in all_text(post)


def test_first_digest_without_history_says_there_is_none(berlin: World) -> None:
    """A digest before any history (no poll yet, or seconds after the first) says so instead of "used 0 in 24 h"."""
    berlin.set_time(datetime(2026, 3, 28, 8, 0, 30, tzinfo=UTC))
    berlin.jobs.digest()  # its own poll is the first: no history
    [post] = berlin.posts(DIGEST)
    text = all_text(post)
    assert "no history yet" in text and "in the last 24 h" not in text and "used 0" not in text


def test_digest_with_minutes_of_history_says_what_it_covers(berlin: World) -> None:
    """With history starting 25 minutes before, usage is "since <that time>", never "in the last 24 h"."""
    berlin.set_time(datetime(2026, 3, 28, 7, 35, tzinfo=UTC))
    berlin.jobs.check()
    now = berlin.clock.now()
    berlin.kling.packs = [make_pack("Video Generation - A", total=10000, remaining=7735, pack_id="a", now=now)]
    berlin.set_time(datetime(2026, 3, 28, 8, 0, 30, tzinfo=UTC))
    berlin.jobs.digest()
    [post] = berlin.posts(DIGEST)
    text = all_text(post)
    assert "in the last 24 h" not in text
    assert "since <!date^" + str(int(datetime(2026, 3, 28, 7, 35, tzinfo=UTC).timestamp())) in text
    assert "when the bot started watching" in text
