"""Acks over signed HTTP: they come back before any work, stand whatever the work does, do not
wait for Kling however many commands are waiting, and a slow answer is announced meanwhile."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from bot.slack.app import INTERIM_AFTER_S, INTERIM_TEXT
from tests.blocks import all_text
from tests.conftest import RunningBot
from tests.slack_requests import signed_headers, slash_command_body
from tests.stand_ins.slack import SIGNING_SECRET


def send_command(bot: RunningBot, text: str, key: str, client: httpx.Client | None = None) -> httpx.Response:
    body = slash_command_body(text, response_url=bot.slack.response_url(key))
    return (client or bot.http).post(
        f"{bot.url}/slack/events", content=body, headers=signed_headers(SIGNING_SECRET, body)
    )


def is_interim(reply: dict[str, Any]) -> bool:
    return reply.get("text") == INTERIM_TEXT and reply.get("response_type") == "ephemeral"


def test_ack_stands_when_the_work_after_it_fails(running_bot: RunningBot, monkeypatch: pytest.MonkeyPatch) -> None:
    """A command whose work raises right after the ack still gets HTTP 200, and the user a plain apology."""

    def broken(**_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(running_bot.services.balances, "get", broken)
    # Bolt's error path undid an ack recorded a moment before, unless the request thread
    # happened to look in between: many commands make the race show.
    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(lambda i: send_command(running_bot, "", f"fail{i}").status_code, range(40)))
    assert statuses == [200] * 40
    for i in range(40):
        [reply] = running_bot.slack.wait_for_responses(f"fail{i}")
        assert "Something went wrong" in all_text(reply) and "boom" not in all_text(reply)


def test_300_concurrent_commands_are_acked_while_kling_is_held(running_bot: RunningBot) -> None:
    """300 commands at once are all acked while Kling has not answered; then each gets its
    answer, replacing the interim message, from a single Kling call."""
    gate = threading.Event()
    running_bot.kling.gate = gate
    keys = [f"c{i}" for i in range(300)]
    try:
        limits = httpx.Limits(max_connections=100)
        with httpx.Client(timeout=30, limits=limits) as client, ThreadPoolExecutor(max_workers=100) as pool:
            statuses = list(pool.map(lambda key: send_command(running_bot, "", key, client).status_code, keys))
        assert statuses == [200] * 300
        assert len(running_bot.kling.calls) == 1  # still held: every ack came back without Kling's answer
        for key in keys:  # waiting that long, everyone is told the answer is coming
            [interim] = running_bot.slack.wait_for_responses(key)
            assert is_interim(interim)
    finally:
        gate.set()
    for key in keys:
        interim, answer = running_bot.slack.wait_for_responses(key, 2)
        assert answer["replace_original"] is True
        assert "Video Generation" in all_text(answer)
    assert len(running_bot.kling.calls) == 1
    assert running_bot.kling.rate_limited == 0


def test_slow_answer_is_announced_then_replaced(running_bot: RunningBot) -> None:
    """With Kling slow, an ephemeral "Asking Kling…" comes after about 2 s and the answer then replaces it."""
    gate = threading.Event()
    running_bot.kling.gate = gate
    try:
        started = time.monotonic()
        assert send_command(running_bot, "", "slow").status_code == 200
        [interim] = running_bot.slack.wait_for_responses("slow")
        assert time.monotonic() - started >= INTERIM_AFTER_S * 0.9
        assert is_interim(interim)
    finally:
        gate.set()
    interim, answer = running_bot.slack.wait_for_responses("slow", 2)
    assert answer["replace_original"] is True and answer["response_type"] == "ephemeral"
    assert "Video Generation" in all_text(answer)


def test_slow_shared_answer_removes_the_interim_then_posts_in_channel(running_bot: RunningBot) -> None:
    """`share` after an interim: the ephemeral interim is deleted, then the answer is posted in the channel."""
    gate = threading.Event()
    running_bot.kling.gate = gate
    try:
        send_command(running_bot, "share", "shared")
        [interim] = running_bot.slack.wait_for_responses("shared")
        assert is_interim(interim)
    finally:
        gate.set()
    _, delete, answer = running_bot.slack.wait_for_responses("shared", 3)
    assert delete.get("delete_original") is True
    assert answer["response_type"] == "in_channel" and "replace_original" not in answer
    assert "Video Generation" in all_text(answer)


def test_fast_answer_is_a_single_response(running_bot: RunningBot) -> None:
    """An answer ready within 2 s is the only message: no interim before it, none after it."""
    send_command(running_bot, "", "fast")
    [answer] = running_bot.slack.wait_for_responses("fast")
    time.sleep(INTERIM_AFTER_S + 1.0)  # past the moment an interim would have gone out
    assert running_bot.slack.responses["fast"] == [answer]
    assert "replace_original" not in answer and "Video Generation" in all_text(answer)
