"""Defects a new user and an adversarial tester found in warnings and threshold DMs (issue 6),
each pinned as a scenario: stand-in Kling and Slack, a real database, a fake clock."""

from __future__ import annotations

import random
import string
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select

from bot.store import schema
from bot.store.db import to_ms
from tests.blocks import all_text, assert_valid_message
from tests.stand_ins.kling import FakeKling, make_pack
from tests.stand_ins.slack import FakeSlack
from tests.world import ALERTS, World


@pytest.fixture
def world(kling: FakeKling, slack: FakeSlack, database_url: str) -> Iterator[World]:
    w = World(kling, slack, database_url)
    yield w
    w.close()


def test_family_with_only_a_pack_not_yet_active_is_not_below_a_threshold(world: World) -> None:
    """A family whose only pack is bought but not yet effective has no level: no "already below", no DM."""
    pending = make_pack(
        "Virtual Try-On - 500 entries",
        total=500,
        remaining=500,
        status="toBeOnline",
        pack_id="vt",
        purchased_days_ago=1,
    )
    world.kling.packs = [make_pack("Video Generation - A", total=1000, remaining=900, pack_id="v"), pending]
    world.check()
    reply = all_text(world.command("subscribe 20%"))
    assert "Already below" not in reply
    assert "Virtual Try-On" in reply and "nothing active yet" in reply
    world.check()
    world.check()
    assert world.dms("U_ALICE") == []
    # Once it is online and really falls below, it fires.
    world.kling.packs[1] = {**pending, "status": "online", "remaining_quantity": 50}
    world.check()
    [dm] = world.dms("U_ALICE")
    assert "Virtual Try-On" in dm["text"]


def test_run_out_again_after_a_glitch_is_warned_again(world: World) -> None:
    """A pack reported used up by mistake, then back for two polls, then really used up: two warnings."""
    pack = make_pack("Video Generation - A", remaining=300, pack_id="g1", expires_in_days=60)
    world.kling.packs = [pack]
    world.check()
    world.kling.packs = [{**pack, "status": "runOut", "remaining_quantity": 0}]
    world.check()
    world.kling.packs = [pack]
    world.check()
    world.check()  # the recovery holds for a poll: re-armed
    world.kling.packs = [{**pack, "status": "runOut", "remaining_quantity": 0}]
    world.check()
    world.check()
    posts = world.posts(ALERTS)
    assert len(posts) == 2 and all("used up" in p["text"] for p in posts)


def test_a_one_poll_recovery_does_not_re_arm(world: World) -> None:
    """Used up, online for a single poll, used up again: one warning (flapping guard)."""
    pack = make_pack("Video Generation - A", remaining=300, pack_id="g2", expires_in_days=60)
    world.kling.packs = [pack]
    world.check()
    for status in ("runOut", "online", "runOut", "online", "runOut"):
        world.kling.packs = [{**pack, "status": status, "remaining_quantity": 0 if status == "runOut" else 300}]
        world.check()
    assert len(world.posts(ALERTS)) == 1


def test_expiry_moved_later_then_close_again_is_reminded_again(world: World) -> None:
    """A warned expiry that moves past the window (and holds) re-arms: the next approach warns again."""
    pack = make_pack("Video Generation - A", total=1000, remaining=500, pack_id="x1", expires_in_days=5)
    world.kling.packs = [pack]
    world.check()
    assert len(world.posts(ALERTS)) == 1
    later = pack["invalid_time"] + int(timedelta(days=30).total_seconds() * 1000)
    world.kling.packs = [{**pack, "invalid_time": later}]
    world.check()
    world.check()
    world.clock.advance(timedelta(days=29).total_seconds())  # about 6 days left again
    world.check()
    world.check()
    posts = world.posts(ALERTS)
    assert len(posts) == 2 and "expires" in posts[1]["text"]


def test_rotating_pack_ids_are_the_same_packs_and_state_stays_bounded(world: World) -> None:
    """Kling re-issuing the same packs under new ids at every poll announces nothing and keeps pack_state small."""
    base = [
        make_pack(f"Video Generation - {i}", remaining=100 + i, pack_id=f"r0-{i}", expires_in_days=90)
        for i in range(20)
    ]
    world.kling.packs = base
    world.check()
    for poll in range(1, 6):
        world.kling.packs = [{**p, "resource_pack_id": f"r{poll}-{i}"} for i, p in enumerate(base)]
        world.check()
    assert world.posts(ALERTS) == []
    with world.services.store.engine.connect() as conn:  # type: ignore[union-attr]
        rows = conn.execute(select(func.count()).select_from(schema.pack_state)).scalar()
    assert rows == 20
    # A real change under the newest ids still warns, once.
    world.kling.packs = [{**p, "status": "runOut", "remaining_quantity": 0} for p in world.kling.packs[:1]] + list(
        world.kling.packs[1:]
    )
    world.check()
    [post] = world.posts(ALERTS)
    assert "used up" in post["text"]


def test_packs_gone_from_kling_are_forgotten_after_a_week(world: World) -> None:
    """Packs Kling stops reporting leave pack_state a week later; a one-poll gap forgets nothing."""
    gone, stay = make_pack("Video Generation - A", pack_id="gone"), make_pack("Image - B", pack_id="stay")
    world.kling.packs = [gone, stay]
    world.check()
    world.kling.packs = []  # one empty reply (a glitch) ...
    world.check()
    world.kling.packs = [gone, stay]
    world.check()  # ... then both are back: nothing announced
    world.kling.packs = [stay]
    for _ in range(10):
        world.clock.advance(timedelta(days=1).total_seconds())
        world.check()
    with world.services.store.engine.connect() as conn:  # type: ignore[union-attr]
        ids = set(conn.execute(select(schema.pack_state.c.pack_id)).scalars())
    assert ids == {"stay"}
    assert world.posts(ALERTS) == []


def test_run_out_advice_follows_the_family_state(world: World) -> None:
    """A used-up pack whose family has plenty left in other packs does not tell people to buy."""
    spent = make_pack("Video Generation - 1,000", total=1000, remaining=5, pack_id="s1")
    rich = make_pack("Video Generation - 30,000", total=30000, remaining=20410, pack_id="s2")
    lone = make_pack("Image Generation - 500", total=500, remaining=5, pack_id="s3")
    world.kling.packs = [spent, rich, lone]
    world.check()
    world.kling.packs = [{**spent, "status": "runOut", "remaining_quantity": 0}, rich]
    world.kling.packs.append({**lone, "status": "runOut", "remaining_quantity": 0})
    world.check()
    posts = {("Video" if "Video" in p["text"] else "Image"): all_text(p) for p in world.posts(ALERTS)}
    assert "20,410 left" in posts["Video"] and "Buy" not in posts["Video"] and "buy" not in posts["Video"]
    assert "buy a new pack" in posts["Image"]


def test_a_huge_threshold_is_refused_and_a_bad_stored_row_stops_nobody(world: World) -> None:
    """`subscribe` with 400 digits is refused; an infinite threshold stored earlier skips only itself."""
    world.kling.packs = [make_pack("Video Generation - A", total=1000, remaining=900, pack_id="h1")]
    world.check()
    reply = all_text(world.command("subscribe " + "9" * 400))
    assert "too large" in reply and "I'll DM" not in reply
    assert world.command("subscriptions") and "no threshold subscriptions" in all_text(world.command("subscriptions"))
    with world.services.store.transaction() as tx:  # type: ignore[union-attr]
        tx.conn.execute(
            insert(schema.subscriptions).values(
                user_id="U_MALLORY", family="", kind="absolute", value=float("inf"), created_at=to_ms(world.clock.now())
            )
        )
    world.command("subscribe 50%", user_id="U_BOB")
    world.kling.packs = [make_pack("Video Generation - A", total=1000, remaining=100, pack_id="h1")]
    report = world.check()
    assert report is not None
    assert len(world.dms("U_BOB")) == 1 and world.dms("U_MALLORY") == []


def test_a_removed_user_gets_no_more_dms(kling: FakeKling, slack: FakeSlack, database_url: str) -> None:
    """Someone removed from KLING_ALLOWED_USERS after subscribing is not DMed, while allowed people still are."""
    w = World(kling, slack, database_url, KLING_ALLOWED_USERS="U_ALICE,U_BOB")
    try:
        kling.packs = [make_pack("Video Generation - A", total=1000, remaining=900, pack_id="a1")]
        w.check()
        w.command("subscribe 50%", user_id="U_ALICE")
        w.command("subscribe 50%", user_id="U_BOB")
        w.env["KLING_ALLOWED_USERS"] = "U_BOB"
        w.restart()
        kling.packs = [make_pack("Video Generation - A", total=1000, remaining=100, pack_id="a1")]
        w.check()
        assert w.dms("U_ALICE") == [] and len(w.dms("U_BOB")) == 1
    finally:
        w.close()


def test_long_ids_and_names_behave_the_same_on_every_database(world: World) -> None:
    """Long (and hard to compress) ids and family names work on SQLite and PostgreSQL alike; longer ones are skipped."""
    rng = random.Random(7)
    long_id = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(500))
    huge_family = "".join(rng.choice("Ωж漢字ab") for _ in range(480))
    pack = make_pack(f"{huge_family} - 100 entries", total=100, remaining=50, pack_id=long_id, expires_in_days=60)
    world.kling.packs = [pack]
    world.check()
    assert "I'll DM you" in all_text(world.command("subscribe 20% for " + huge_family[:150]))
    reply = all_text(world.command("subscribe 20% for " + "x" * 5000))
    assert "at most 200 characters" in reply
    # A pack whose id is longer than any real one is skipped; the others still count.
    world.kling.packs = [pack, make_pack("Video - X", pack_id="y" * 600)]
    world.check()
    world.kling.packs = [{**pack, "status": "runOut", "remaining_quantity": 0}]
    world.check()
    world.kling.packs = [{**pack, "remaining_quantity": 10}]
    world.check()
    world.check()
    posts = world.posts(ALERTS)
    for post in posts:
        assert_valid_message(post)
    assert len([p for p in posts if "used up" in p["text"]]) == 1
    [dm] = world.dms("U_ALICE")
    assert_valid_message(dm)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("subscribe 20 % for Video", "below 20%"),
        ("subscribe 500 units", "below 500 units"),
        ("sub 1,500 unit", "1,500"),
    ],
)
def test_thresholds_with_a_space_or_the_word_units_are_understood(world: World, text: str, expected: str) -> None:
    """`20 %` and `500 units` are one threshold each, as the help teaches, not "more than one threshold"."""
    world.kling.packs = [make_pack("Video Generation - A", total=1000, remaining=900, pack_id="u1")]
    world.check()
    reply = all_text(world.command(text))
    assert "I'll DM you" in reply and expected in reply


def test_an_ambiguous_family_lists_the_matches(world: World) -> None:
    """`for gen` matching two families says it is ambiguous and names both; nothing is saved."""
    world.kling.packs = [
        make_pack("Video Generation - A", pack_id="m1"),
        make_pack("Image Generation - B", pack_id="m2"),
        make_pack("Lip Sync - C", pack_id="m3"),
    ]
    world.check()
    reply = all_text(world.command("subscribe 20% for gen"))
    assert "matches 2 families" in reply and "Video Generation" in reply and "Image Generation" in reply
    assert "Lip Sync" not in reply and "Nothing was saved" in reply


def test_subscribing_while_kling_is_down_says_the_family_was_not_checked(world: World) -> None:
    """With Kling unreachable, `subscribe` saves the threshold and says it could not check the family."""
    world.kling.fail_next(50, 503, 5001, "maintenance")
    reply = all_text(world.command("subscribe 20% for video"))
    assert "could not be asked" in reply and "whether that family exists" in reply
    assert "Checked against Kling" not in reply


def test_a_channel_threshold_posts_in_the_channel(world: World) -> None:
    """`subscribe 20% here` posts to that channel when a family falls below it, once, and is listed as such."""
    world.kling.packs = [make_pack("Video Generation - A", total=1000, remaining=900, pack_id="c1")]
    world.check()
    reply = all_text(world.command("subscribe 20% for video here"))
    assert "post in <#C_GENERAL>" in reply
    assert "posts in <#C_GENERAL>" in all_text(world.command("subscriptions"))
    world.kling.packs = [make_pack("Video Generation - A", total=1000, remaining=100, pack_id="c1")]
    world.check()
    world.check()
    [post] = world.posts("C_GENERAL")
    assert "this channel's threshold of 20%" in post["text"] and world.dms("U_ALICE") == []
    assert "Stopped" in all_text(world.command("unsubscribe 20% for video here"))


def test_only_admins_add_channel_thresholds_when_admins_are_set(
    kling: FakeKling, slack: FakeSlack, database_url: str
) -> None:
    """With KLING_ADMIN_USERS set, others are told a channel threshold is for admins; nothing is saved."""
    w = World(kling, slack, database_url, KLING_ADMIN_USERS="U_BOSS")
    try:
        kling.packs = [make_pack("Video Generation - A", pack_id="a")]
        w.check()
        assert "Only the bot's admins" in all_text(w.command("subscribe 20% here", user_id="U_ALICE"))
        assert "no threshold subscriptions" in all_text(w.command("subscriptions", user_id="U_ALICE"))
        assert "post in <#C_GENERAL>" in all_text(w.command("subscribe 20% here", user_id="U_BOSS"))
    finally:
        w.close()
