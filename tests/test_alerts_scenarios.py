"""Warnings, threshold DMs and their exactly-once delivery, as scenarios over time:
stand-in Kling and Slack, a real SQLite database, a fake clock, restarts and replicas."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest

from tests.blocks import all_text, assert_valid_message
from tests.stand_ins.kling import FakeKling, make_pack
from tests.stand_ins.slack import FakeSlack
from tests.world import ALERTS, World


@pytest.fixture
def world(kling: FakeKling, slack: FakeSlack, database_url: str) -> Iterator[World]:
    w = World(kling, slack, database_url)
    yield w
    w.close()


def set_packs(kling: FakeKling, *packs: dict) -> None:
    kling.packs = list(packs)


def test_first_check_warns_about_nothing_already_over(world: World) -> None:
    """The first check on install records a baseline: no warning for packs long expired or used up."""
    set_packs(
        world.kling,
        make_pack("Video Generation - old", status="expired", expires_in_days=-40, pack_id="old"),
        make_pack("Video Generation - spent", status="runOut", remaining=0, pack_id="spent"),
        make_pack("Image Generation - live", expires_in_days=90, pack_id="live"),
    )
    report = world.check()
    assert report is not None and report.baseline
    assert world.posts(ALERTS) == []


def test_run_out_warns_exactly_once_across_checks_and_restarts(world: World) -> None:
    """A pack going runOut gives one warning: not again at the next check, nor after a restart."""
    pack = make_pack("Video Generation - 10,000 entries", remaining=300, pack_id="p1", expires_in_days=60)
    set_packs(world.kling, pack)
    world.check()
    set_packs(world.kling, {**pack, "remaining_quantity": 0, "status": "runOut"})
    world.check()
    world.check()
    world.restart()
    world.check()
    [post] = world.posts(ALERTS)
    assert_valid_message(post)
    assert "Video Generation - 10,000 entries" in post["text"] and "used up" in post["text"]
    assert "will not be warned again" in all_text(post)


def test_expired_pack_warning_says_how_much_was_unused(world: World) -> None:
    """A pack that expires with quantity left is announced once with the unused amount."""
    pack = make_pack("Image Generation - 5,000 entries", total=5000, remaining=1234, pack_id="p2", expires_in_days=60)
    set_packs(world.kling, pack)
    world.check()
    set_packs(world.kling, {**pack, "status": "expired"})
    world.check()
    world.check()
    [post] = world.posts(ALERTS)
    assert "1,234 of 5,000 went unused" in all_text(post)


def test_expiry_is_warned_at_seven_days_then_once_more_at_one_day(world: World) -> None:
    """A pack with quantity left is warned once inside EXPIRY_WARNING_DAYS and once more inside a day."""
    set_packs(world.kling, make_pack("Video Generation - A", remaining=500, pack_id="e1", expires_in_days=10))
    world.check()
    assert world.posts(ALERTS) == []
    world.clock.advance(timedelta(days=4).total_seconds())  # 6 days left
    world.check()
    world.check()
    [first] = world.posts(ALERTS)
    assert "expires" in first["text"] and "one more reminder" in all_text(first)
    world.clock.advance(timedelta(days=5, hours=12).total_seconds())  # 12 hours left
    world.check()
    world.restart()
    world.check()
    posts = world.posts(ALERTS)
    assert len(posts) == 2
    assert "last reminder" in all_text(posts[1]) and re.search(r"\(in 1\d hours\)", all_text(posts[1]))


def test_expiring_used_up_pack_is_not_warned(world: World) -> None:
    """A pack about to expire with nothing left is no news: no expiry warning."""
    set_packs(world.kling, make_pack("Video Generation - A", remaining=0, pack_id="e2", expires_in_days=3))
    world.check()
    assert world.posts(ALERTS) == []


def test_new_pack_and_coming_online_are_announced_once(world: World) -> None:
    """A newly bought pack is announced, and again when it comes online; each once."""
    set_packs(world.kling, make_pack("Video Generation - A", pack_id="a"))
    world.check()
    pending = make_pack("Video Generation - B", pack_id="b", status="toBeOnline", purchased_days_ago=0.1)
    set_packs(world.kling, make_pack("Video Generation - A", pack_id="a"), pending)
    world.check()
    world.check()
    set_packs(world.kling, make_pack("Video Generation - A", pack_id="a"), {**pending, "status": "online"})
    world.check()
    world.check()
    texts = [p["text"] for p in world.posts(ALERTS)]
    assert len(texts) == 2
    assert "New pack" in texts[0] and "Video Generation - B" in texts[0]
    assert "now active" in texts[1]


def test_slack_outage_delays_a_warning_without_losing_or_repeating_it(world: World) -> None:
    """While Slack answers 429 (Retry-After) or 500 the warning stays owed; it is sent once when Slack is back."""
    pack = make_pack("Video Generation - A", pack_id="o1", remaining=10)
    set_packs(world.kling, pack)
    world.check()
    set_packs(world.kling, {**pack, "status": "runOut", "remaining_quantity": 0})
    world.slack.fail("chat.postMessage", times=1, status=429, retry_after=120)
    world.check()
    assert world.posts(ALERTS) == []
    world.clock.advance(60)  # before Retry-After: not tried again yet
    world.jobs.deliver()
    assert len([c for c in world.slack.calls_to("chat.postMessage") if c.get("_failed")]) == 1
    world.slack.fail("chat.postMessage", times=1, status=500, error="internal_error")
    world.clock.advance(70)
    world.jobs.deliver()
    assert world.posts(ALERTS) == []
    world.restart()  # the owed warning survives the restart
    world.clock.advance(600)
    world.check()
    world.check()
    [post] = world.posts(ALERTS)
    assert "used up" in post["text"]


def test_two_replicas_on_one_database_send_one_warning(kling: FakeKling, slack: FakeSlack, database_url: str) -> None:
    """Two processes checking the same database at the same moment post the warning once."""
    first = World(kling, slack, database_url)
    second = World(kling, slack, database_url, clock=first.clock)
    try:
        pack = make_pack("Video Generation - A", pack_id="r1", remaining=10)
        set_packs(kling, pack)
        first.check()
        set_packs(kling, {**pack, "status": "runOut", "remaining_quantity": 0})
        barrier = threading.Barrier(2)

        def run(w: World) -> None:
            barrier.wait()
            w.jobs.check()

        threads = [threading.Thread(target=run, args=(w,)) for w in (first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        first.check()
        second.check()
        assert len(first.posts(ALERTS)) == 1
    finally:
        first.close()
        second.close()


def test_threshold_dm_fires_once_per_crossing_and_rearms_after_recovery(world: World) -> None:
    """Subscribe 20%: one DM when it falls below, none while it stays low, a second after a recovery and a new fall."""
    pack = make_pack("Video Generation - A", total=1000, remaining=500, pack_id="t1")
    set_packs(world.kling, pack)
    world.check()
    reply = world.command("subscribe 20% for video generation", user_id="U_ALICE")
    assert "Video Generation" in all_text(reply) and "20%" in all_text(reply)
    world.check()
    assert world.dms("U_ALICE") == []

    set_packs(world.kling, {**pack, "remaining_quantity": 150})  # 15%: crossing
    world.check()
    world.check()
    set_packs(world.kling, {**pack, "remaining_quantity": 180})  # still below
    world.restart()
    world.check()
    [dm] = world.dms("U_ALICE")
    assert_valid_message(dm)
    assert "below your threshold of 20%" in dm["text"] and "150 / 1,000" in all_text(dm)
    assert "until it recovers above 25%" in all_text(dm)
    assert world.slack.calls_to("conversations.open")[0]["users"] == "U_ALICE"

    set_packs(world.kling, {**pack, "remaining_quantity": 220})  # 22%: above 20 but within the margin
    world.check()
    set_packs(world.kling, {**pack, "remaining_quantity": 190})
    world.check()
    assert len(world.dms("U_ALICE")) == 1  # no flapping

    bought = make_pack("Video Generation - B", total=1000, remaining=1000, pack_id="t2")
    set_packs(world.kling, {**pack, "remaining_quantity": 190}, bought)  # 59.5%: recovered
    world.check()
    set_packs(world.kling, {**pack, "remaining_quantity": 100}, {**bought, "remaining_quantity": 200})  # 15%
    world.check()
    world.check()
    assert len(world.dms("U_ALICE")) == 2


def test_absolute_threshold_for_every_family(world: World) -> None:
    """`subscribe 500` without a family watches each family on its own."""
    set_packs(
        world.kling,
        make_pack("Video Generation - A", total=1000, remaining=900, pack_id="v"),
        make_pack("Image Generation - B", total=1000, remaining=900, pack_id="i"),
    )
    world.check()
    world.command("subscribe 500", user_id="U_BOB")
    set_packs(
        world.kling,
        make_pack("Video Generation - A", total=1000, remaining=900, pack_id="v"),
        make_pack("Image Generation - B", total=1000, remaining=400, pack_id="i"),
    )
    world.check()
    [dm] = world.dms("U_BOB")
    assert "Image Generation" in dm["text"] and "500 units" in dm["text"]


def test_subscription_commands_list_and_remove(world: World) -> None:
    """subscriptions lists mine; unsubscribe removes one; a bare unsubscribe with several asks which."""
    set_packs(world.kling, make_pack("Video Generation - A", pack_id="s"))
    world.command("subscribe 20%")
    world.command("subscribe 500 for video")
    again = world.command("subscribe 20%")
    assert "already have" in all_text(again)
    listed = all_text(world.command("subscriptions"))
    assert "below 20% for any family" in listed and "below 500 units for *Video Generation*" in listed
    assert "say which" in all_text(world.command("unsubscribe"))
    assert "Stopped" in all_text(world.command("unsubscribe 20%"))
    assert "20%" not in all_text(world.command("subscriptions"))
    assert "Stopped" in all_text(world.command("unsubscribe all"))
    assert "no threshold subscriptions" in all_text(world.command("subscriptions"))


@pytest.mark.parametrize(
    "text", ["subscribe", "subscribe lots", "subscribe 120%", "subscribe 20% for", "unsubscribe x"]
)
def test_bad_subscription_input_gets_usage(world: World, text: str) -> None:
    """Unparseable subscribe/unsubscribe input is answered with what was wrong and the usage; nothing saved."""
    reply = world.command(text)
    assert reply["response_type"] == "ephemeral"
    assert "Usage:" in all_text(reply)
    assert "no threshold subscriptions" in all_text(world.command("subscriptions"))


def test_subscribe_to_unknown_family_lists_the_real_ones(world: World) -> None:
    """A family that does not exist is refused with the families that do."""
    set_packs(world.kling, make_pack("Video Generation - A", pack_id="f"))
    reply = all_text(world.command("subscribe 20% for lipsync"))
    assert "No pack family matches “lipsync”" in reply and "Video Generation" in reply


def test_many_warnings_at_once_are_batched_not_flooded(world: World) -> None:
    """120 packs entering their last week at once give a couple of batched messages, each pack named once."""
    packs = [make_pack(f"Video Generation - batch {i:03d}", pack_id=f"b{i}", expires_in_days=20) for i in range(120)]
    set_packs(world.kling, *packs)
    world.check()
    world.clock.advance(timedelta(days=14).total_seconds())
    world.check()
    world.check()
    posts = world.posts(ALERTS)
    assert 1 <= len(posts) <= 3
    for post in posts:
        assert_valid_message(post)
    text = "\n".join(all_text(p) for p in posts)
    for i in range(120):
        assert text.count(f"Video Generation - batch {i:03d}") == 1


def test_several_families_crossing_at_once_make_one_dm(world: World) -> None:
    """A threshold on every family, crossed by three families in one poll, gives the person one DM naming all three."""
    names = ["Video Generation", "Image Generation", "Virtual Try-On"]
    set_packs(world.kling, *[make_pack(f"{n} - A", total=100, remaining=90, pack_id=n) for n in names])
    world.check()
    world.command("subscribe 50%", user_id="U_CAROL")
    set_packs(world.kling, *[make_pack(f"{n} - A", total=100, remaining=10, pack_id=n) for n in names])
    world.check()
    world.check()
    [dm] = world.dms("U_CAROL")
    assert_valid_message(dm)
    text = all_text(dm)
    assert "3 thresholds crossed" in text
    for name in names:
        assert text.count(f"*{name}*") == 1


def test_old_sent_notifications_are_pruned_without_resending(world: World) -> None:
    """Months later, sent warnings are forgotten to keep the database small, and nothing is sent again."""
    pack = make_pack("Video Generation - A", pack_id="old1", remaining=10, expires_in_days=400)
    set_packs(world.kling, pack)
    world.check()
    set_packs(world.kling, {**pack, "status": "runOut", "remaining_quantity": 0})
    world.check()
    assert len(world.posts(ALERTS)) == 1
    world.clock.advance(timedelta(days=120).total_seconds())
    world.check()
    with world.services.store.transaction() as tx:
        assert tx.outbox_counts()["owed"] == 0 and tx.outbox_counts()["sent"] == 0
    world.check()
    assert len(world.posts(ALERTS)) == 1


def test_subscription_made_while_kling_is_down_still_matches_its_family(world: World) -> None:
    """`subscribe 20% for video` while Kling refuses is kept, and fires for Video Generation later."""
    world.kling.fail_next(1, 429, 1101, "arrears")
    reply = all_text(world.command("subscribe 20% for video", user_id="U_DAN"))
    assert "I'll DM you" in reply
    pack = make_pack("Video Generation - A", total=100, remaining=50, pack_id="d1")
    set_packs(world.kling, pack)
    world.check()
    set_packs(world.kling, {**pack, "remaining_quantity": 5})
    world.check()
    [dm] = world.dms("U_DAN")
    assert "Video Generation" in dm["text"]
