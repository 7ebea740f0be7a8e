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


def pack_rate(
    pack: ResourcePack, history: Sequence[Point], now: datetime, *, window_days: float, history_from: datetime | None
) -> PackRate:
    """One pack's burn per day. `history` is its points in time order (the first at or
    before the window's start when there is one); `history_from` is when watching began."""
    started = history[0].at if history else None
    if history_from is not None and (started is None or history_from < started):
        started = history_from
    if started is not None and now - started >= MIN_HISTORY and history:
        window_start = max(started, now - timedelta(days=window_days))
        used = 0.0
        previous: float | None = None
        for point in history:
            if previous is not None and point.at > window_start and point.remaining < previous:
                used += previous - point.remaining
            previous = point.remaining
        if history[-1].remaining > pack.remaining and now > window_start:
            used += history[-1].remaining - pack.remaining  # Kling's figure now, not yet stored
        days = (now - window_start).total_seconds() / DAY_S
        return PackRate(used / days if days > 0 else 0.0, RateBasis.RECENT)
    used = pack.total - pack.remaining
    # The same 24 h floor: an average over a pack effective for two hours is noise.
    if used > 0 and pack.effective_time is not None and now - pack.effective_time >= MIN_HISTORY:
        days = (now - pack.effective_time).total_seconds() / DAY_S
        return PackRate(used / days, RateBasis.SINCE_PURCHASE)
    return PackRate(0.0, RateBasis.NONE)


def forecast_family(
    account: str, family: str, packs: Sequence[ResourcePack], rates: Mapping[str, PackRate], now: datetime
) -> FamilyForecast:
    """Project one family forward: its online packs drained soonest-expiring first at the
    family's total rate."""
    online = sorted(
        (p for p in packs if p.status == PackStatus.ONLINE),
        key=lambda p: (p.invalid_time is None, p.invalid_time or now, p.pack_id),
    )
    rate = sum(rates[p.pack_id].per_day for p in online if p.pack_id in rates)
    bases = {rates[p.pack_id].basis for p in online if p.pack_id in rates and rates[p.pack_id].per_day > 0}
    basis = (
        RateBasis.RECENT
        if RateBasis.RECENT in bases
        else RateBasis.SINCE_PURCHASE
        if RateBasis.SINCE_PURCHASE in bases
        else RateBasis.NONE
    )
    per_pack: list[PackForecast] = []
    clock = now
    runs_out_at: datetime | None = None
    for index, pack in enumerate(online):
        pack_rate_ = rates.get(pack.pack_id, PackRate(0.0, RateBasis.NONE))
        expiry = pack.invalid_time
        if rate <= 0:
            per_pack.append(PackForecast(pack, pack_rate_, pack.remaining if expiry else 0.0, None))
            continue
        start = max(clock, now)
        if expiry is not None and expiry <= start:
            per_pack.append(PackForecast(pack, pack_rate_, pack.remaining, None))
            continue
        empty_at = start + timedelta(days=pack.remaining / rate)
        if expiry is None or empty_at <= expiry:
            per_pack.append(PackForecast(pack, pack_rate_, 0.0, empty_at))
            clock = empty_at
            if index == len(online) - 1:
                runs_out_at = empty_at
        else:
            unused = pack.remaining - rate * (expiry - start).total_seconds() / DAY_S
            per_pack.append(PackForecast(pack, pack_rate_, max(0.0, unused), None))
            clock = expiry
    return FamilyForecast(
        account=account,
        family=family,
        remaining=sum(p.remaining for p in online),
        total=sum(p.total for p in online),
        rate_per_day=rate,
        rate_basis=basis,
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
    rates: dict[tuple[str, str], PackRate] = {}
    for pack in packs:
        by_family.setdefault((pack.account, pack.family), []).append(pack)
        if pack.status == PackStatus.ONLINE:
            started = (history_from or {}).get(pack.account)
            rates[(pack.account, pack.pack_id)] = pack_rate(
                pack,
                histories.get((pack.account, pack.pack_id), ()),
                now,
                window_days=window_days,
                history_from=started,
            )
    results = []
    for (account, family), members in by_family.items():
        if not any(p.status == PackStatus.ONLINE for p in members):
            continue
        family_rates = {p.pack_id: rates[(account, p.pack_id)] for p in members if (account, p.pack_id) in rates}
        results.append(forecast_family(account, family, members, family_rates, now))
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
    if not state.armed and (days is None or timedelta(days=days) > window + REARM_MARGIN):
        return RunOutStep(False, RunOutState(armed=True, episode=state.episode + 1))
    return RunOutStep(False, state)


def waste_worth_warning(pack_forecast: PackForecast) -> bool:
    """Units a pack will leave unused at expiry are worth a warning from 1% of its total."""
    total = pack_forecast.pack.total
    return total > 0 and pack_forecast.expires_unused >= 0.01 * total
