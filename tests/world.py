"""A whole bot against the stand-ins with a fake clock and a real database, restartable.

"Restart" builds new services on the same database file, as a new process would.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from slack_bolt import BoltRequest

from bot.config import Settings
from bot.jobs import Jobs
from bot.services import Services, build_services
from bot.slack.app import build_app
from tests.fake_clock import FakeClock
from tests.slack_requests import signed_headers, slash_command_body
from tests.stand_ins.kling import API_KEY, FakeKling
from tests.stand_ins.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack

ALERTS = "C0ALERTS"
DIGEST = "C0DIGEST"


class World:
    def __init__(
        self, kling: FakeKling, slack: FakeSlack, database_url: str, *, clock: FakeClock | None = None, **env: str
    ) -> None:
        # The fake clock makes days pass in an instant; the stand-in's one-call-a-second check
        # runs on real time, so it is off here (it is tested with the real clock elsewhere).
        kling.qps_interval_s = 0
        self.kling, self.slack = kling, slack
        self.clock = clock or FakeClock()
        self.env = {
            "KLING_API_BASE": kling.url,
            "KLING_API_KEY": API_KEY,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.api_url,
            "DATABASE_URL": database_url,
            "ALERT_CHANNEL": ALERTS,
            "DIGEST_CHANNEL": DIGEST,
            "KLING_CACHE_TTL": "0",
            **env,
        }
        self.services: Services = self._start()
        self.jobs = Jobs.for_services(self.services)
        self._commands = 0

    def _start(self) -> Services:
        settings = Settings.from_env(self.env, need_slack=True)
        return build_services(settings, clock=self.clock, with_store=True)

    def restart(self) -> None:
        self.services.close()
        self.services = self._start()
        self.jobs = Jobs.for_services(self.services)

    def close(self) -> None:
        self.services.close()

    def check(self) -> Any:
        """One scheduled poll: the clock moves on by POLL_INTERVAL_MINUTES first, as between real polls."""
        self.clock.advance(self.services.settings.poll_interval_minutes * 60)
        return self.jobs.check()

    def set_time(self, when: datetime) -> None:
        self.clock.advance((when - self.clock.now()).total_seconds())

    # -- what Slack saw ---------------------------------------------------------------------

    def posts(self, channel: str) -> list[dict[str, Any]]:
        return [
            c for c in self.slack.calls_to("chat.postMessage") if c.get("channel") == channel and not c.get("_failed")
        ]

    def dms(self, user: str) -> list[dict[str, Any]]:
        return self.posts("D" + user)

    # -- slash commands, through Bolt with a signed request ---------------------------------

    def command(self, text: str, user_id: str = "U_ALICE") -> dict[str, Any]:
        self._commands += 1
        key = f"cmd{self._commands}"
        app = build_app(self.services)
        body = slash_command_body(text, response_url=self.slack.response_url(key), user_id=user_id)
        headers = {k.lower(): [v] for k, v in signed_headers(SIGNING_SECRET, body).items()}
        response = app.dispatch(BoltRequest(body=body, headers=headers))
        assert response.status == 200
        [reply] = self.slack.wait_for_responses(key)
        return reply
