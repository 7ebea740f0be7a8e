"""One check pass and one digest, as database transactions: detect, decide, owe.

Sending is apart (bot/notify.py): what a pass decides to say is written to the outbox in the
same transaction as the new pack state, so a crash, a restart or a Slack outage can delay
a warning but never lose or repeat it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from typing import Any

from bot.config import Settings
from bot.domain.accounts import DEFAULT_ACCOUNT, scoped
from bot.domain.alerts import EventKind, PackEvent, detect_pack_events, expiry_level, key_part
from bot.domain.forecast import (
    FamilyForecast,
    PackForecast,
    RunOutState,
    run_out_step,
    waste_worth_warning,
)
from bot.domain.mutes import family_scope, pack_scope
from bot.domain.packs import PackStatus, ResourcePack, family_totals, resolve_family
from bot.domain.thresholds import Level, Threshold, ThresholdKind, family_levels, step, usable
from bot.foresight import forecasts_in
from bot.store.db import Store, SubscriptionRow, Tx, from_ms, to_ms
from bot.views.alerts import pack_event_message, run_out_ahead_message, threshold_dm, with_mute
from bot.views.balance import by_risk
from bot.views.charts import TrendSeries
from bot.views.digest import DigestData, FamilyUsage, Trend, digest_message
from bot.views.forecast import rate_text as forecast_rate_text

log = logging.getLogger(__name__)

# Housekeeping, once a day: notifications sent more than KEEP_SENT ago are forgotten, and
# snapshots older than any digest or trend would look at.
PRUNE_EVERY = timedelta(days=1)
# Less history than this is none: "used 0 since a minute ago" says nothing.
HISTORY_MIN = timedelta(minutes=5)
# Family names in subscription states: up to this long as they are (what release 0.1.0
# could store), hashed beyond.
FAMILY_KEY_LIMIT = 255
KEEP_SENT = timedelta(days=90)
KEEP_SNAPSHOTS = timedelta(days=400)


@dataclass(frozen=True)
class CheckReport:
    packs: int
    # Accounts polled for the first time in this pass: their state is a baseline.
    baselined: list[str] = field(default_factory=list)
    warnings_queued: list[str] = field(default_factory=list)
    dms_queued: list[str] = field(default_factory=list)
    snapshots_written: int = 0

    @property
    def baseline(self) -> bool:
        return bool(self.baselined)


def run_check(
    store: Store,
    packs: Sequence[ResourcePack],
    now: datetime,
    settings: Settings,
    *,
    accounts: Sequence[str] | None = None,
) -> CheckReport:
    """Compare Kling's packs with the stored state; owe a warning for each new event.

    `accounts` are the accounts that answered (default: those `packs` belong to, or the
    default account): only they are decided on. An account that could not be asked keeps
    its state untouched, so its packs are not taken for gone.
    """
    checked = list(accounts) if accounts is not None else sorted({p.account for p in packs} or {DEFAULT_ACCOUNT})
    names = settings.account_names
    warnings: list[str] = []
    baselined: list[str] = []
    written = 0
    checked_packs = [p for p in packs if p.account in checked]
    with store.transaction() as tx:
        # The forecast says what an expiring pack will really leave unused, and which families
        # run out soon. It reads the history as it was before this poll, plus Kling's figures now.
        forecasts = _safe_forecasts(tx, checked_packs, now, settings)
        waste = {(pf.pack.account, pf.pack.pack_id): (pf, f) for f in forecasts or () for pf in f.packs}
        for account in checked:
            mine = [p for p in packs if p.account == account]
            previous = tx.pack_states(account)
            if previous is None:
                baselined.append(account)
            detection = detect_pack_events(previous, mine, now, warning_days=settings.expiry_warning_days)
            for old, new in detection.reissued:
                log.info("Kling reports pack %s under a new id %s; treated as the same pack", old[:80], new[:80])
            owed, not_yet = _owe_warnings(tx, detection.events, mine, now, settings, names, waste)
            warnings.extend(owed)
            states = dict(detection.states)
            for pack_id in not_yet:
                # Not warned (no waste at this pace): stay as before, so the reminder comes
                # up again at the next poll and is given if waste appears (use slows down).
                earlier = (previous or {}).get(pack_id)
                states[pack_id] = replace(states[pack_id], expiry_level=earlier.expiry_level if earlier else 0)
            written += tx.save_packs(states, previous, now, reissued=detection.reissued, account=account)
        if forecasts is not None:  # without a forecast, run-out states stay as they are
            warnings.extend(_step_run_out(tx, forecasts, now, settings, baselined))
        dms = _step_subscriptions(tx, [p for p in packs if p.account in checked], now, settings)
        last_prune = tx.get_meta("last_prune_at")
        if last_prune is None or to_ms(now) - int(last_prune) >= PRUNE_EVERY.total_seconds() * 1000:
            tx.prune(now, sent_older_than=KEEP_SENT, snapshots_older_than=KEEP_SNAPSHOTS)
    return CheckReport(len(packs), baselined, warnings, dms, written)


def _owe_warnings(
    tx: Tx,
    events: Sequence[PackEvent],
    packs: Sequence[ResourcePack],
    now: datetime,
    settings: Settings,
    names: Mapping[str, str] | None,
    waste: Mapping[tuple[str, str], tuple[PackForecast, FamilyForecast]] | None = None,
) -> tuple[list[str], list[str]]:
    """The keys owed now, and the ids of packs whose expiry reminder was held back because
    at this pace they are used up before they expire."""
    if not settings.alert_channel:
        if events:
            log.warning("%d pack event(s) but no ALERT_CHANNEL or DIGEST_CHANNEL is set to warn in", len(events))
        return [], []
    owed = []
    held: list[str] = []
    # Expiry events recur at every poll until the pack expires; skip rendering the ones
    # already owed or sent (the insert would ignore them anyway).
    known = tx.existing_keys([e.key for e in events])
    for event in events:
        if event.key in known:
            continue
        projected, family = (waste or {}).get((event.pack.account, event.pack.pack_id), (None, None))
        if event.kind == EventKind.EXPIRING and projected is not None and not waste_worth_warning(projected):
            # At this pace the pack is used up before it expires: nothing to warn about yet.
            held.append(event.pack.pack_id)
            continue
        try:
            message = pack_event_message(
                event,
                now,
                packs,
                account_names=names,
                unused_at_expiry=projected.expires_unused if projected is not None else None,
                rate_text=forecast_rate_text(family) if family is not None else "",
            )
        except Exception:
            # One pack that cannot be rendered must not stop the warnings for the rest.
            log.exception("Could not write the %s warning for pack %s; skipped", event.kind, event.pack.pack_id)
            continue
        message = with_mute(message, pack_scope(event.pack.account, event.pack.pack_id), event.pack.name)
        if tx.enqueue(event.key, str(event.kind), settings.alert_channel, message, now):
            owed.append(event.key)
    return owed, held


def _safe_forecasts(
    tx: Tx, packs: Sequence[ResourcePack], now: datetime, settings: Settings
) -> list[FamilyForecast] | None:
    try:
        # A savepoint: a failure here must not abort (on PostgreSQL) the check's transaction.
        with tx.conn.begin_nested():
            return forecasts_in(tx, packs, now, window_days=settings.forecast_window_days)
    except Exception:
        log.exception("Could not compute the forecast; checking without it")
        return None


def _step_run_out(
    tx: Tx,
    forecasts: Sequence[FamilyForecast],
    now: datetime,
    settings: Settings,
    baselined: Sequence[str],
) -> list[str]:
    """Owe one run-out-ahead warning per family whose projected run-out enters the window."""
    states = tx.run_out_states()
    changed: dict[tuple[str, str], RunOutState] = {}
    owed: list[str] = []
    # An account's first forecast (a new install, or an upgrade from before forecasts) only
    # records where each family stands: what was already true is not news.
    first = {a for a in {f.account for f in forecasts} if tx.get_meta(_forecast_baseline_key(a)) is None}
    for account in first:
        tx.set_meta(_forecast_baseline_key(account), str(to_ms(now)))
    # A family with no online pack has no forecast and keeps its state: running out is not a
    # recovery, and a purchase re-arms only by moving the projection past the margin.
    for f in forecasts:
        key = (f.account, key_part(f.family, FAMILY_KEY_LIMIT))
        before = states.get(key, RunOutState())
        step_ = run_out_step(f, before, now, warning_days=settings.forecast_warning_days)
        if step_.state != before:
            changed[key] = step_.state
        # Nothing on an account's first poll for what was already true (no storm on install).
        if not step_.fire or f.account in baselined or f.account in first or not settings.alert_channel:
            continue
        event_key = f"run_out_ahead:{scoped(f.account, key_part(f.family))}:{before.episode}"
        message = run_out_ahead_message(
            f, now, warning_days=settings.forecast_warning_days, account_names=settings.account_names
        )
        message = with_mute(message, family_scope(f.account, f.family), f.family, what="family")
        if tx.enqueue(event_key, "run_out_ahead", settings.alert_channel, message, now):
            owed.append(event_key)
    tx.set_run_out_states(changed)
    return owed


def _forecast_baseline_key(account: str) -> str:
    return "forecast_baseline_at" if account == DEFAULT_ACCOUNT else f"forecast_baseline_at:{account}"


def _step_subscriptions(tx: Tx, packs: Sequence[ResourcePack], now: datetime, settings: Settings) -> list[str]:
    subscriptions = tx.subscriptions()
    if not subscriptions:
        return []
    levels = family_levels(packs)
    states = tx.subscription_states()
    owed: list[tuple[str, str, dict[str, Any], bool]] = []
    changed: list[tuple[int, str, bool, int]] = []
    for sub in subscriptions:
        if not sub.channel and settings.allowed_users and sub.user_id not in settings.allowed_users:
            # Access is checked when a DM would be owed, not only when it was subscribed:
            # someone removed from KLING_ALLOWED_USERS hears nothing more.
            continue
        try:
            # Pure evaluation (no database work inside), so one bad row (say a threshold an
            # older release stored that cannot be evaluated) skips itself and nothing else.
            dms, steps = _step_subscription(sub, levels, states, settings.account_names)
        except Exception:
            log.exception("Subscription %d could not be checked; skipped", sub.id)
            continue
        owed.extend(dms)
        changed.extend(steps)
    queued = [
        key
        for key, target, message, to_user in owed
        if tx.enqueue(key, "threshold", target, message, now, to_user=to_user)
    ]
    tx.set_subscription_states(changed)
    return queued


def _step_subscription(
    sub: SubscriptionRow,
    levels: dict[tuple[str, str], Level],
    states: dict[tuple[int, str], tuple[bool, int]],
    names: Mapping[str, str] | None,
) -> tuple[list[tuple[str, str, dict[str, Any], bool]], list[tuple[int, str, bool, int]]]:
    """One subscription's poll: what it owes (key, target, message, to a user?) and its changed states."""
    threshold = Threshold(ThresholdKind(sub.kind), sub.value)
    if not usable(threshold):
        log.warning("Subscription %d has an unusable threshold (%r); skipped until it is removed", sub.id, sub.value)
        return [], []
    owed = []
    changed = []
    for level in _levels_for(levels, sub.account, sub.family):
        # Within the default account, the keys earlier releases stored (no account in them).
        family_key = scoped(level.account, key_part(level.family, FAMILY_KEY_LIMIT))
        # No stored state means the default: armed, never crossed.
        armed, crossings = states.get((sub.id, family_key), (True, 0))
        outcome = step(threshold, level, armed=armed)
        new_crossings = crossings + 1 if outcome.fire else crossings
        if outcome.fire:
            key = f"threshold:{sub.id}:{scoped(level.account, key_part(level.family))}:{new_crossings}"
            message = threshold_dm(
                threshold,
                level,
                family_filter=sub.family,
                account_filter=sub.account,
                account_names=names,
                to_channel=bool(sub.channel),
                subscription_id=sub.id,
            )
            owed.append((key, sub.channel or sub.user_id, message, not sub.channel))
        if (outcome.armed, new_crossings) != (armed, crossings):
            changed.append((sub.id, family_key, outcome.armed, new_crossings))
    return owed, changed


def _levels_for(levels: dict[tuple[str, str], Level], account: str, family: str) -> list[Level]:
    """The levels a subscription watches: every family of every account, or narrowed to one
    account and/or one family (each family of each account on its own)."""
    chosen = [lvl for (acct, _), lvl in levels.items() if not account or acct == account]
    if not family:
        return chosen
    # Usually stored resolved; typed text (saved while Kling was unreachable) resolves here.
    name = resolve_family(family, {lvl.family for lvl in chosen})
    return [lvl for lvl in chosen if lvl.family == name] if name else []


# -- digest -------------------------------------------------------------------------------


def digest_key(now: datetime, settings: Settings) -> str:
    return f"digest:{now.astimezone(settings.zone).date().isoformat()}"


def compose_digest(
    tx: Tx,
    packs: Sequence[ResourcePack],
    now: datetime,
    settings: Settings,
    *,
    stale_note: str | None = None,
    failed_accounts: Sequence[str] = (),
) -> dict[str, object]:
    last_ms = tx.get_meta("last_digest_at")
    since = (from_ms(int(last_ms)) if last_ms else None) or now - timedelta(days=1)
    # Usage is known only from an account's first poll on; within minutes of it there is none.
    starts = [tx.baseline_at(a) for a in sorted({p.account for p in packs} or {DEFAULT_ACCOUNT})]
    history_from = max((t for t in starts if t is not None), default=None)
    # History for usage needs every account's; a trend needs any.
    has_history = bool(starts) and all(t is not None and now - t >= HISTORY_MIN for t in starts)
    any_history = any(t is not None and now - t >= HISTORY_MIN for t in starts)
    before = tx.remaining_since(since)
    used: dict[tuple[str, str], float] = {}
    for pack in packs:
        earlier = before.get((pack.account, pack.pack_id))
        if earlier is not None:
            key = (pack.account, pack.family)
            used[key] = used.get(key, 0.0) + max(0.0, earlier - pack.remaining)
    forecasts = forecasts_in(tx, packs, now, window_days=settings.forecast_window_days)
    totals = by_risk(family_totals(packs), forecasts)
    usage = [FamilyUsage(t, used.get((t.account, t.family), 0.0)) for t in totals]
    trend = trend_series(tx, packs, forecasts, now, settings) if any_history else None
    expiring = sorted(
        (p for p in packs if expiry_level(p, now, settings.expiry_warning_days) is not None),
        key=lambda p: p.invalid_time or now,
    )
    by_id = {(p.account, p.pack_id): p for p in packs}
    ended = [
        by_id[(row["account"], row["pack_id"])]
        for row in tx.packs_changed_status_since(since, [PackStatus.RUN_OUT, PackStatus.EXPIRED])
        if (row["account"], row["pack_id"]) in by_id
    ]
    data = DigestData(
        now=now,
        since=since,
        first=last_ms is None,
        usage=usage,
        expiring=expiring,
        ended=ended,
        zone_name=settings.digest_timezone,
        digest_time=settings.digest_time,
        stale_note=stale_note,
        any_packs=bool(packs),
        history_from=history_from,
        has_history=has_history,
        account_names=settings.account_names,
        failed_accounts=tuple(failed_accounts),
        forecasts=tuple(forecasts),
        warning_days=settings.forecast_warning_days,
        trend=trend,
    )
    return digest_message(data)


TREND_DAYS = 7


def trend_series(
    tx: Tx,
    packs: Sequence[ResourcePack],
    forecasts: Sequence[FamilyForecast],
    now: datetime,
    settings: Settings,
    *,
    days: int = TREND_DAYS,
) -> Trend:
    """Each family's remaining quantity at the end of each of the last `days` days (now for
    today), riskiest families first; None for days before the history starts. A pack counts
    on the days it was effective and not yet expired."""
    zone = settings.zone
    today = now.astimezone(zone).date()
    day_list = [today - timedelta(days=back) for back in range(days - 1, -1, -1)]
    # Each past day at its end (local midnight after it); today as it is now.
    moments = [min(now, datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone)) for day in day_list[:-1]] + [
        now
    ]
    labels = [f"{day:%b %d}" for day in day_list]
    history = tx.histories(moments[0])

    def value_at(key: tuple[str, str], moment: datetime) -> float | None:
        value = None
        for point in history.get(key, ()):
            if point.at > moment:
                break
            value = point.remaining
        return value

    at = [{key: v for key in history if (v := value_at(key, m)) is not None} for m in moments]
    names = settings.account_names
    series = []
    for f in forecasts:
        members = [p for p in packs if (p.account, p.family) == (f.account, f.family)]
        values: list[float | None] = []
        for moment, remaining in zip(moments, at, strict=True):
            known = [
                remaining[(p.account, p.pack_id)]
                for p in members
                if (p.account, p.pack_id) in remaining
                and (p.invalid_time is None or p.invalid_time > moment)
                and (p.effective_time is None or p.effective_time <= moment)
            ]
            values.append(sum(known) if known else None)
        name = f"{names.get(f.account, f.account)}/{f.family}" if names else f.family
        series.append(TrendSeries(name, tuple(values)))
    return Trend(tuple(labels), tuple(series))


def queue_digest(
    store: Store,
    packs: Sequence[ResourcePack],
    now: datetime,
    settings: Settings,
    *,
    key: str | None = None,
    stale_note: str | None = None,
    failed_accounts: Sequence[str] = (),
) -> bool:
    """Owe today's digest to DIGEST_CHANNEL; False if it was already owed or sent."""
    key = key or digest_key(now, settings)
    with store.transaction() as tx:
        if tx.existing_keys([key]):
            return False
        message = compose_digest(tx, packs, now, settings, stale_note=stale_note, failed_accounts=failed_accounts)
        queued = tx.enqueue(key, "digest", settings.digest_channel, message, now)
        if queued:
            tx.set_meta("last_digest_at", str(to_ms(now)))
        return queued
