"""The scheduler's jobs and triggers, as `serve` and `worker` set them up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from bot.scheduler import schedule
from tests.stand_ins.kling import FakeKling
from tests.stand_ins.slack import FakeSlack
from tests.world import World


def test_jobs_are_scheduled_in_the_digest_time_zone(kling: FakeKling, slack: FakeSlack, database_url: str) -> None:
    """check every POLL_INTERVAL_MINUTES (first at once), digest daily at DIGEST_TIME local, outbox retries."""
    world = World(
        kling, slack, database_url, POLL_INTERVAL_MINUTES="15", DIGEST_TIME="07:45", DIGEST_TIMEZONE="Asia/Tokyo"
    )
    try:
        scheduler = BackgroundScheduler(timezone=world.services.settings.zone)
        schedule(scheduler, world.jobs, world.services.settings)
        jobs = {job.id: job for job in scheduler.get_jobs()}
        assert set(jobs) == {"check", "digest", "deliver"}
        assert jobs["check"].trigger.interval == timedelta(minutes=15)
        after = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)  # 09:00 in Tokyo
        fire = jobs["digest"].trigger.get_next_fire_time(None, after)
        assert fire == datetime(2026, 11, 24, 22, 45, tzinfo=UTC)  # 07:45 next morning in Tokyo
    finally:
        world.close()


def test_no_digest_job_without_a_digest_channel(kling: FakeKling, slack: FakeSlack, database_url: str) -> None:
    """With DIGEST_CHANNEL unset there is nothing to post a digest to, so no digest job."""
    world = World(kling, slack, database_url, DIGEST_CHANNEL="", ALERT_CHANNEL="C0ALERTS")
    try:
        scheduler = BackgroundScheduler(timezone=UTC)
        schedule(scheduler, world.jobs, world.services.settings)
        assert {job.id for job in scheduler.get_jobs()} == {"check", "deliver"}
    finally:
        world.close()
