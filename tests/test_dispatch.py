"""Listeners driven through `app.dispatch`, as Bolt's own tests do."""

from __future__ import annotations

from slack_bolt import BoltRequest

from bot.config import Settings
from bot.services import build_services
from bot.slack.app import build_app
from tests.blocks import all_text
from tests.slack_requests import signed_headers, slash_command_body
from tests.stand_ins.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack


def test_unexpected_error_reaches_the_user_as_a_sentence(slack: FakeSlack) -> None:
    """A bug inside a listener is logged and the user gets a plain apology, not silence or a 500."""
    settings = Settings.from_env(
        {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": slack.api_url},
        need_kling=False,
        need_slack=True,
    )
    services = build_services(settings, demo=True)

    def broken(**_: object) -> None:
        raise RuntimeError("boom")

    services.balances.get = broken  # type: ignore[method-assign]
    app = build_app(services)
    body = slash_command_body("", response_url=slack.response_url("bug"))
    response = app.dispatch(
        BoltRequest(body=body, headers={k.lower(): [v] for k, v in signed_headers(SIGNING_SECRET, body).items()})
    )
    assert response.status == 200
    [reply] = slack.wait_for_responses("bug")
    assert "Something went wrong" in all_text(reply)
    assert "boom" not in all_text(reply)
    services.close()
