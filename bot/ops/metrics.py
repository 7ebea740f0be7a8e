"""`/metrics` and `/readyz`: what one process counts itself, and what the database says.

Each process has a `Metrics` of its own, with a registry of its own (never prometheus_client's
global one), handed to whoever needs it: the Kling clients report every request through a
hook, the HTTP endpoints read it. Pack, family, outbox and poll figures are read from the
database at scrape time by `StoredState`, so every process (web or worker) reports the same
truth without asking Kling for it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from bot.clock import Clock
from bot.config import Settings

if TYPE_CHECKING:
    from bot.domain.forecast import FamilyForecast
    from bot.domain.packs import ResourcePack
    from bot.store.db import Store

log = logging.getLogger(__name__)

# The outcomes a Kling request is counted under (bot.kling.client reports one per request).
KLING_OUTCOMES = ("ok", "rate_limited", "auth_error", "timeout", "unreachable", "error")
# A normal answer takes well under a second; one attempt is cut off at 12 s (plus 1 s grace).
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0)
# /readyz fails once the last successful poll is older than this many poll intervals.
READY_POLL_INTERVALS = 3
# The forecast is recomputed at the latest after this long even when no poll came.
FORECAST_REUSE_S = 300.0
# Label values come from Kling (pack and family names, ids): cut long ones, so one odd
# pack cannot blow up every scrape.
MAX_LABEL_CHARS = 100


def _label(text: str) -> str:
    return text[:MAX_LABEL_CHARS]


def account_labels(settings: Settings) -> dict[str, str]:
    """The `account` label of each account key: its display name."""
    names = settings.account_names
    return {a.account.key: (names or {}).get(a.account.key, a.account.key) for a in settings.accounts}


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    # One line for /readyz's body: what is wrong, or what was checked. No hosts, no secrets.
    reason: str


class Metrics:
    """One process's metrics: Kling requests counted as they happen, and (once `watch` is
    given the database) the stored state read at each scrape."""

    def __init__(self, settings: Settings, clock: Clock, *, polls: bool = True) -> None:
        self.settings = settings
        self.clock = clock
        # Before any poll ever, /readyz counts from here (a fresh install is not "stale").
        self.started_at = clock.now()
        # False where nothing polls (a demo): readiness then only needs the database.
        self.polls = polls
        self.store: Store | None = None
        self.registry = CollectorRegistry()
        self._accounts = account_labels(settings)
        self.kling_requests = Counter(
            "kling_bot_kling_requests",
            "HTTP requests this process sent to Kling, by outcome",
            ["account", "outcome"],
            registry=self.registry,
        )
        self.kling_seconds = Histogram(
            "kling_bot_kling_request_duration_seconds",
            "How long this process's HTTP requests to Kling took, body included",
            ["account"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # Every series exists from the start at 0, so rate() and alerts work before the first error.
        for label in self._accounts.values():
            self.kling_seconds.labels(label)
            for outcome in KLING_OUTCOMES:
                self.kling_requests.labels(label, outcome)
        # CPU, memory, open files and start time of this process (Linux; nothing elsewhere).
        ProcessCollector(registry=self.registry)

    def on_kling_request(self, account: str, outcome: str, seconds: float) -> None:
        """The hook `KlingClient(on_request=...)` calls once per HTTP request."""
        label = self._accounts.get(account, account)
        self.kling_requests.labels(label, outcome if outcome in KLING_OUTCOMES else "error").inc()
        self.kling_seconds.labels(label).observe(max(0.0, seconds))

    def watch(self, store: Store) -> None:
        """Report the database's figures at each scrape, and check it for readiness."""
        self.store = store
        self.registry.register(StoredState(store, self.settings, self.clock))

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The scrape's body and content type (the text format, or OpenMetrics when asked)."""
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type

    def readiness(self) -> Readiness:
        if self.store is None:
            return Readiness(False, "not ready: no database")
        return readiness(
            self.store,
            self.clock.now(),
            started_at=self.started_at,
            poll_interval=timedelta(minutes=self.settings.poll_interval_minutes),
            polls=self.polls,
        )


def readiness(
    store: Store, now: datetime, *, started_at: datetime, poll_interval: timedelta, polls: bool = True
) -> Readiness:
    """Ready when the database answers and a poll succeeded within READY_POLL_INTERVALS
    intervals (or, before any poll ever, within that long of the process starting)."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        if _sqlite_file_gone(store):
            return Readiness(False, "not ready: the database file is gone")
        with store.reading() as tx:
            last = tx.last_poll_at()
    except (SQLAlchemyError, OSError) as exc:
        # The class only: the driver's message can name the host, or the URL and its password.
        return Readiness(False, f"not ready: the database cannot be reached ({type(exc).__name__})")
    if not polls:
        return Readiness(True, "ready: the database answers (nothing polls Kling here)")
    limit = poll_interval * READY_POLL_INTERVALS
    if last is None:
        waited = now - started_at
        if waited <= limit:
            return Readiness(True, f"ready: the database answers; no poll yet, started {_ago(waited)} ago")
        return Readiness(
            False, f"not ready: no successful poll since the start {_ago(waited)} ago (limit {_ago(limit)})"
        )
    age = now - last
    if age > limit:
        return Readiness(False, f"not ready: the last successful poll was {_ago(age)} ago (limit {_ago(limit)})")
    return Readiness(True, f"ready: the database answers; last successful poll {_ago(age)} ago")


def _ago(span: timedelta) -> str:
    seconds = max(0, int(span.total_seconds()))
    return f"{seconds} s" if seconds < 120 else f"{seconds // 60} min"


def _sqlite_file_gone(store: Store) -> bool:
    """A SQLite file deleted under a running bot still answers through the connections
    already open (they hold the deleted file), and everything written to it is lost at the
    next start: that is a database gone too."""
    url = store.engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return False
    if url.database.startswith("file:"):
        return False  # a URI filename; sqlite resolves it, not a plain path
    return not os.path.exists(url.database)


@dataclass(frozen=True, slots=True)
class _Stored:
    """What one scrape read from the database, in one transaction."""

    answers: Mapping[str, tuple[datetime, list[ResourcePack]]]
    outbox: Mapping[str, int]
    stuck: int
    last_poll: datetime | None
    account_polls: Mapping[str, datetime | None]
    forecasts: list[FamilyForecast]


class StoredState:
    """A prometheus_client collector reading the stored state at each scrape: each account's
    last good Kling answer (whichever process fetched it), the forecast from the stored
    history, the outbox and the last successful poll."""

    def __init__(self, store: Store, settings: Settings, clock: Clock) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._accounts = account_labels(settings)
        self._failing = False
        self._lock = threading.Lock()
        # (what it was computed from, when, the forecasts): see `_read`.
        self._forecast: tuple[object, float, list[FamilyForecast]] | None = None

    def describe(self) -> Iterator[Metric]:
        # Names only, for the registry's duplicate check: no database read at registration.
        yield GaugeMetricFamily(*_DATABASE_UP)
        for name, _help, _labels in _FAMILIES:
            yield GaugeMetricFamily(name, _help, labels=_labels)

    def collect(self) -> Iterator[Metric]:
        from sqlalchemy.exc import SQLAlchemyError

        up = GaugeMetricFamily(*_DATABASE_UP)
        try:
            if _sqlite_file_gone(self._store):
                raise FileNotFoundError("the database file is gone")
            stored = self._read()
        except (SQLAlchemyError, OSError) as exc:
            self._note(failing=True, reason=type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        self._note(failing=False)
        up.add_metric([], 1)
        yield up
        yield from self._families(stored)

    def _note(self, *, failing: bool, reason: str = "") -> None:
        # Once per change, not once per scrape (every 15 s while the database is down).
        with self._lock:
            changed, self._failing = self._failing != failing, failing
        if changed and failing:
            log.warning("Metrics: the database could not be read (%s); reporting kling_bot_database_up 0", reason)
        elif changed:
            log.info("Metrics: the database can be read again")

    def _read(self) -> _Stored:
        from bot.foresight import forecasts_in
        from bot.notify import slack_fix

        now = self._clock.now()
        with self._store.reading() as tx:
            answers = {}
            for key, (fetched_at, packs) in tx.latest_answers().items():
                if key not in self._accounts:
                    continue  # an account no longer configured: its figures are history
                # Packs are tagged with the account they were stored under, whoever stored them.
                tagged = [p if p.account == key else dataclasses.replace(p, account=key) for p in packs]
                answers[key] = (fetched_at, tagged)
            outbox = tx.outbox_counts()
            needs_person = sum(
                g["count"]
                for g in tx.failing()
                if slack_fix(g["error"], g["target"], to_user=g["target_is_user"]) is not None
            )
            last_poll = tx.last_poll_at()
            account_polls = {key: tx.last_poll_at(key) for key in self._accounts}
            packs = [p for _, members in answers.values() for p in members]
            # The forecast reads the window's whole history, most of a scrape's time with
            # many packs; it only changes when a poll stores new figures, so it is computed
            # once per poll (and at least every FORECAST_REUSE_S) and reused in between.
            version = (last_poll, tuple(sorted((key, fetched) for key, (fetched, _) in answers.items())))
            cached = self._forecast
            if cached is not None and cached[0] == version and self._clock.monotonic() - cached[1] < FORECAST_REUSE_S:
                ahead = cached[2]
            else:
                window = self._settings.forecast_window_days
                ahead = forecasts_in(tx, packs, now, window_days=window) if packs else []
                self._forecast = (version, self._clock.monotonic(), ahead)
        return _Stored(
            answers=answers,
            outbox=outbox,
            stuck=needs_person + outbox["given_up"],
            last_poll=last_poll,
            account_polls=account_polls,
            forecasts=ahead,
        )

    def _families(self, stored: _Stored) -> Iterator[Metric]:
        from bot.domain.packs import family_totals

        gauges = {name: GaugeMetricFamily(name, text, labels=labels) for name, text, labels in _FAMILIES}
        seen: set[tuple[str, ...]] = set()

        def add(name: str, labels: list[str], value: float) -> None:
            # One sample per series, whatever Kling repeats or the cut to MAX_LABEL_CHARS merges:
            # a scrape with a duplicate series is rejected whole by Prometheus.
            if (name, *labels) not in seen:
                seen.add((name, *labels))
                gauges[name].add_metric(labels, value)

        now = self._clock.now()
        for key, (fetched_at, packs) in sorted(stored.answers.items()):
            account = self._accounts[key]
            add("kling_bot_kling_answer_timestamp_seconds", [account], fetched_at.timestamp())
            for pack in packs:
                labels = [account, *map(_label, (pack.family, pack.pack_id, pack.name, str(pack.status)))]
                add("kling_bot_pack_remaining_units", labels, pack.remaining)
                add("kling_bot_pack_size_units", labels, pack.total)
            for family in family_totals(packs):
                labels = [account, _label(family.family)]
                add("kling_bot_family_remaining_units", labels, family.remaining)
                add("kling_bot_family_size_units", labels, family.total)
                add("kling_bot_family_pending_units", labels, family.pending_remaining)
        for f in stored.forecasts:
            days = f.days_to_run_out(now)
            if days is not None and f.account in self._accounts:
                add("kling_bot_family_run_out_days", [self._accounts[f.account], _label(f.family)], days)
        counts = stored.outbox
        add("kling_bot_outbox_owed_messages", [], counts["owed"])
        add("kling_bot_outbox_failing_messages", [], counts["failing"])
        add("kling_bot_outbox_stuck_messages", [], stored.stuck)
        add("kling_bot_outbox_given_up_messages", [], counts["given_up"])
        add("kling_bot_outbox_sent_messages", [], counts["sent"])
        if stored.last_poll is not None:
            add("kling_bot_last_poll_timestamp_seconds", [], stored.last_poll.timestamp())
        for key, when in sorted(stored.account_polls.items()):
            if when is not None:
                add("kling_bot_account_last_poll_timestamp_seconds", [self._accounts[key]], when.timestamp())
        yield from gauges.values()


_DATABASE_UP = ("kling_bot_database_up", "1 when this scrape could read the database, else 0")
_PACK = ["account", "family", "pack_id", "pack", "status"]
_FAMILY = ["account", "family"]
# (name, help, labels) of every gauge StoredState reports.
_FAMILIES: tuple[tuple[str, str, list[str]], ...] = (
    ("kling_bot_pack_remaining_units", "What a pack has left, as Kling last reported it", _PACK),
    ("kling_bot_pack_size_units", "A pack's total quantity, as Kling last reported it", _PACK),
    ("kling_bot_family_remaining_units", "What a family's online packs have left", _FAMILY),
    ("kling_bot_family_size_units", "The total quantity of a family's online packs", _FAMILY),
    ("kling_bot_family_pending_units", "What a family's packs not yet effective hold", _FAMILY),
    (
        "kling_bot_family_run_out_days",
        "Days until a family runs out at its current pace (only families projected to run out)",
        _FAMILY,
    ),
    ("kling_bot_kling_answer_timestamp_seconds", "When the account's stored Kling answer was fetched", ["account"]),
    ("kling_bot_outbox_owed_messages", "Messages owed to Slack and not given up", []),
    ("kling_bot_outbox_failing_messages", "Owed messages whose last attempt failed", []),
    (
        "kling_bot_outbox_stuck_messages",
        "Messages that need a person: owed with an error waiting will not fix, or given up",
        [],
    ),
    ("kling_bot_outbox_given_up_messages", "Messages given up after OUTBOX_GIVE_UP_DAYS", []),
    ("kling_bot_outbox_sent_messages", "Messages sent (or deliberately skipped) and still kept", []),
    ("kling_bot_last_poll_timestamp_seconds", "When the last successful poll of Kling was (any account)", []),
    ("kling_bot_account_last_poll_timestamp_seconds", "When the last successful poll of this account was", ["account"]),
)
