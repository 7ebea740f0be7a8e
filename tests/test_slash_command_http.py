"""`/kling-balance` end to end: signed HTTP requests to the running bot, replies read at
the response URL, Kling and Slack stood in for on loopback."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.blocks import all_text, assert_valid_message
from tests.conftest import RunningBot
from tests.slack_requests import signed_headers, slash_command_body
from tests.stand_ins.kling import make_pack
from tests.stand_ins.slack import SIGNING_SECRET


def send_command(bot: RunningBot, text: str, key: str, **fields: str):
    body = slash_command_body(text, response_url=bot.slack.response_url(key), **fields)
    return bot.post(body, signed_headers(SIGNING_SECRET, body))


def test_balance_reply_lists_each_active_pack_through_response_url(running_bot: RunningBot) -> None:
    """A signed `/kling-balance` is acked with 200 and answered at the response URL with every active pack."""
    running_bot.kling.packs = [
        make_pack("Video Generation - 10,000 entries", total=10000, remaining=2500, expires_in_days=10),
        make_pack("Image Generation - 5,000 entries", total=5000, remaining=4000, expires_in_days=40),
        make_pack("Video Generation - 500 entries", total=500, remaining=0, status="runOut"),
    ]
    response = send_command(running_bot, "", "r1")
    assert response.status_code == 200
    [reply] = running_bot.slack.wait_for_responses("r1")
    assert reply["response_type"] == "ephemeral"
    assert_valid_message(reply)
    text = all_text(reply)
    assert "Video Generation - 10,000 entries" in text
    assert "2,500 / 10,000" in text
    assert "Image Generation - 5,000 entries" in text
    assert "4,000 / 5,000" in text
    assert "Video Generation - 500 entries" not in text  # used up: only with `all`
    assert "in 10 days" in text and "<!date^" in text
    assert "12 h" in text  # the lag note


def test_ack_returns_while_kling_is_still_answering(running_bot: RunningBot) -> None:
    """The HTTP ack comes back while Kling is still busy; the balance follows at the response URL."""
    gate = threading.Event()
    running_bot.kling.gate = gate
    try:
        response = send_command(running_bot, "", "slow")
        assert response.status_code == 200  # acked although Kling has not answered
        running_bot.kling.wait_for_calls(1)
        assert running_bot.slack.responses["slow"] == []  # Kling is held: nothing to show yet
    finally:
        gate.set()
    [reply] = running_bot.slack.wait_for_responses("slow")
    assert "Video Generation" in all_text(reply)


def test_forged_signature_is_rejected_with_401(running_bot: RunningBot) -> None:
    """A request signed with the wrong secret gets 401 and never reaches Kling."""
    body = slash_command_body("", response_url=running_bot.slack.response_url("forged"))
    response = running_bot.post(body, signed_headers("not-the-secret", body))
    assert response.status_code == 401
    assert running_bot.kling.calls == []


def test_stale_timestamp_is_rejected_with_401(running_bot: RunningBot) -> None:
    """A correctly signed request older than five minutes (a replay) gets 401."""
    body = slash_command_body("", response_url=running_bot.slack.response_url("old"))
    response = running_bot.post(body, signed_headers(SIGNING_SECRET, body, timestamp=int(time.time()) - 600))
    assert response.status_code == 401


def test_tampered_body_is_rejected_with_401(running_bot: RunningBot) -> None:
    """A body changed after signing gets 401."""
    body = slash_command_body("", response_url=running_bot.slack.response_url("t"))
    headers = signed_headers(SIGNING_SECRET, body)
    response = running_bot.post(body.replace("U_ALICE", "U_MALLORY"), headers)
    assert response.status_code == 401


def test_burst_of_50_commands_makes_one_kling_call(running_bot: RunningBot) -> None:
    """50 concurrent commands are all acked and answered from a single Kling call, with no 429."""
    running_bot.kling.delay_s = 0.5
    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(lambda i: send_command(running_bot, "", f"b{i}").status_code, range(50)))
    assert statuses == [200] * 50
    for i in range(50):
        [reply] = running_bot.slack.wait_for_responses(f"b{i}")
        assert "Video Generation" in all_text(reply)
    assert len(running_bot.kling.calls) == 1
    assert running_bot.kling.rate_limited == 0


def test_share_posts_in_channel(running_bot: RunningBot) -> None:
    """`share` answers with response_type in_channel so everyone sees it."""
    send_command(running_bot, "share", "s")
    [reply] = running_bot.slack.wait_for_responses("s")
    assert reply["response_type"] == "in_channel"
    assert "Video Generation" in all_text(reply)


def test_all_includes_expired_and_used_up_packs(running_bot: RunningBot) -> None:
    """`all` lists expired and used-up packs too, with their status."""
    running_bot.kling.packs = [
        make_pack("Video Generation - A", status="online"),
        make_pack("Video Generation - B", status="expired", expires_in_days=-3),
        make_pack("Image Generation - C", status="runOut", remaining=0),
    ]
    send_command(running_bot, "all", "a")
    [reply] = running_bot.slack.wait_for_responses("a")
    text = all_text(reply)
    assert "Video Generation - B" in text and "Expired" in text
    assert "Image Generation - C" in text and "Used up" in text
    assert "3 days ago" in text


def test_name_filter_without_match_says_so(running_bot: RunningBot) -> None:
    """Words that match no pack name get a sentence saying nothing matched."""
    send_command(running_bot, "lipsync", "f")
    [reply] = running_bot.slack.wait_for_responses("f")
    assert_valid_message(reply)
    assert "No pack name contains “lipsync”" in all_text(reply)


def test_name_filter_is_case_insensitive_substring(running_bot: RunningBot) -> None:
    """`/kling-balance video` shows only packs whose name contains "video", in any case."""
    running_bot.kling.packs = [make_pack("Video Generation - A"), make_pack("Image Generation - B")]
    send_command(running_bot, "VIDEO", "v")
    [reply] = running_bot.slack.wait_for_responses("v")
    text = all_text(reply)
    assert "Video Generation - A" in text and "Image Generation - B" not in text


def test_help_shows_usage(running_bot: RunningBot) -> None:
    """`help` explains every option, ephemerally, without asking Kling."""
    send_command(running_bot, "help", "h")
    [reply] = running_bot.slack.wait_for_responses("h")
    assert reply["response_type"] == "ephemeral"
    text = all_text(reply)
    for word in ("all", "share", "refresh", "help"):
        assert f"/kling-balance {word}" in text
    assert running_bot.kling.calls == []


@pytest.mark.bot_env(KLING_ALLOWED_USERS="U_BOSS, U_FINANCE")
def test_user_outside_allow_list_is_refused_politely(running_bot: RunningBot) -> None:
    """With KLING_ALLOWED_USERS set, anyone else gets a polite refusal and no balances."""
    send_command(running_bot, "", "no", user_id="U_ALICE")
    [reply] = running_bot.slack.wait_for_responses("no")
    assert "Sorry" in all_text(reply) and "Video Generation" not in all_text(reply)
    send_command(running_bot, "", "yes", user_id="U_BOSS")
    [reply] = running_bot.slack.wait_for_responses("yes")
    assert "Video Generation" in all_text(reply)


@pytest.mark.bot_env(KLING_ALLOWED_CHANNELS="C_FINANCE")
def test_channel_outside_allow_list_is_refused(running_bot: RunningBot) -> None:
    """With KLING_ALLOWED_CHANNELS set, a command from another channel is refused."""
    send_command(running_bot, "", "c", channel_id="C_GENERAL")
    [reply] = running_bot.slack.wait_for_responses("c")
    assert "restricted" in all_text(reply)


@pytest.mark.bot_env(KLING_SECRET_KEY="wrong-secret-wrong-secret-wrong-secret")
def test_rejected_keys_give_a_sentence_without_admin_details(running_bot: RunningBot) -> None:
    """When Kling rejects the keys, the user reads what happened and whom to tell; setting names stay in the logs."""
    send_command(running_bot, "", "k")
    [reply] = running_bot.slack.wait_for_responses("k")
    assert_valid_message(reply)
    text = all_text(reply)
    assert "rejected" in text and "whoever runs the bot" in text
    assert "KLING_" not in text and "Traceback" not in text and "wrong-secret" not in text


@pytest.mark.bot_env(KLING_API_BASE="http://127.0.0.1:9")
def test_unreachable_kling_shows_no_host_or_setting(running_bot: RunningBot) -> None:
    """With Kling unreachable the reply says to try later, naming no host, URL or setting."""
    send_command(running_bot, "", "down")
    reply = running_bot.slack.wait_for_answer("down")
    text = all_text(reply) + reply["text"]
    assert "try again" in text.lower()
    assert "127.0.0.1" not in text and "http" not in text and "KLING_" not in text


def test_account_error_is_explained(running_bot: RunningBot) -> None:
    """Kling's "account in arrears" (429/1101) is not retried and is explained."""
    running_bot.kling.fail_next(1, 429, 1101, "Account balance is not enough")
    send_command(running_bot, "", "arrears")
    [reply] = running_bot.slack.wait_for_responses("arrears")
    text = all_text(reply)
    assert "unpaid bills" in text and "whoever runs the bot" in text
    assert len(running_bot.kling.calls) == 1


def test_no_packs_at_all_says_what_to_do(running_bot: RunningBot) -> None:
    """An account with no packs gets a sentence about buying one or looking further back."""
    running_bot.kling.packs = []
    send_command(running_bot, "", "empty")
    [reply] = running_bot.slack.wait_for_responses("empty")
    assert "Buy a pack" in all_text(reply) and "look further back" in all_text(reply)


@pytest.mark.bot_env(KLING_CACHE_TTL="0")
def test_stale_answer_is_labelled_when_kling_fails(running_bot: RunningBot) -> None:
    """When a refresh fails after an earlier success, the earlier balances are shown marked stale."""
    send_command(running_bot, "", "fresh")
    running_bot.slack.wait_for_responses("fresh")
    running_bot.kling.fail_next(1, 429, 1100, "Account abnormal")
    send_command(running_bot, "", "stale")
    [reply] = running_bot.slack.wait_for_responses("stale")
    text = all_text(reply)
    assert "could not be asked just now" in text and "ago" in text
    assert "Video Generation" in text
    assert "(stale)" in reply["text"]


def test_refresh_asks_kling_again(running_bot: RunningBot) -> None:
    """`refresh` bypasses the cache and shows the new numbers."""
    send_command(running_bot, "", "first")
    running_bot.slack.wait_for_responses("first")
    running_bot.kling.packs = [make_pack("Video Generation - X", total=100, remaining=7)]
    send_command(running_bot, "", "cached")
    [cached] = running_bot.slack.wait_for_responses("cached")
    assert "Video Generation - X" not in all_text(cached)
    send_command(running_bot, "refresh", "refreshed")
    [refreshed] = running_bot.slack.wait_for_responses("refreshed")
    assert "7 / 100" in all_text(refreshed)
    assert running_bot.kling.rate_limited == 0


def test_300_packs_still_give_valid_blocks(running_bot: RunningBot) -> None:
    """An account with 300 packs gets a message within Slack's limits that says how to see the rest."""
    running_bot.kling.packs = [
        make_pack(f"Family {i % 12} - pack {i} with a rather long descriptive name", expires_in_days=1 + i % 90)
        for i in range(300)
    ]
    send_command(running_bot, "all", "many")
    [reply] = running_bot.slack.wait_for_responses("many")
    assert_valid_message(reply)
    text = all_text(reply)
    assert "more pack(s) not listed" in text
    assert "Family 11" in text


def test_healthz_answers_200(running_bot: RunningBot) -> None:
    """GET /healthz answers 200 for the platform's health checks."""
    response = running_bot.http.get(f"{running_bot.url}/healthz")
    assert response.status_code == 200


def test_unknown_path_is_404(running_bot: RunningBot) -> None:
    """Anything but the two routes is a plain 404."""
    assert running_bot.http.get(f"{running_bot.url}/admin").status_code == 404


@pytest.mark.parametrize("text", ["", "help", "share", "nomatch", "subscribe lots", "subscriptions"])
def test_every_reply_declares_its_response_type(running_bot: RunningBot, text: str) -> None:
    """Slack defaults an undeclared reply to ephemeral; the bot always says which it means."""
    send_command(running_bot, text, "rt")
    [reply] = running_bot.slack.wait_for_responses("rt")
    assert reply.get("response_type") == ("in_channel" if text == "share" else "ephemeral")
