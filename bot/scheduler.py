"""When the jobs run: APScheduler, with the digest on a cron trigger in the named time zone.

APScheduler does the calendar arithmetic, DST included: 09:00 Europe/Berlin is 08:00 UTC in
winter and 07:00 UTC in summer, and the trigger knows it. The scheduler's own loop runs on
real time; the jobs use the services' injectable clock, and the triggers are tested by
asking them for fire times at chosen moments.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.config import Settings
from bot.jobs import Jobs
from bot.kling.errors import KlingError

log = logging.getLogger(__name__)

# Retry owed notifications this often between polls, so a Slack outage clears soon after.
DELIVERY_INTERVAL_S = 60


def digest_trigger(settings: Settings) -> CronTrigger:
    return CronTrigger(hour=settings.digest_time.hour, minute=settings.digest_time.minute, timezone=settings.zone)


def poll_trigger(settings: Settings) -> IntervalTrigger:
    return IntervalTrigger(minutes=settings.poll_interval_minutes, timezone=settings.zone)


def _quiet_kling_errors(job: Callable[[], Any]) -> Callable[[], None]:
    # A Kling outage is expected and already explained by the client's log lines; without
    # this APScheduler would log each one as a job crash with a traceback.
    def run() -> None:
        try:
            job()
        except KlingError as exc:
            log.warning("%s skipped: %s", job.__name__, exc.describe())

    run.__name__ = run.__qualname__ = job.__name__
    return run


def schedule(scheduler: BaseScheduler, jobs: Jobs, settings: Settings) -> BaseScheduler:
    common: dict[str, Any] = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 300}
    # The first check runs at once: after a restart, owed notifications and events that
    # happened while the bot was down must not wait a whole interval.
    scheduler.add_job(
        _quiet_kling_errors(jobs.check),
        poll_trigger(settings),
        id="check",
        next_run_time=datetime.now(settings.zone),
        **common,
    )
    if settings.digest_channel:
        scheduler.add_job(_quiet_kling_errors(jobs.digest), digest_trigger(settings), id="digest", **common)
    scheduler.add_job(
        _quiet_kling_errors(jobs.deliver), IntervalTrigger(seconds=DELIVERY_INTERVAL_S), id="deliver", **common
    )
    return scheduler


def background_scheduler(jobs: Jobs, settings: Settings) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone=settings.zone, daemon=True)
    schedule(scheduler, jobs, settings)
    return scheduler


def blocking_scheduler(jobs: Jobs, settings: Settings) -> BlockingScheduler:
    scheduler = BlockingScheduler(timezone=settings.zone)
    schedule(scheduler, jobs, settings)
    return scheduler
