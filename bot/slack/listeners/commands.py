"""`/kling-balance` and its subcommands: ack at once, then answer through `response_url`."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, Respond

from bot import subscriptions
from bot.domain.commands import (
    SUBSCRIBE_USAGE,
    BalanceArgs,
    ListSubscriptionsArgs,
    SubscribeArgs,
    UnsubscribeArgs,
    UsageProblem,
    parse_command,
)
from bot.domain.forecast import FamilyForecast
from bot.domain.packs import ResourcePack
from bot.foresight import forecasts
from bot.services import Services
from bot.slack.access import may_see_balances
from bot.views.balance import (
    REFRESH_ACTION,
    SHARE_ACTION,
    SHOW_ALL_ACTION,
    balances_message,
    help_message,
    refusal_message,
    with_buttons,
)
from bot.views.format import mrkdwn_escape
from bot.views.subscriptions import (
    admins_only_message,
    subscribed_message,
    subscriptions_message,
    unsubscribed_message,
    usage_message,
)

if TYPE_CHECKING:  # bot.slack.app imports the listeners
    from bot.slack.app import Background

COMMAND = "/kling-balance"
SAMPLE_LABEL = ":test_tube: Sample data (`kling-bot serve --demo`), not a real account."
log = logging.getLogger(__name__)


def _labelled_as_sample(respond: Respond) -> Callable[..., Any]:
    """Every reply of a demo says it is sample data, in the message and its notification."""

    def labelled(**message: Any) -> Any:
        if "blocks" in message:
            label = {"type": "context", "elements": [{"type": "mrkdwn", "text": SAMPLE_LABEL}]}
            message = {**message, "blocks": [label, *message["blocks"]][:50]}
        if "text" in message:
            message = {**message, "text": "[Sample data] " + message["text"]}
        return respond(**message)

    return labelled


def balance_command(
    ack: Ack, command: dict[str, Any], respond: Respond, services: Services, background: Background
) -> None:
    # Ack first and return: Slack shows `operation_timeout` without an HTTP 200 within 3 s,
    # and Kling may take longer. The answer is worked out on the background pool (see
    # `Background` for why) and arrives through `response_url`.
    ack()
    background.run(lambda reply: answer_command(command, reply, services), respond, command)


def answer_command(command: dict[str, Any], respond: Respond, services: Services) -> None:
    if services.demo:
        respond = _labelled_as_sample(respond)
    settings = services.settings
    args = parse_command(command.get("text"), settings.account_list if settings.multi_account else ())
    if isinstance(args, BalanceArgs) and args.help:
        respond(**help_message(settings.account_names), response_type="ephemeral")
        return
    if isinstance(args, UsageProblem):
        respond(**usage_message(args), response_type="ephemeral")
        return
    user_id = command.get("user_id", "")
    if not may_see_balances(services.settings, user_id, command.get("channel_id")):
        respond(**refusal_message(), response_type="ephemeral")
        return
    if isinstance(args, BalanceArgs):
        _balance(args, respond, services)
    else:
        _subscriptions(args, user_id, respond, services, command.get("channel_id"))


def _balance(args: BalanceArgs, respond: Respond, services: Services, *, replace: bool = False) -> None:
    """Answer a balance request (a command, or a button repeating one); `replace` replaces the
    message the button was on."""
    chosen = [a for a in services.settings.account_list if a.key == args.account] if args.account else None
    balances = services.balances.get(refresh=args.refresh, accounts=chosen)
    for answer in balances.failed:
        # The user reads what happened in plain words; the details are for whoever runs the bot.
        assert answer.error is not None
        where = f" for account {answer.account.name}" if balances.multi else ""
        log.warning("Could not answer %s%s: %s", COMMAND, where, answer.error.describe())
    now = services.clock.now()
    message = balances_message(
        balances,
        now,
        include_inactive=args.include_inactive,
        name_filter=args.name_filter,
        forecasts=_forecasts(services, balances.packs, now),
        warning_days=services.settings.forecast_warning_days,
    )
    if chosen is not None and services.settings.multi_account:
        # One account asked for by name: still name it, since several exist.
        message = _named_single(message, chosen[0].name)
    failed_alone = not balances.multi and balances.failed
    shared = bool(args.share and not failed_alone)
    if not failed_alone:
        message = with_buttons(message, button_value(args), include_inactive=args.include_inactive, shared=shared)
    extra = {"replace_original": True} if replace and not shared else {}
    respond(**message, response_type="in_channel" if shared else "ephemeral", **extra)


def button_value(args: BalanceArgs) -> str:
    """What a button repeats: the filter, the account and `all` (never more than Slack's 2,000)."""
    return json.dumps({"f": args.name_filter[:300], "a": args.account, "all": args.include_inactive})


def args_from_button(value: str | None, action_id: str) -> BalanceArgs:
    try:
        asked = json.loads(value or "{}")
    except ValueError:
        asked = {}
    if not isinstance(asked, dict):
        asked = {}
    return BalanceArgs(
        include_inactive=bool(asked.get("all")) or action_id == SHOW_ALL_ACTION,
        share=action_id == SHARE_ACTION,
        refresh=action_id == REFRESH_ACTION,
        name_filter=str(asked.get("f") or "")[:300],
        account=str(asked.get("a") or ""),
    )


def balance_button(
    ack: Ack, body: dict[str, Any], respond: Respond, services: Services, background: Background
) -> None:
    """Refresh, Show all, Share in channel: ack at once, then answer in place."""
    ack()
    background.run(lambda reply: answer_button(body, reply, services), respond, body, interim=False)


def answer_button(body: dict[str, Any], respond: Respond, services: Services) -> None:
    if services.demo:
        respond = _labelled_as_sample(respond)
    user_id = (body.get("user") or {}).get("id", "")
    channel_id = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
    if not may_see_balances(services.settings, user_id, channel_id):
        respond(**refusal_message(), response_type="ephemeral", replace_original=False)
        return
    [action] = body.get("actions") or [{}]
    args = args_from_button(action.get("value"), action.get("action_id", ""))
    if args.account and args.account not in {a.key for a in services.settings.account_list}:
        # A button from before the accounts changed: show every account instead.
        args = dataclasses.replace(args, account="")
    _balance(args, respond, services, replace=True)


def _forecasts(services: Services, packs: Sequence[ResourcePack], now: datetime) -> list[FamilyForecast] | None:
    """The forecast, or None when it cannot be made: the balances are shown either way."""
    try:
        return forecasts(services.store, packs, now, window_days=services.settings.forecast_window_days)
    except Exception:
        log.exception("Could not compute the forecast; answering without it")
        return None


def _named_single(message: dict[str, Any], name: str) -> dict[str, Any]:
    """A one-account answer when several accounts exist says which account it is."""
    label = {"type": "context", "elements": [{"type": "mrkdwn", "text": f"Account *{mrkdwn_escape(name)}*"}]}
    blocks = message.get("blocks") or []
    return {
        **message,
        "text": f"Account {mrkdwn_escape(name)}: " + message.get("text", ""),
        "blocks": [*blocks[:1], label, *blocks[1:]][:50],
    }


def _subscriptions(
    args: SubscribeArgs | UnsubscribeArgs | ListSubscriptionsArgs,
    user_id: str,
    respond: Respond,
    services: Services,
    channel_id: str | None = None,
) -> None:
    store = services.store
    if store is None:  # only `balance` runs without a database, and it has no Slack commands
        raise RuntimeError("subscriptions need the database")
    names = services.settings.account_names
    if isinstance(args, SubscribeArgs) and args.here:
        channel = str(channel_id or "")
        if not channel.startswith(("C", "G")):
            respond(**usage_message(UsageProblem("“here” posts to a channel: use it in the channel.", SUBSCRIBE_USAGE)))
            return
        settings = services.settings
        if settings.admin_users and user_id not in settings.admin_users:
            respond(**admins_only_message(), response_type="ephemeral")
            return
    if isinstance(args, SubscribeArgs):
        chosen = [a for a in services.settings.account_list if a.key == args.account] if args.account else None
        balances = services.balances.get(accounts=chosen)
        # Subscribe anyway when Kling cannot be asked; the family is checked at the next poll.
        packs = None if balances.failed else list(balances.packs)
        channel = str(channel_id or "") if args.here else ""
        result = subscriptions.subscribe(store, user_id, args, packs, services.clock.now(), channel=channel)
        respond(**subscribed_message(result, names), response_type="ephemeral")
    elif isinstance(args, UnsubscribeArgs):
        removed = subscriptions.unsubscribe(store, user_id, args)
        respond(**unsubscribed_message(removed, names), response_type="ephemeral")
    else:
        mine = subscriptions.list_subscriptions(store, user_id)
        respond(**subscriptions_message(mine, names), response_type="ephemeral")


def register(app: App) -> None:
    app.command(COMMAND)(balance_command)
    for action_id in (REFRESH_ACTION, SHOW_ALL_ACTION, SHARE_ACTION):
        app.action(action_id)(balance_button)
