"""The work done while nobody is looking: poll and warn, digest, deliver the outbox.

Each job is a plain method, so the scheduler, the CLI (`check`, `digest`) and the tests all
run the same code with the clock the services were built with.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.alerting import CheckReport, compose_digest, digest_key, queue_digest, run_check
from bot.kling.cache import Snapshot
from bot.kling.errors import KlingError
from bot.notify import DeliveryReport, Notifier, notifier_client
from bot.services import Services
from bot.store.db import Store

log = logging.getLogger(__name__)

# A digest missed at its time (the process was down, or Kling failed) is still sent within
# this window; later than that, tomorrow's is the next one.
DIGEST_CATCH_UP = timedelta(hours=6)


@dataclass(frozen=True)
class DigestOutcome:
    queued: bool
    key: str
    delivery: DeliveryReport | None = None


class Jobs:
    @classmethod
    def for_services(cls, services: Services) -> Jobs:
        """Jobs on the services' store, sending with a Slack client of their own."""
        if services.store is None:
            raise ValueError("the jobs need the database: build the services with_store=True")
        allowed = services.settings.allowed_users
        notifier = Notifier(
            services.store,
            notifier_client(services.settings),
            services.clock,
            may_receive_dm=lambda user: not allowed or user in allowed,
        )
        return cls(services, services.store, notifier)

    def __init__(self, services: Services, store: Store, notifier: Notifier) -> None:
        self.services = services
        self.store = store
        self.notifier = notifier
        self.settings = services.settings
        self.clock = services.clock
        # What the last check could not do, for the CLI to report: Kling's error when it
        # could not be asked, and the delivery pass that ended it.
        self.last_kling_error: KlingError | None = None
        self.last_delivery: DeliveryReport | None = None

    def check(self) -> CheckReport | None:
        """One poll: ask Kling, owe warnings and DMs for what changed, send what is owed.

        Raises `KlingError` when Kling cannot be asked and nothing earlier is known. With only
        a stale answer, nothing is decided: stale data must not fire or re-arm alerts.
        """
        snapshot = self.services.balances.get(refresh=True, wait_s=None)
        report: CheckReport | None = None
        self.last_kling_error = snapshot.error if snapshot.stale else None
        if snapshot.stale:
            reason = snapshot.error.describe() if snapshot.error else "unknown"
            log.warning("Check skipped: Kling could not be asked (%s); nothing is decided on old data", reason)
        else:
            report = run_check(self.store, snapshot.packs, self.clock.now(), self.settings)
            if report.baseline:
                log.info(
                    "First check: recorded a baseline of %d pack(s); no warnings for what is already over", report.packs
                )
            self._digest_if_due(snapshot)
        self.deliver()
        return report

    def deliver(self) -> DeliveryReport:
        report = self.notifier.deliver_due()
        if report.sent or report.failed:
            log.info("Outbox: %d sent, %d still owed after failing", len(report.sent), len(report.failed))
        self.last_delivery = report
        return report

    def digest(self) -> DigestOutcome:
        """Owe today's digest (once per local day) and send it."""
        snapshot = self.services.balances.get(refresh=True, wait_s=None)
        return self._queue_digest(snapshot, deliver=True)

    def digest_payload(self) -> dict[str, Any]:
        """The digest as it would be posted now, posting nothing (`digest --dry-run`)."""
        snapshot = self.services.balances.get(refresh=True, wait_s=None)
        with self.store.transaction() as tx:
            # compose_digest only reads: nothing is owed or recorded by a dry run.
            message = compose_digest(
                tx, snapshot.packs, self.clock.now(), self.settings, stale_note=_stale_note(snapshot)
            )
        return {"channel": self.settings.digest_channel, **message}

    def digest_due(self, now: datetime) -> bool:
        """Today's digest time has passed (within the catch-up window) and it is not yet owed."""
        if not self.settings.digest_channel:
            return False
        local = now.astimezone(self.settings.zone)
        scheduled = datetime.combine(local.date(), self.settings.digest_time, tzinfo=self.settings.zone)
        if not scheduled <= local < scheduled + DIGEST_CATCH_UP:
            return False
        with self.store.transaction() as tx:
            return not tx.existing_keys([digest_key(now, self.settings)])

    def _digest_if_due(self, snapshot: Snapshot) -> None:
        if self.digest_due(self.clock.now()):
            log.info("Today's digest was not sent at its time; sending it now")
            self._queue_digest(snapshot, deliver=False)

    def _queue_digest(self, snapshot: Snapshot, *, deliver: bool) -> DigestOutcome:
        now = self.clock.now()
        key = digest_key(now, self.settings)
        queued = queue_digest(self.store, snapshot.packs, now, self.settings, key=key, stale_note=_stale_note(snapshot))
        delivery = self.deliver() if deliver else None
        return DigestOutcome(queued, key, delivery)


def _stale_note(snapshot: Snapshot) -> str | None:
    if not snapshot.stale:
        return None
    reason = snapshot.error.describe() if snapshot.error else "the refresh failed"
    fetched = f"{snapshot.fetched_at:%Y-%m-%d %H:%M} UTC"
    return f"Kling could not be asked just now ({reason}); these numbers are from {fetched}."
