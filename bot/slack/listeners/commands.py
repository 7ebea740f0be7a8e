"""`/kling-balance`: ack at once, then answer through `response_url`."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond

from bot.kling.errors import KlingError
from bot.services import Services
from bot.slack.access import may_see_balances
from bot.slack.command_text import parse_balance_text
from bot.views.balance import balance_message, error_message, help_message, refusal_message

COMMAND = "/kling-balance"


def balance_command(ack: Ack, command: dict[str, Any], respond: Respond, services: Services) -> None:
    # Ack first: Slack shows `operation_timeout` if it has no HTTP 200 within 3 s, and Kling
    # may take longer than that. Everything below answers through `response_url`.
    ack()
    args = parse_balance_text(command.get("text"))
    if args.help:
        respond(**help_message(), response_type="ephemeral")
        return
    if not may_see_balances(services.settings, command.get("user_id"), command.get("channel_id")):
        respond(**refusal_message(), response_type="ephemeral")
        return
    try:
        snapshot = services.balances.get(refresh=args.refresh)
    except KlingError as exc:
        respond(**error_message(exc), response_type="ephemeral")
        return
    message = balance_message(
        snapshot,
        services.clock.now(),
        include_inactive=args.include_inactive,
        name_filter=args.name_filter,
    )
    respond(**message, response_type="in_channel" if args.share else "ephemeral")


def register(app: App) -> None:
    app.command(COMMAND)(balance_command)
