"""Events: `app_home_opened` publishes the viewer's Home tab."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot import subscriptions
from bot.domain.commands import SubscribeArgs
from bot.domain.thresholds import known_families
from bot.foresight import forecasts
from bot.services import Services
from bot.views.forms import (
    ADD_THRESHOLD_ACTION,
    THRESHOLD_FORM,
    chosen_channel,
    offered_families,
    read_threshold_form,
    threshold_form,
)
from bot.views.home import HOME_REFRESH_ACTION, THRESHOLD_REMOVE_ACTION, home_view, refused_home

if TYPE_CHECKING:  # bot.slack.app imports the listeners
    from bot.slack.app import Background

log = logging.getLogger(__name__)

# A form must open within Slack's 3 s: Kling gets this long, then the cached families do.
FORM_WAIT_S = 1.5


def app_home_opened(
    event: dict[str, Any], body: dict[str, Any], client: WebClient, services: Services, background: Background
) -> None:
    # Bolt acks events itself; the work goes to the background pool, so a slow Kling holds
    # no listener thread.
    if event.get("tab") != "home" or not event.get("user"):
        return
    background.run(lambda _reply: publish_home(client, event["user"], services), None, body)


def home_refresh(ack: Ack, body: dict[str, Any], client: WebClient, services: Services, background: Background) -> None:
    """The Home tab's Refresh: ask Kling (still one call per second and per burst, however
    many press it) and publish again."""
    ack()
    user_id = (body.get("user") or {}).get("id")
    if user_id:
        background.run(lambda _reply: publish_home(client, user_id, services, refresh=True), None, body)


def threshold_remove(
    ack: Ack, body: dict[str, Any], client: WebClient, services: Services, background: Background
) -> None:
    """A threshold's Remove button on the Home tab: remove it (if it is still the viewer's)
    and publish the tab again, saying what happened."""
    ack()
    user_id = (body.get("user") or {}).get("id")
    [action] = body.get("actions") or [{}]
    if user_id:
        background.run(lambda _reply: _remove(client, user_id, str(action.get("value", "")), services), None, body)


def _remove(client: WebClient, user_id: str, value: str, services: Services) -> None:
    notice = "That threshold was already removed."
    if services.store is not None and value.isdigit():
        with services.store.transaction() as tx:
            mine = [row for row in tx.subscriptions(user_id) if row.id == int(value)]
            if mine:
                tx.remove_subscriptions([mine[0].id])
                notice = "Threshold removed: no more DMs for it."
    publish_home(client, user_id, services, notice=notice)


def publish_home(
    client: WebClient, user_id: str, services: Services, *, refresh: bool = False, notice: str = ""
) -> None:
    """Build the viewer's Home view (from the cache unless `refresh`: opening the tab does not
    call Kling each time) and publish it."""
    settings = services.settings
    # Who may see balances: the user list (KLING_ALLOWED_CHANNELS is about channels, and the
    # Home tab is none).
    if settings.allowed_users and user_id not in settings.allowed_users:
        client.views_publish(user_id=user_id, view=refused_home())
        return
    now = services.clock.now()
    balances = services.balances.get(refresh=refresh)
    try:
        predicted = forecasts(services.store, balances.packs, now, window_days=settings.forecast_window_days)
    except Exception:
        log.exception("Could not compute the forecast for the Home tab; showing it without")
        predicted = None
    mine = subscriptions.list_subscriptions(services.store, user_id) if services.store is not None else []
    muted = []
    if services.store is not None:
        with services.store.transaction() as tx:
            muted = tx.active_mutes(now)
    view = home_view(
        balances,
        now,
        forecasts=predicted,
        thresholds=mine,
        account_names=settings.account_names,
        warning_days=settings.forecast_warning_days,
        notice=notice,
        mutes=muted,
    )
    client.views_publish(user_id=user_id, view=view)


def open_threshold_form(
    ack: Ack, body: dict[str, Any], client: WebClient, services: Services, background: Background
) -> None:
    """Add a threshold: open the form (the trigger is good for 3 s, so the families come from
    the cache, waiting at most a moment for Kling)."""
    ack()
    trigger = body.get("trigger_id")
    if trigger:
        background.run(lambda _reply: _open_form(client, trigger, services), None, body)


def _open_form(client: WebClient, trigger_id: str, services: Services) -> None:
    balances = services.balances.get(wait_s=FORM_WAIT_S)
    families = known_families(balances.packs)
    client.views_open(trigger_id=trigger_id, view=threshold_form(families, services.settings.account_names))


def threshold_form_submitted(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, services: Services, background: Background
) -> None:
    """Bad values come back inside the form (`response_action: errors`); a good one closes it,
    is stored like `/kling-balance subscribe`, and the Home tab says so."""
    user_id = (body.get("user") or {}).get("id", "")
    settings = services.settings
    if settings.allowed_users and user_id not in settings.allowed_users:
        ack(response_action="errors", errors={"value": "Kling balances are restricted here; ask whoever runs the bot."})
        return
    values = ((view.get("state") or {}).get("values")) or {}
    # Read against the families the form offered: nothing slow before the ack.
    result = read_threshold_form(values, offered_families(view.get("private_metadata")))
    if isinstance(result, dict):
        ack(response_action="errors", errors=result)
        return
    channel = chosen_channel(values) if result.here else ""
    if channel and settings.admin_users and user_id not in settings.admin_users:
        ack(response_action="errors", errors={"channel": "Only the bot's admins can add a threshold for a channel."})
        return
    ack()
    background.run(lambda _reply: _add(client, user_id, result, services, channel), None, body)


def _add(client: WebClient, user_id: str, args: SubscribeArgs, services: Services, channel: str = "") -> None:
    if services.store is None:
        return
    balances = services.balances.get()
    packs = None if balances.failed else list(balances.packs)
    added = subscriptions.subscribe(services.store, user_id, args, packs, services.clock.now(), channel=channel)
    notice = "Threshold added." if getattr(added, "created", False) else "You already had that threshold."
    publish_home(client, user_id, services, notice=notice)


def register(app: App) -> None:
    app.event("app_home_opened")(app_home_opened)
    app.action(HOME_REFRESH_ACTION)(home_refresh)
    app.action(THRESHOLD_REMOVE_ACTION)(threshold_remove)
    app.action(ADD_THRESHOLD_ACTION)(open_threshold_form)
    app.view(THRESHOLD_FORM)(threshold_form_submitted)
