"""Buttons, pressed the way Slack sends them: signed `block_actions` payloads over HTTP."""

from __future__ import annotations

import json
import time
from typing import Any

from slack_sdk.models.views import View

from tests.blocks import all_text, assert_valid_message
from tests.conftest import RunningBot
from tests.slack_requests import interaction_body, signed_headers, slash_command_body
from tests.stand_ins.kling import make_pack
from tests.stand_ins.slack import SIGNING_SECRET
from tests.test_home import home_opened, published, view_of


def press(bot: RunningBot, button: dict[str, Any], *, user: str = "U_ALICE", response_key: str | None = None) -> int:
    """Send a `block_actions` payload for `button` as Slack does (form-encoded, signed)."""
    fields: dict[str, Any] = {
        "actions": [
            {
                "type": "button",
                "action_id": button["action_id"],
                "block_id": "b",
                "value": button.get("value", ""),
                "action_ts": str(time.time()),
            }
        ],
    }
    if response_key is not None:
        fields.update(
            container={"type": "message", "message_ts": "1.2", "channel_id": "C_GENERAL", "is_ephemeral": True},
            channel={"id": "C_GENERAL", "name": "general"},
            response_url=bot.slack.response_url(response_key),
        )
    else:
        fields.update(container={"type": "view", "view_id": "V1"}, view={"id": "V1", "type": "home"})
    body = interaction_body("block_actions", user=user, **fields)
    return bot.post(body, signed_headers(SIGNING_SECRET, body)).status_code


def buttons_of(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["action_id"]: e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]}


def ask(bot: RunningBot, text: str, key: str) -> dict[str, Any]:
    body = slash_command_body(text, response_url=bot.slack.response_url(key))
    assert bot.post(body, signed_headers(SIGNING_SECRET, body)).status_code == 200
    return bot.slack.wait_for_answer(key)


def test_the_reply_has_refresh_show_all_and_share_buttons(running_bot: RunningBot) -> None:
    """A balance reply carries Refresh, Show all and Share in channel, and stays valid."""
    running_bot.kling.packs = [make_pack("Video Generation - A")]
    reply = ask(running_bot, "video", "r1")
    assert_valid_message(reply)
    assert set(buttons_of(reply)) == {"balance_refresh", "balance_show_all", "balance_share"}


def test_refresh_replaces_the_message_with_fresh_data(running_bot: RunningBot) -> None:
    """Refresh asks Kling again and replaces the message it is on, keeping the filter."""
    running_bot.kling.packs = [make_pack("Video Generation - A", remaining=5000), make_pack("Image - B")]
    reply = ask(running_bot, "video", "r2")
    running_bot.kling.qps_interval_s = 0
    running_bot.kling.packs = [make_pack("Video Generation - A", remaining=4000), make_pack("Image - B")]
    calls = len(running_bot.kling.calls)
    assert press(running_bot, buttons_of(reply)["balance_refresh"], response_key="r2") == 200
    [*_, fresh] = running_bot.slack.wait_for_responses("r2", 2)
    assert fresh.get("replace_original") is True and fresh["response_type"] == "ephemeral"
    assert "4,000 / 10,000" in all_text(fresh) and "Image - B" not in all_text(fresh)
    assert len(running_bot.kling.calls) == calls + 1


def test_show_all_and_share(running_bot: RunningBot) -> None:
    """Show all adds used-up packs in place; Share posts the balances in the channel for everyone."""
    running_bot.kling.packs = [
        make_pack("Video Generation - A"),
        make_pack("Video - old", status="runOut", remaining=0),
    ]
    reply = ask(running_bot, "", "r3")
    assert "Video - old" not in all_text(reply)
    press(running_bot, buttons_of(reply)["balance_show_all"], response_key="r3")
    [*_, everything] = running_bot.slack.wait_for_responses("r3", 2)
    assert "Video - old" in all_text(everything) and everything.get("replace_original") is True
    press(running_bot, buttons_of(reply)["balance_share"], response_key="r3")
    [*_, shared] = running_bot.slack.wait_for_responses("r3", 3)
    assert shared["response_type"] == "in_channel" and "balance_share" not in buttons_of(shared)


def test_a_button_pressed_by_someone_not_allowed_changes_nothing(kling: Any, slack: Any, database_url: str) -> None:
    """The same access rules as the command: a refused user gets the refusal, not the balances."""
    from tests.conftest import start_bot

    kling.packs = [make_pack("Video Generation - A")]
    for bot in start_bot(kling, slack, database_url, KLING_ALLOWED_USERS="U_ALICE"):
        reply = ask(bot, "", "r4")
        press(bot, buttons_of(reply)["balance_refresh"], user="U_MALLORY", response_key="r4")
        [*_, refused] = bot.slack.wait_for_responses("r4", 2)
        assert "restricted" in all_text(refused) and "5,000" not in all_text(refused)


def test_the_home_tabs_refresh_button_publishes_again(running_bot: RunningBot) -> None:
    """Refresh on the Home tab (a block_actions payload built from the published view) publishes it again."""
    running_bot.kling.packs = [make_pack("Video Generation - A", remaining=5000)]
    home_opened(running_bot, "U_ALICE")
    [first] = published(running_bot, 1)
    button = buttons_of(view_of(first))["home_refresh"]
    running_bot.kling.qps_interval_s = 0
    running_bot.kling.packs = [make_pack("Video Generation - A", remaining=3000)]
    assert press(running_bot, button) == 200
    calls = published(running_bot, 2)
    assert "3,000 / 10,000" in all_text(view_of(calls[-1]))


def test_a_thresholds_remove_button_removes_it_and_says_so(running_bot: RunningBot) -> None:
    """Remove on the Home tab stops that threshold (`subscriptions` agrees); pressing it again says it is gone."""
    running_bot.kling.packs = [make_pack("Video Generation - A")]
    ask(running_bot, "subscribe 20%", "s1")
    ask(running_bot, "subscribe 500 for video", "s2")
    home_opened(running_bot, "U_ALICE")
    [first] = published(running_bot, 1)
    [remove, _] = [
        b["accessory"]
        for b in view_of(first)["blocks"]
        if b.get("accessory", {}).get("action_id") == "threshold_remove"
    ]
    assert press(running_bot, remove) == 200
    second = view_of(published(running_bot, 2)[-1])
    assert "Threshold removed" in all_text(second)
    listed = all_text(ask(running_bot, "subscriptions", "s3"))
    assert "below 20%" not in listed and "below 500 units" in listed
    assert press(running_bot, remove) == 200
    assert "already removed" in all_text(view_of(published(running_bot, 3)[-1]))


def test_someone_else_cannot_remove_my_threshold(running_bot: RunningBot) -> None:
    """A Remove payload carrying another user's threshold id removes nothing."""
    running_bot.kling.packs = [make_pack("Video Generation - A")]
    ask(running_bot, "subscribe 20%", "s4")
    home_opened(running_bot, "U_ALICE")
    [first] = published(running_bot, 1)
    [remove] = [
        b["accessory"]
        for b in view_of(first)["blocks"]
        if b.get("accessory", {}).get("action_id") == "threshold_remove"
    ]
    press(running_bot, remove, user="U_MALLORY")
    published(running_bot, 2)
    assert "below 20%" in all_text(ask(running_bot, "subscriptions", "s5"))


def submit_form(
    bot: RunningBot,
    view: dict[str, Any],
    *,
    value: str,
    unit: str,
    family: str,
    user: str = "U_ALICE",
    channel: str = "",
):
    """Send the modal's `view_submission` as Slack does, with the state a person filled in."""

    def option(v: str) -> dict[str, Any]:
        return {"type": "static_select", "selected_option": {"value": v, "text": {"type": "plain_text", "text": v}}}

    state = {
        "values": {
            "value": {"value": {"type": "plain_text_input", "value": value}},
            "unit": {"unit": option(unit)},
            "family": {"family": option(family)},
            "channel": {"channel": {"type": "conversations_select", "selected_conversation": channel or None}},
        }
    }
    body = interaction_body("view_submission", user=user, view={**view, "id": "VMODAL", "state": state})
    return bot.post(body, signed_headers(SIGNING_SECRET, body))


def test_the_add_a_threshold_form_creates_a_threshold_and_rejects_bad_values_in_place(running_bot: RunningBot) -> None:
    """Add opens a modal of Kling's families; a bad value comes back as the field's error; a good one is stored."""
    running_bot.kling.packs = [make_pack("Video Generation - A"), make_pack("Image Generation - B")]
    home_opened(running_bot, "U_ALICE")
    [first] = published(running_bot, 1)
    assert press(running_bot, buttons_of(view_of(first))["threshold_add"]) == 200
    deadline = time.monotonic() + 20
    while not running_bot.slack.calls_to("views.open"):
        assert time.monotonic() < deadline, "no views.open"
        time.sleep(0.05)
    [opened] = running_bot.slack.calls_to("views.open")
    modal = opened["view"] if isinstance(opened["view"], dict) else json.loads(opened["view"])
    assert modal["type"] == "modal" and opened["trigger_id"]
    View(**modal).validate_json()  # slack_sdk checks the modal's limits
    family_select = next(b for b in modal["blocks"] if b["block_id"] == "family")["element"]
    options = {o["text"]["text"]: o["value"] for o in family_select["options"]}
    assert {"Every family", "Video Generation", "Image Generation"} <= set(options)

    bad = submit_form(running_bot, modal, value="150", unit="percent", family=options["Video Generation"])
    assert bad.status_code == 200
    answer = bad.json()
    assert answer["response_action"] == "errors" and "percent" in answer["errors"]["value"]

    good = submit_form(running_bot, modal, value="25", unit="percent", family=options["Video Generation"])
    assert good.status_code == 200 and not good.text.strip()
    published(running_bot, 2)
    assert "Threshold added" in all_text(view_of(running_bot.slack.calls_to("views.publish")[-1]))
    listed = all_text(ask(running_bot, "subscriptions", "f1"))
    assert "below 25%" in listed and "Video Generation" in listed


def test_the_form_can_send_a_threshold_to_a_channel(running_bot: RunningBot) -> None:
    """Picking a channel in the form makes a channel threshold, listed as posting there."""
    running_bot.kling.packs = [make_pack("Video Generation - A")]
    home_opened(running_bot, "U_ALICE")
    [first] = published(running_bot, 1)
    press(running_bot, buttons_of(view_of(first))["threshold_add"])
    deadline = time.monotonic() + 20
    while not running_bot.slack.calls_to("views.open"):
        assert time.monotonic() < deadline, "no views.open"
        time.sleep(0.05)
    [opened] = running_bot.slack.calls_to("views.open")
    modal = opened["view"] if isinstance(opened["view"], dict) else json.loads(opened["view"])
    View(**modal).validate_json()
    good = submit_form(running_bot, modal, value="30", unit="percent", family="*", channel="C0TEAM")
    assert good.status_code == 200 and not good.text.strip()
    published(running_bot, 2)
    assert "posts in <#C0TEAM>" in all_text(ask(running_bot, "subscriptions", "f2"))
