"""Mute and Unmute on a posted warning: recorded with who and until when; the message says so."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, Respond

from bot.domain.mutes import MUTE_FOR
from bot.services import Services
from bot.slack.access import may_see_balances
from bot.views.alerts import MUTE_ACTION, STOP_THRESHOLD_ACTION, UNMUTE_ACTION, muted_message, unmuted_message
from bot.views.subscriptions import mute_refusal_message

if TYPE_CHECKING:  # bot.slack.app imports the listeners
    from bot.slack.app import Background

log = logging.getLogger(__name__)


def mute_button(ack: Ack, body: dict[str, Any], respond: Respond, services: Services, background: Background) -> None:
    ack()
    background.run(lambda reply: answer_mute(body, reply, services), respond, body, interim=False)


def may_mute(services: Services, user_id: str, channel_id: str | None) -> bool:
    """Whoever may create channel thresholds: the admins when set, else anyone allowed to see balances."""
    settings = services.settings
    if settings.admin_users:
        return user_id in settings.admin_users
    return may_see_balances(settings, user_id, channel_id)


def answer_mute(body: dict[str, Any], respond: Respond, services: Services) -> None:
    user_id = (body.get("user") or {}).get("id", "")
    channel_id = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
    if not may_mute(services, user_id, channel_id):
        respond(**mute_refusal_message(), response_type="ephemeral", replace_original=False)
        return
    [action] = body.get("actions") or [{}]
    try:
        asked = json.loads(action.get("value") or "{}")
        scope, label = str(asked["s"]), str(asked.get("l") or "this pack")
    except (ValueError, KeyError, TypeError):
        respond(text="That button is from an older message and no longer works.", replace_original=False)
        return
    blocks = (body.get("message") or {}).get("blocks") or []
    now = services.clock.now()
    assert services.store is not None
    with services.store.transaction() as tx:
        if action.get("action_id") == MUTE_ACTION:
            until = now + MUTE_FOR
            tx.add_mute(scope, label, user_id, until, now)
            message = muted_message(blocks, scope=scope, label=label, by=user_id, until=until)
        else:
            tx.remove_mute(scope)
            message = unmuted_message(blocks, label=label, by=user_id)
    log.info("%s %s by %s", action.get("action_id"), scope, user_id)
    respond(**message, replace_original=True)


def stop_button(ack: Ack, body: dict[str, Any], respond: Respond, services: Services, background: Background) -> None:
    ack()
    background.run(lambda reply: answer_stop(body, reply, services), respond, body, interim=False)


def answer_stop(body: dict[str, Any], respond: Respond, services: Services) -> None:
    """ "Stop this threshold" on a threshold message: its owner (or an admin, for one that posts
    in a channel) removes it; the message then says so."""
    user_id = (body.get("user") or {}).get("id", "")
    [action] = body.get("actions") or [{}]
    value = str(action.get("value") or "")
    assert services.store is not None
    with services.store.transaction() as tx:
        row = next((r for r in tx.subscriptions() if value.isdigit() and r.id == int(value)), None)
        allowed = row is not None and (row.user_id == user_id or user_id in services.settings.admin_users)
        if row is not None and allowed:
            tx.remove_subscriptions([row.id])
    blocks = [b for b in (body.get("message") or {}).get("blocks") or [] if b.get("type") != "actions"]
    if row is None:
        note = "That threshold was already stopped."
    elif not allowed:
        respond(text="Only whoever set this threshold can stop it.", response_type="ephemeral", replace_original=False)
        return
    else:
        note = "Stopped: no more messages for this threshold."
    context = {"type": "context", "elements": [{"type": "mrkdwn", "text": note}]}
    respond(text=note, blocks=[*blocks[:49], context], replace_original=True)


def register(app: App) -> None:
    app.action(MUTE_ACTION)(mute_button)
    app.action(UNMUTE_ACTION)(mute_button)
    app.action(STOP_THRESHOLD_ACTION)(stop_button)
