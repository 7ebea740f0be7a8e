"""Foresight: how fast each family burns, when it runs out, and what will expire unused.

Pure functions over packs, their remaining-quantity history and the clock; nothing here
reads a database or talks to Kling.

- **Burn per pack** comes from its history: only decreases of the remaining quantity count
  as use (a rise is a refund or a correction, never negative burn). Once the history covers
  at least `MIN_HISTORY` (Kling's figures lag up to 12 h, so less misleads), the rate is the
  use over the last `window_days`. Before that, it is the pack's average since it became
  effective, `(total - remaining) / days since effective_time`, labelled as such. A pack with
  no use yet has no rate.
- **Per family and account** the rate is the sum of its online packs' rates, projected
  forward consuming the soonest-expiring pack first (Kling does not document the order; this
  is the assumption): the run-out time (none if it lasts past its last expiry) and, for each
  pack, the units still left when it expires at this pace.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from bot.domain.packs import PackStatus, ResourcePack

MIN_HISTORY = timedelta(hours=24)
DAY_S = 86400.0


class RateBasis(StrEnum):
    RECENT = "recent"
    SINCE_PURCHASE = "since_purchase"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Point:
    """A pack's remaining quantity from `at` on (the history is a step function)."""

    at: datetime
    remaining: float


@dataclass(frozen=True, slots=True)
class PackRate:
    per_day: float
    basis: RateBasis


@dataclass(frozen=True, slots=True)
class PackForecast:
    pack: ResourcePack
    rate: PackRate
    # Units still left when the pack expires at this pace (0 when it is used up first).
    expires_unused: float
    # When, at this pace, the family's consumption empties this pack (None: it expires first
    # or is never reached).
    used_up_at: datetime | None


@dataclass(frozen=True, slots=True)
class FamilyForecast:
    account: str
    family: str
    remaining: float
    total: float
    rate_per_day: float
    rate_basis: RateBasis
    # When the family runs out at this pace; None when it lasts past its last expiry.
    runs_out_at: datetime | None
    expires_unused: float
    packs: tuple[PackForecast, ...] = field(default=())

    def days_to_run_out(self, now: datetime) -> float | None:
        if self.runs_out_at is None:
            return None
        return max(0.0, (self.runs_out_at - now).total_seconds() / DAY_S)


def window_use(pack: ResourcePack, history: Sequence[Point], window_start: datetime) -> float:
    """Units a pack gave up after `window_start`: the sum of its decreases (a rise is a refund
    or a correction, never negative use), Kling's figure now included. Drops at or after the
    pack's expiry are not use."""
    used = 0.0
    previous: float | None = None
    for point in history:
        spent = previous is not None and point.remaining < previous
        if spent and point.at > window_start and (pack.invalid_time is None or point.at < pack.invalid_time):
            used += previous - point.remaining  # type: ignore[operator]
        previous = point.remaining
    if previous is not None and previous > pack.remaining:
        used += previous - pack.remaining  # Kling's figure now, not yet stored
    return used


def _covered_from(history_from: datetime | None, now: datetime, window_days: float) -> datetime | None:
    """Where the rate's window starts, or None while the history is shorter than MIN_HISTORY."""
    if history_from is None or now - history_from < MIN_HISTORY:
        return None
    return max(history_from, now - timedelta(days=window_days))


def _since_purchase(pack: ResourcePack, now: datetime) -> PackRate:
    used = pack.total - pack.remaining
    # The same 24 h floor: an average over a pack effective for two hours is noise.
    if used > 0 and pack.effective_time is not None and now - pack.effective_time >= MIN_HISTORY:
        days = (now - pack.effective_time).total_seconds() / DAY_S
        return PackRate(used / days, RateBasis.SINCE_PURCHASE)
    return PackRate(0.0, RateBasis.NONE)


def pack_rate(
    pack: ResourcePack, history: Sequence[Point], now: datetime, *, window_days: float, history_from: datetime | None
) -> PackRate:
    """One pack's burn per day. `history` is its points in time order (the first at the
    window's start when known); `history_from` is when watching began."""
    started = history[0].at if history else None
    if history_from is not None and (started is None or history_from < started):
        started = history_from
    window_start = _covered_from(started, now, window_days) if history else None
    if window_start is not None:
        days = (now - window_start).total_seconds() / DAY_S
        return PackRate(window_use(pack, history, window_start) / days if days > 0 else 0.0, RateBasis.RECENT)
    return _since_purchase(pack, now)


def family_rate(
    members: Sequence[ResourcePack],
    histories: Mapping[str, Sequence[Point]],
    now: datetime,
    *,
    window_days: float,
    history_from: datetime | None,
) -> PackRate:
    """The family's burn per day. With a day or more of history: everything its packs gave up
    over the window (packs used up or bought meanwhile included) over the time covered, so a
    run-out and a purchase inside the window do not hide the pace. Before that: the sum of
    its online packs' averages since purchase."""
    window_start = _covered_from(history_from, now, window_days)
    if window_start is not None:
        days = (now - window_start).total_seconds() / DAY_S
        used = sum(window_use(p, histories.get(p.pack_id, ()), window_start) for p in members)
        return PackRate(used / days if days > 0 else 0.0, RateBasis.RECENT)
    rates = [_since_purchase(p, now) for p in members if p.status == PackStatus.ONLINE]
    total = sum(r.per_day for r in rates)
    return PackRate(total, RateBasis.SINCE_PURCHASE if total > 0 else RateBasis.NONE)


def forecast_family(
    account: str,
    family: str,
    packs: Sequence[ResourcePack],
    rates: Mapping[str, PackRate],
    now: datetime,
    *,
    rate: PackRate | None = None,
) -> FamilyForecast:
    """Project one family forward at its rate (`rate`, or the sum of its packs' `rates`),
    draining the soonest-expiring available pack first. A pack bought but not yet effective
    joins when it starts; if everything runs dry before that, the family runs out then."""
    usable = [p for p in packs if p.status in (PackStatus.ONLINE, PackStatus.TO_BE_ONLINE)]
    usable.sort(key=lambda p: (p.invalid_time is None, p.invalid_time or now, p.pack_id))
    online = [p for p in usable if p.status == PackStatus.ONLINE]
    if rate is None:
        per_day = sum(rates[p.pack_id].per_day for p in online if p.pack_id in rates)
        bases = {rates[p.pack_id].basis for p in online if p.pack_id in rates and rates[p.pack_id].per_day > 0}
        basis = RateBasis.RECENT if RateBasis.RECENT in bases else RateBasis.SINCE_PURCHASE if bases else RateBasis.NONE
        rate = PackRate(per_day, basis if per_day > 0 else RateBasis.NONE)
    per_day = rate.per_day
    per_pack: list[PackForecast] = []
    clock = now
    runs_out_at: datetime | None = None
    for index, pack in enumerate(usable):
        own = rates.get(pack.pack_id, PackRate(0.0, RateBasis.NONE))
        expiry = pack.invalid_time
        starts = pack.effective_time if pack.status == PackStatus.TO_BE_ONLINE and pack.effective_time else now
        if expiry is not None and expiry <= now:
            # Past its expiry already (Kling's status lags): nothing of it is usable or "to be" lost.
            per_pack.append(PackForecast(pack, own, 0.0, None))
            continue
        if per_day <= 0:
            per_pack.append(PackForecast(pack, own, pack.remaining if expiry else 0.0, None))
            continue
        if starts > clock:
            if runs_out_at is None and index > 0:
                runs_out_at = clock  # dry until this pack starts
            clock = starts
        if expiry is not None and expiry <= clock:
            per_pack.append(PackForecast(pack, own, pack.remaining, None))
            continue
        empty_at = clock + timedelta(days=pack.remaining / per_day)
        if expiry is None or empty_at <= expiry:
            per_pack.append(PackForecast(pack, own, 0.0, empty_at))
            clock = empty_at
            if index == len(usable) - 1 and runs_out_at is None:
                runs_out_at = empty_at
        else:
            unused = pack.remaining - per_day * (expiry - clock).total_seconds() / DAY_S
            per_pack.append(PackForecast(pack, own, max(0.0, unused), None))
            clock = expiry
    return FamilyForecast(
        account=account,
        family=family,
        remaining=sum(p.remaining for p in online),
        total=sum(p.total for p in online),
        rate_per_day=per_day,
        rate_basis=rate.basis,
        runs_out_at=runs_out_at,
        expires_unused=sum(f.expires_unused for f in per_pack),
        packs=tuple(per_pack),
    )


def forecast(
    packs: Iterable[ResourcePack],
    histories: Mapping[tuple[str, str], Sequence[Point]],
    now: datetime,
    *,
    window_days: float = 7,
    history_from: Mapping[str, datetime | None] | None = None,
) -> list[FamilyForecast]:
    """Every family (per account) with an online pack, riskiest first: soonest run-out, then
    the largest waste, then by name. `histories` are keyed by (account, pack id)."""
    by_family: dict[tuple[str, str], list[ResourcePack]] = {}
    for pack in packs:
        by_family.setdefault((pack.account, pack.family), []).append(pack)
    results = []
    for (account, family), members in by_family.items():
        if not any(p.status == PackStatus.ONLINE for p in members):
            continue
        started = (history_from or {}).get(account)
        mine = {p.pack_id: histories.get((account, p.pack_id), ()) for p in members}
        rates = {
            p.pack_id: pack_rate(p, mine[p.pack_id], now, window_days=window_days, history_from=started)
            for p in members
            if p.status == PackStatus.ONLINE
        }
        rate = family_rate(members, mine, now, window_days=window_days, history_from=started)
        results.append(forecast_family(account, family, members, rates, now, rate=rate))
    return sorted(results, key=lambda f: risk_key(f, now))


def risk_key(f: FamilyForecast, now: datetime) -> tuple[float, float, str, str]:
    """Soonest run-out first, then the largest waste."""
    days = f.days_to_run_out(now)
    return (days if days is not None else float("inf"), -f.expires_unused, f.account, f.family.casefold())


# A run-out warning re-arms only once the projection moves this far past the window (a
# purchase, a slower pace), so a wobbling rate does not repeat it.
REARM_MARGIN = timedelta(days=3)


@dataclass(frozen=True, slots=True)
class RunOutState:
    """Where a family's run-out warning stands (kept between polls)."""

    armed: bool = True
    episode: int = 0


@dataclass(frozen=True, slots=True)
class RunOutStep:
    fire: bool
    state: RunOutState


def run_out_step(f: FamilyForecast, state: RunOutState, now: datetime, *, warning_days: int) -> RunOutStep:
    """Fire once when the projected run-out enters the warning window; re-arm (a new episode)
    only when it moves back past the window plus `REARM_MARGIN`, or no run-out is projected."""
    days = f.days_to_run_out(now)
    window = timedelta(days=warning_days)
    inside = days is not None and timedelta(days=days) <= window
    if state.armed and inside:
        return RunOutStep(True, RunOutState(armed=False, episode=state.episode))
    if not state.armed:
        # A family that lasts to its last expiry is, for re-arming, running out then: a rate
        # wobbling between "runs out on the 3rd" and "lasts to the 4th" is not a recovery.
        horizon = days
        if horizon is None and f.rate_per_day > 0:
            expiries = [p.pack.invalid_time for p in f.packs if p.pack.invalid_time]
            horizon = max(((max(expiries) - now).total_seconds() / DAY_S), 0.0) if expiries else None
        if horizon is None or timedelta(days=horizon) > window + REARM_MARGIN:
            return RunOutStep(False, RunOutState(armed=True, episode=state.episode + 1))
    return RunOutStep(False, state)


def waste_worth_warning(pack_forecast: PackForecast) -> bool:
    """Units a pack will leave unused at expiry are worth a warning from 1% of its total."""
    total = pack_forecast.pack.total
    return total > 0 and pack_forecast.expires_unused >= 0.01 * total
