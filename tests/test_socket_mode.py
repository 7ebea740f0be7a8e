"""`/kling-balance` over Socket Mode end to end: the bot's own `serve_socket_mode` opens a
websocket to a Socket Mode stand-in, acks envelopes on it and answers at the response URL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import pytest
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.config import Settings
from bot.services import Services, build_services
from bot.slack import server
from bot.slack.app import INTERIM_TEXT, build_app
from tests.blocks import all_text, assert_valid_message
from tests.conftest import bot_env
from tests.slack_requests import slash_command_body
from tests.stand_ins.kling import FakeKling
from tests.stand_ins.slack import BOT_TOKEN
from tests.stand_ins.socket_mode import APP_TOKEN, FakeSocketMode


@dataclass
class SocketBot:
    slack: FakeSocketMode
    kling: FakeKling
    handler: SocketModeHandler
    services: Services


def socket_env(kling: FakeKling, slack: FakeSocketMode) -> dict[str, str]:
    """The HTTP-mode environment with the app-level token instead of the signing secret."""
    env = bot_env(kling, slack, SLACK_APP_TOKEN=APP_TOKEN)
    del env["SLACK_SIGNING_SECRET"]
    return env


def command_fields(slack: FakeSocketMode, text: str, key: str, **fields: str) -> dict[str, str]:
    """The same fields Slack posts in HTTP mode; Socket Mode carries them as a JSON object."""
    body = slash_command_body(text, response_url=slack.response_url(key), **fields)
    return dict(parse_qsl(body, keep_blank_values=True))


def final_reply(slack: FakeSocketMode, key: str) -> dict[str, Any]:
    """The answer at `key`, after the interim "Asking Kling…" if a slow machine made one go out."""
    replies = slack.wait_for_responses(key)
    if replies[0].get("text") == INTERIM_TEXT:
        replies = slack.wait_for_responses(key, 2)
    return replies[-1]


@pytest.fixture
def socket_mode() -> Iterator[FakeSocketMode]:
    with FakeSocketMode() as fake:
        yield fake


@pytest.fixture
def socket_bot(kling: FakeKling, socket_mode: FakeSocketMode, monkeypatch: pytest.MonkeyPatch) -> Iterator[SocketBot]:
    """The bot as `kling-bot serve` runs it with SLACK_APP_TOKEN set, connected to the stand-in.

    `serve_socket_mode` is called as is; only the handler's `start()`, which would block this
    thread forever after connecting, is made to return once connected so the test can go on."""
    handlers: list[SocketModeHandler] = []

    class ReturningHandler(SocketModeHandler):
        def start(self) -> None:
            handlers.append(self)
            self.connect()

    settings = Settings.from_env(socket_env(kling, socket_mode), need_slack=True)
    services = build_services(settings)
    app = build_app(services)
    monkeypatch.setattr(server, "SocketModeHandler", ReturningHandler)
    try:
        server.serve_socket_mode(app, settings.slack_app_token)
        socket_mode.wait_for_connections(1)
        yield SocketBot(socket_mode, kling, handlers[0], services)
    finally:
        for handler in handlers:
            handler.close()
        services.close()


def test_socket_mode_settings_need_no_signing_secret(kling: FakeKling, socket_mode: FakeSocketMode) -> None:
    """SLACK_APP_TOKEN without SLACK_SIGNING_SECRET is a valid Slack setup, and it means Socket Mode."""
    settings = Settings.from_env(socket_env(kling, socket_mode), need_slack=True)
    assert settings.socket_mode is True
    assert settings.slack_app_token == APP_TOKEN
    assert settings.slack_signing_secret == ""


def test_http_settings_are_not_socket_mode(kling: FakeKling, socket_mode: FakeSocketMode) -> None:
    """Without SLACK_APP_TOKEN the bot stays in HTTP mode."""
    assert Settings.from_env(bot_env(kling, socket_mode), need_slack=True).socket_mode is False


def test_balance_command_over_socket_is_acked_and_answered(socket_bot: SocketBot) -> None:
    """A `/kling-balance` envelope is acked by its envelope_id and the balance arrives at the response URL."""
    assert len(socket_bot.slack.calls_to("apps.connections.open")) == 1

    envelope_id = socket_bot.slack.send_slash_command(command_fields(socket_bot.slack, "", "sock"))
    ack = socket_bot.slack.wait_for_ack(envelope_id)
    assert not ack.payload  # a bare ack: the answer goes to the response URL, not into the ack

    [reply] = socket_bot.slack.wait_for_responses("sock")
    assert reply["response_type"] == "ephemeral"
    assert_valid_message(reply)
    text = all_text(reply)
    assert "Video Generation - 10,000 entries" in text
    assert "5,000 / 10,000" in text
    assert socket_bot.slack.stray == []


def test_socket_ack_returns_while_kling_is_still_answering(socket_bot: SocketBot) -> None:
    """The envelope is acked while Kling is still busy (Slack's 3 s limit); the balance follows."""
    gate = threading.Event()
    socket_bot.kling.gate = gate
    try:
        envelope_id = socket_bot.slack.send_slash_command(command_fields(socket_bot.slack, "", "slow"))
        socket_bot.slack.wait_for_ack(envelope_id)  # acked although Kling has not answered
        socket_bot.kling.wait_for_calls(1)
        assert socket_bot.slack.responses["slow"] == []  # Kling is held: nothing to show yet
    finally:
        gate.set()
    assert "Video Generation - 10,000 entries" in all_text(final_reply(socket_bot.slack, "slow"))


def test_share_over_socket_posts_in_channel(socket_bot: SocketBot) -> None:
    """`share` over Socket Mode answers in_channel, like over HTTP."""
    envelope_id = socket_bot.slack.send_slash_command(command_fields(socket_bot.slack, "share", "shared"))
    socket_bot.slack.wait_for_ack(envelope_id)
    [reply] = socket_bot.slack.wait_for_responses("shared")
    assert reply["response_type"] == "in_channel"
    assert "Video Generation - 10,000 entries" in all_text(reply)


def test_bot_reconnects_when_slack_refreshes_the_socket(socket_bot: SocketBot) -> None:
    """When Slack announces a refresh, the bot opens a new socket and goes on answering on it."""
    socket_bot.slack.request_refresh()
    socket_bot.slack.wait_for_connections(2)
    assert len(socket_bot.slack.calls_to("apps.connections.open")) == 2

    envelope_id = socket_bot.slack.send_slash_command(command_fields(socket_bot.slack, "", "after"))
    socket_bot.slack.wait_for_ack(envelope_id)
    [reply] = socket_bot.slack.wait_for_responses("after")
    assert "Video Generation - 10,000 entries" in all_text(reply)


def test_bot_token_cannot_open_a_socket(socket_mode: FakeSocketMode) -> None:
    """The stand-in, like Slack, refuses `apps.connections.open` with the bot token."""
    with pytest.raises(SlackApiError) as refused:
        WebClient(base_url=socket_mode.api_url).apps_connections_open(app_token=BOT_TOKEN)
    assert refused.value.response["error"] == "not_allowed_token_type"


def test_ack_over_socket_stands_when_the_work_after_it_fails(
    socket_bot: SocketBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Envelopes whose work raises right after the ack are still acked, and the user gets a plain apology."""

    def broken(**_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(socket_bot.services.balances, "get", broken)
    # Bolt's error path undid an ack recorded a moment before (no ack was sent), unless its
    # dispatch thread happened to look in between: many envelopes make the race show.
    envelope_ids = [
        socket_bot.slack.send_slash_command(command_fields(socket_bot.slack, "", f"fail{i}")) for i in range(20)
    ]
    for i, envelope_id in enumerate(envelope_ids):
        socket_bot.slack.wait_for_ack(envelope_id)
        [reply] = socket_bot.slack.wait_for_responses(f"fail{i}")
        assert "Something went wrong" in all_text(reply) and "boom" not in all_text(reply)


def test_slow_answer_over_socket_is_announced_then_replaced(socket_bot: SocketBot) -> None:
    """Over Socket Mode too, a slow Kling gets an interim "Asking Kling…" that the answer replaces."""
    gate = threading.Event()
    socket_bot.kling.gate = gate
    try:
        envelope_id = socket_bot.slack.send_slash_command(command_fields(socket_bot.slack, "", "slow"))
        socket_bot.slack.wait_for_ack(envelope_id)
        [interim] = socket_bot.slack.wait_for_responses("slow")
        assert interim["text"] == INTERIM_TEXT
    finally:
        gate.set()
    _, answer = socket_bot.slack.wait_for_responses("slow", 2)
    assert answer["replace_original"] is True
    assert "Video Generation - 10,000 entries" in all_text(answer)
