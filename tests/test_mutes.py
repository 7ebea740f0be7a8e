"""Mute on a posted warning (issue 9): pressed as Slack sends it, it stops that pack's next
warning (recorded as skipped, not sent later) while other packs still warn; the message says
who muted it and until when, with an Unmute button; the Home tab lists it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from slack_bolt import BoltRequest

from bot.slack.app import build_app
from tests.blocks import all_text, assert_valid_message
from tests.slack_requests import interaction_body, signed_headers
from tests.stand_ins.kling import FakeKling, make_pack
from tests.stand_ins.slack import SIGNING_SECRET, FakeSlack
from tests.world import ALERTS, World


@pytest.fixture
def world(kling: FakeKling, slack: FakeSlack, database_url: str) -> Iterator[World]:
    w = World(kling, slack, database_url)
    yield w
    w.close()


def press_on_message(world: World, message: dict[str, Any], action_id: str, key: str, user: str = "U_ALICE") -> None:
    """A `block_actions` payload for a button on a posted message, dispatched through Bolt, signed."""
    [button] = [
        e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"] if e["action_id"] == action_id
    ]
    body = interaction_body(
        "block_actions",
        user=user,
        container={"type": "message", "message_ts": "1.2", "channel_id": ALERTS, "is_ephemeral": False},
        channel={"id": ALERTS, "name": "alerts"},
        message={"type": "message", "ts": "1.2", "text": message.get("text", ""), "blocks": message["blocks"]},
        response_url=world.slack.response_url(key),
        actions=[
            {"type": "button", "action_id": action_id, "block_id": "mute", "value": button["value"], "action_ts": "1"}
        ],
    )
    headers = {k.lower(): [v] for k, v in signed_headers(SIGNING_SECRET, body).items()}
    assert build_app(world.services).dispatch(BoltRequest(body=body, headers=headers)).status == 200


def blocks_of(post: dict[str, Any]) -> dict[str, Any]:
    blocks = post["blocks"]
    return {**post, "blocks": json.loads(blocks) if isinstance(blocks, str) else blocks}


def test_mute_stops_that_packs_next_warning_only(world: World) -> None:
    """Muted after its 7-day reminder, the pack's last-day reminder is skipped; another pack's still comes."""
    a = make_pack(
        "Video Generation - A", total=1000, remaining=900, pack_id="a", purchased_days_ago=1.5, expires_in_days=5
    )
    b = make_pack(
        "Image Generation - B", total=1000, remaining=900, pack_id="b", purchased_days_ago=1.5, expires_in_days=5.2
    )
    world.kling.packs = [a, b]
    world.check()
    posts = [blocks_of(p) for p in world.posts(ALERTS)]
    [warning_a] = [p for p in posts if "Video Generation - A" in p["text"]]
    assert_valid_message(warning_a)
    press_on_message(world, warning_a, "mute", "m1")
    [updated] = world.slack.wait_for_responses("m1")
    assert updated.get("replace_original") is True
    assert "Muted by user U_ALICE until" in all_text(updated) and "unmute" in json.dumps(updated["blocks"])
    world.clock.advance(timedelta(days=4, hours=12).total_seconds())  # both within their last day
    world.check()
    world.check()
    last_day = [p["text"] for p in world.posts(ALERTS)][len(posts) :]
    assert any("Image Generation - B" in t for t in last_day)
    assert not any("Video Generation - A" in t for t in last_day)
    with world.services.store.transaction() as tx:  # type: ignore[union-attr]
        skipped = tx.conn.exec_driver_sql("SELECT skipped_reason FROM outbox WHERE key LIKE 'expiring:a:1d%'").scalar()
    assert skipped and "muted by U_ALICE" in skipped


def test_unmute_lets_warnings_through_again(world: World) -> None:
    """Unmute on the muted message removes the mute and says so."""
    world.kling.packs = [
        make_pack(
            "Video Generation - A", total=1000, remaining=900, pack_id="a", purchased_days_ago=1.5, expires_in_days=5
        )
    ]
    world.check()
    [warning] = [blocks_of(p) for p in world.posts(ALERTS)]
    press_on_message(world, warning, "mute", "m2")
    [muted] = world.slack.wait_for_responses("m2")
    press_on_message(world, {**muted, "blocks": muted["blocks"]}, "unmute", "m3")
    [unmuted] = world.slack.wait_for_responses("m3")
    assert "Unmuted by user U_ALICE" in all_text(unmuted)
    with world.services.store.transaction() as tx:  # type: ignore[union-attr]
        assert tx.active_mutes(world.clock.now()) == []


def test_only_admins_mute_in_a_shared_channel_when_admins_are_set(
    kling: FakeKling, slack: FakeSlack, database_url: str
) -> None:
    """With KLING_ADMIN_USERS set, someone else's Mute is refused and nothing is muted."""
    w = World(kling, slack, database_url, KLING_ADMIN_USERS="U_BOSS")
    try:
        kling.packs = [
            make_pack(
                "Video Generation - A",
                total=1000,
                remaining=900,
                pack_id="a",
                purchased_days_ago=1.5,
                expires_in_days=5,
            )
        ]
        w.check()
        [warning] = [blocks_of(p) for p in w.posts(ALERTS)]
        press_on_message(w, warning, "mute", "m4", user="U_ALICE")
        [refused] = w.slack.wait_for_responses("m4")
        assert "Only the bot's admins" in all_text(refused)
        with w.services.store.transaction() as tx:  # type: ignore[union-attr]
            assert tx.active_mutes(w.clock.now()) == []
    finally:
        w.close()


def test_stop_this_threshold_on_a_dm_removes_it(world: World) -> None:
    """The DM's "Stop this threshold" removes that threshold for its owner; the DM then says so."""
    world.kling.packs = [make_pack("Video Generation - A", total=1000, remaining=900, pack_id="a")]
    world.check()
    world.command("subscribe 50%")
    world.kling.packs = [make_pack("Video Generation - A", total=1000, remaining=100, pack_id="a")]
    world.check()
    [dm] = [blocks_of(p) for p in world.dms("U_ALICE")]
    press_on_message(world, dm, "threshold_stop", "t1")
    [stopped] = world.slack.wait_for_responses("t1")
    assert "Stopped" in all_text(stopped) and stopped.get("replace_original") is True
    assert "no threshold subscriptions" in all_text(world.command("subscriptions"))
    press_on_message(world, dm, "threshold_stop", "t2")
    [again] = world.slack.wait_for_responses("t2")
    assert "already stopped" in all_text(again)
