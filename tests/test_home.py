"""The App Home tab (issue 9, first part): a signed `app_home_opened` event makes a
`views.publish` for that user with valid blocks naming the families and numbers; someone
outside the allow-list gets a polite view with no number; opening it again does not call
Kling again (the cache serves it)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.blocks import all_text, assert_valid_message
from tests.conftest import RunningBot
from tests.slack_requests import signed_headers
from tests.stand_ins.kling import make_pack
from tests.stand_ins.slack import SIGNING_SECRET

ROOT = Path(__file__).resolve().parent.parent


def home_opened(bot: RunningBot, user: str, *, tab: str = "home") -> int:
    """Send `app_home_opened` the way Slack does: a signed JSON event callback."""
    body = json.dumps(
        {
            "token": "legacy-verification-token",
            "team_id": "T0TEST",
            "api_app_id": "A0TEST",
            "event": {"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": tab, "event_ts": "1.2"},
            "type": "event_callback",
            "event_id": f"Ev{time.monotonic_ns()}",
            "event_time": int(time.time()),
        }
    )
    headers = {**signed_headers(SIGNING_SECRET, body), "Content-Type": "application/json"}
    return bot.post(body, headers).status_code


def published(bot: RunningBot, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        calls = bot.slack.calls_to("views.publish")
        if len(calls) >= count:
            return calls
        assert time.monotonic() < deadline, f"expected {count} views.publish call(s), got {len(calls)}"
        time.sleep(0.05)


def view_of(call: dict[str, Any]) -> dict[str, Any]:
    view = call["view"]
    return json.loads(view) if isinstance(view, str) else view


def test_opening_the_home_tab_publishes_the_balances_for_that_user(running_bot: RunningBot) -> None:
    """The viewer's Home view names each family with its numbers and forecast, within Slack's limits."""
    running_bot.kling.packs = [
        make_pack("Video Generation - 10,000 entries", total=10000, remaining=2500, pack_id="v"),
        make_pack(
            "Lip Sync - 2,000", total=2000, remaining=1500, pack_id="w", purchased_days_ago=100, expires_in_days=5
        ),
    ]
    assert home_opened(running_bot, "U_ALICE") == 200
    [call] = published(running_bot, 1)
    assert call["user_id"] == "U_ALICE"
    view = view_of(call)
    assert view["type"] == "home"
    assert_valid_message({"text": "home", "blocks": view["blocks"]}, max_blocks=100)
    text = all_text(view)
    assert "Video Generation" in text and "2,500 / 10,000" in text
    assert "Packs at risk" in text and "will expire unused" in text
    assert "Your thresholds" in text


def test_someone_outside_the_allow_list_sees_no_numbers(kling: Any, slack: Any, database_url: str) -> None:
    """With KLING_ALLOWED_USERS set, another user's Home view is polite and has no number in it."""
    from tests.conftest import start_bot

    kling.packs = [make_pack("Video Generation - A", total=10000, remaining=2500)]
    for bot in start_bot(kling, slack, database_url, KLING_ALLOWED_USERS="U_BOSS"):
        assert home_opened(bot, "U_INTRUDER") == 200
        [call] = published(bot, 1)
        text = all_text(view_of(call))
        assert "restricted" in text and not re.search(r"\d", text)
        assert kling.calls == []


def test_the_home_tab_is_served_from_the_cache(running_bot: RunningBot) -> None:
    """Opening the tab five times calls Kling once; the messages tab publishes nothing."""
    running_bot.kling.packs = [make_pack("Video Generation - A")]
    for _ in range(5):
        home_opened(running_bot, "U_ALICE")
    published(running_bot, 5)
    home_opened(running_bot, "U_ALICE", tab="messages")
    time.sleep(0.5)
    assert len(running_bot.slack.calls_to("views.publish")) == 5
    assert len(running_bot.kling.calls) == 1


def test_manifest_has_the_home_tab_and_its_event() -> None:
    """The manifest switches the Home tab on and subscribes to app_home_opened, with no new scope."""
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert manifest["settings"]["event_subscriptions"]["bot_events"] == ["app_home_opened"]
    assert manifest["settings"]["event_subscriptions"]["request_url"].endswith("/slack/events")


@pytest.mark.parametrize("count", [1, 60, 400])
def test_any_number_of_families_fits_the_home_tab(count: int) -> None:
    """However many families, packs and thresholds, the view stays within 100 valid blocks."""
    from datetime import UTC, datetime

    from bot.kling.accounts import AllBalances
    from bot.kling.cache import Snapshot
    from bot.kling.parse import parse_pack
    from bot.store.db import SubscriptionRow
    from bot.views.home import home_view

    now = datetime.now(UTC)
    packs = tuple(
        parse_pack(make_pack(f"Family {i} - pack", pack_id=f"p{i}", expires_in_days=3 + i % 5, now=now), i)
        for i in range(count)
    )
    rows = [SubscriptionRow(i, "U_ALICE", f"Family {i}", "percent", 20.0) for i in range(count)]
    view = home_view(AllBalances.of(Snapshot(packs, now)), now, forecasts=None, thresholds=rows)
    assert_valid_message({"text": "home", "blocks": view["blocks"]}, max_blocks=100)
