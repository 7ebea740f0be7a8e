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
from bot.domain.accounts import Account
from bot.kling.accounts import AllBalances
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
    def for_services(cls, services: Services, *, history_granted: bool | None = None) -> Jobs:
        """Jobs on the services' store, sending with a Slack client of their own.
        `history_granted`: whether the token may read channel history (None: ask Slack when
        the exactly-once lookup is first needed)."""
        if services.store is None:
            raise ValueError("the jobs need the database: build the services with_store=True")
        allowed = services.settings.allowed_users
        notifier = Notifier(
            services.store,
            notifier_client(services.settings),
            services.clock,
            may_receive_dm=lambda user: not allowed or user in allowed,
            claim_s=services.settings.outbox_claim_s,
            give_up_after=timedelta(days=services.settings.outbox_give_up_days),
            history_granted=history_granted,
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
        self.last_kling_errors: dict[Account, KlingError] = {}
        self.last_delivery: DeliveryReport | None = None

    def check(self) -> CheckReport | None:
        """One poll: ask every account, owe warnings and DMs for what changed, send what is owed.

        Accounts that cannot be asked are left alone (stale data must not fire or re-arm
        alerts) while the others are checked. Returns None when no account could be checked;
        raises `KlingError` when no account can be asked and nothing earlier is known.
        """
        # Not a refresh: an answer any process fetched within KLING_CACHE_TTL is as good, so
        # replicas polling together make one Kling call (the TTL is far below the interval).
        balances = self.services.balances.get(wait_s=None)
        fresh = [a for a in balances.accounts if a.snapshot is not None and not a.snapshot.stale]
        self.last_kling_errors = {a.account: a.error for a in balances.accounts if a not in fresh and a.error}
        for account, error in self.last_kling_errors.items():
            where = f" for account {account.name}" if balances.multi else ""
            log.warning(
                "Check skipped%s: Kling could not be asked (%s); nothing is decided on old data",
                where,
                error.describe(),
            )
        report: CheckReport | None = None
        if fresh:
            packs = [p for a in fresh for p in a.packs]
            report = run_check(
                self.store, packs, self.clock.now(), self.settings, accounts=[a.account.key for a in fresh]
            )
            with self.store.transaction() as tx:
                tx.record_poll(self.clock.now(), [a.account.key for a in fresh])
            if report.baseline:
                log.info(
                    "First check of %s: recorded a baseline; no warnings for what is already over",
                    ", ".join(report.baselined),
                )
            self._digest_if_due(balances)
        self.deliver()
        if not fresh:
            balances.raise_if_nothing()
        return report

    def deliver(self) -> DeliveryReport:
        report = self.notifier.deliver_due()
        if report.sent or report.failed:
            log.info("Outbox: %d sent, %d still owed after failing", len(report.sent), len(report.failed))
        self.last_delivery = report
        return report

    def digest(self) -> DigestOutcome:
        """Owe today's digest (once per local day) and send it."""
        balances = self.services.balances.get(wait_s=None)
        balances.raise_if_nothing()
        return self._queue_digest(balances, deliver=True)

    def digest_payload(self) -> dict[str, Any]:
        """The digest as it would be posted now, posting nothing (`digest --dry-run`)."""
        balances = self.services.balances.get(refresh=True, wait_s=None)
        balances.raise_if_nothing()
        with self.store.transaction() as tx:
            # compose_digest only reads: nothing is owed or recorded by a dry run.
            message = compose_digest(
                tx,
                balances.packs,
                self.clock.now(),
                self.settings,
                stale_note=_stale_note(balances),
                failed_accounts=[a.account.key for a in balances.failed],
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

    def _digest_if_due(self, balances: AllBalances) -> None:
        if self.digest_due(self.clock.now()):
            log.info("Today's digest was not sent at its time; sending it now")
            self._queue_digest(balances, deliver=False)

    def _queue_digest(self, balances: AllBalances, *, deliver: bool) -> DigestOutcome:
        now = self.clock.now()
        key = digest_key(now, self.settings)
        queued = queue_digest(
            self.store,
            balances.packs,
            now,
            self.settings,
            key=key,
            stale_note=_stale_note(balances),
            failed_accounts=[a.account.key for a in balances.failed],
        )
        delivery = self.deliver() if deliver else None
        return DigestOutcome(queued, key, delivery)


def _stale_note(balances: AllBalances) -> str | None:
    """What a channel reads about old numbers: plain words, no hosts or settings."""
    notes = []
    for answer in balances.accounts:
        if not answer.stale or answer.snapshot is None:
            continue
        fetched = f"{answer.snapshot.fetched_at:%Y-%m-%d %H:%M} UTC"
        where = f" for account {answer.account.name}" if balances.multi else ""
        notes.append(f"Kling could not be asked just now{where}; these numbers are from {fetched}.")
    return " ".join(notes) or None
