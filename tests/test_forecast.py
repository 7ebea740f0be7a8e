"""The forecast, as pure functions on a fake timeline: burn rates, run-out dates, waste."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.forecast import Point, RateBasis, forecast, pack_rate
from bot.domain.packs import PackStatus, ResourcePack

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def pack(
    pack_id: str,
    *,
    total: float = 1000,
    remaining: float = 1000,
    expires: timedelta = 60 * DAY,
    effective_ago: timedelta = 10 * DAY,
    family: str = "Video Generation",
    status: PackStatus = PackStatus.ONLINE,
    account: str = "default",
) -> ResourcePack:
    return ResourcePack(
        f"{family} - {pack_id}", pack_id, "decreasing_total", total, remaining,
        NOW - effective_ago, NOW - effective_ago, NOW + expires, status, account,
    )  # fmt: skip


def daily(start_remaining: float, per_day: float, days: int, *, end: datetime = NOW) -> list[Point]:
    """A history of one point a day, falling `per_day`, the last at `end`."""
    return [Point(end - (days - i) * DAY, start_remaining - per_day * i) for i in range(days + 1)]


def test_fresh_install_uses_the_average_since_purchase() -> None:
    """No history yet: (total - remaining) / days since effective, labelled since_purchase."""
    p = pack("a", total=3000, remaining=410, effective_ago=80 * DAY)
    rate = pack_rate(p, [], NOW, window_days=7, history_from=None)
    assert rate.basis == RateBasis.SINCE_PURCHASE and rate.per_day == pytest.approx(2590 / 80)


def test_a_pack_with_no_use_has_no_rate_and_never_divides_by_zero() -> None:
    """Untouched, or effective just now: rate 0, basis none, no run-out, everything left is wasted at expiry."""
    for p in (pack("a"), pack("b", remaining=900, effective_ago=timedelta(0))):
        assert pack_rate(p, [], NOW, window_days=7, history_from=None).basis == RateBasis.NONE
    [family] = forecast([pack("a", remaining=1000, expires=10 * DAY)], {}, NOW)
    assert family.rate_basis == RateBasis.NONE and family.runs_out_at is None and family.expires_unused == 1000


def test_recent_rate_counts_only_decreases_over_the_window() -> None:
    """100 a day for 10 days, with a refund of 500 mid-way: the rate is 100/day, never pulled down."""
    history = daily(2000, 100, 10)
    refund = Point(history[5].at + timedelta(hours=1), history[5].remaining + 500)
    history = [*history[:6], refund, *(Point(pt.at, pt.remaining + 500) for pt in history[6:])]
    p = pack("a", total=3000, remaining=history[-1].remaining)
    rate = pack_rate(p, history, NOW, window_days=7, history_from=NOW - 10 * DAY)
    assert rate.basis == RateBasis.RECENT and rate.per_day == pytest.approx(100)


def test_less_than_a_day_of_history_falls_back_to_the_purchase_average() -> None:
    """Kling lags up to 12 h: 6 hours of history is not a rate."""
    history = [Point(NOW - timedelta(hours=6), 900), Point(NOW, 800)]
    p = pack("a", total=1000, remaining=800, effective_ago=20 * DAY)
    rate = pack_rate(p, history, NOW, window_days=7, history_from=NOW - timedelta(hours=6))
    assert rate.basis == RateBasis.SINCE_PURCHASE and rate.per_day == pytest.approx(10)


def test_the_soonest_expiring_pack_is_drained_first_and_its_leftover_is_waste() -> None:
    """A (500, expires in 3 days) and B (2,000, in 30): at 100/day A wastes 200, B runs out on day 23."""
    a = pack("a", remaining=500, expires=3 * DAY)
    b = pack("b", total=3000, remaining=2000, expires=30 * DAY)
    histories = {("default", "a"): daily(1200, 100, 7), ("default", "b"): daily(2000, 0, 7)}
    [family] = forecast([a, b], histories, NOW, history_from={"default": NOW - 8 * DAY})
    assert family.rate_per_day == pytest.approx(100)
    assert family.expires_unused == pytest.approx(200)
    assert family.runs_out_at == NOW + 23 * DAY
    by_id = {f.pack.pack_id: f for f in family.packs}
    assert by_id["a"].expires_unused == pytest.approx(200) and by_id["b"].expires_unused == 0


def test_a_family_that_outlasts_its_packs_does_not_run_out() -> None:
    """Slow use: the last pack expires with units left, so there is no run-out date, only waste."""
    [family] = forecast(
        [pack("a", remaining=900, expires=5 * DAY)],
        {("default", "a"): daily(1600, 100, 7)},
        NOW,
        history_from={"default": NOW - 8 * DAY},
    )
    assert family.runs_out_at is None and family.expires_unused == pytest.approx(400)


def test_forecast_matches_what_happens_within_a_day() -> None:
    """Simulated day by day at a steady 250/day: the run-out forecast a week in is within a day of the truth."""
    total, per_day = 10000, 250
    start = NOW - 7 * DAY
    history = [Point(start + i * DAY, total - per_day * i) for i in range(8)]
    p = pack("a", total=total, remaining=history[-1].remaining, effective_ago=7 * DAY, expires=90 * DAY)
    [family] = forecast([p], {("default", "a"): history}, NOW, history_from={"default": start})
    truth = start + timedelta(days=total / per_day)
    assert family.runs_out_at is not None and abs(family.runs_out_at - truth) <= DAY


def test_families_are_per_account_and_riskiest_first() -> None:
    """The same family in two accounts is two forecasts; the one running out soonest comes first."""
    packs = [
        pack("a", remaining=5000, account="studio"),
        pack("b", remaining=300, account="lab"),
        pack("c", remaining=800, family="Image Generation", account="lab"),
    ]
    histories = {
        ("studio", "a"): daily(5700, 100, 7),
        ("lab", "b"): daily(1000, 100, 7),
        ("lab", "c"): daily(800, 0, 7),
    }
    results = forecast(packs, histories, NOW, history_from={"studio": NOW - 9 * DAY, "lab": NOW - 9 * DAY})
    assert [(f.account, f.family) for f in results] == [
        ("lab", "Video Generation"),
        ("studio", "Video Generation"),
        ("lab", "Image Generation"),
    ]
    assert results[0].runs_out_at == NOW + 3 * DAY


def test_pending_and_ended_packs_are_not_drained() -> None:
    """Only online packs are consumed in the projection; a family with none online has no forecast."""
    packs = [pack("p", status=PackStatus.TO_BE_ONLINE), pack("x", status=PackStatus.EXPIRED, family="Lip Sync")]
    assert forecast(packs, {}, NOW) == []


def test_a_run_out_and_a_purchase_inside_the_window_do_not_hide_the_pace() -> None:
    """1,000/day: pack A ran out 2 days ago, B was bought then; the family still burns 1,000/day."""
    a = pack("a", total=5000, remaining=0, status=PackStatus.RUN_OUT, effective_ago=30 * DAY)
    b = pack("b", total=10000, remaining=8000, effective_ago=2 * DAY, expires=90 * DAY)
    histories = {
        ("default", "a"): [Point(NOW - 7 * DAY + i * DAY, 5000 - 1000 * i) for i in range(6)],
        ("default", "b"): [Point(NOW - 2 * DAY, 10000), Point(NOW - DAY, 9000), Point(NOW, 8000)],
    }
    [family] = forecast([a, b], histories, NOW, history_from={"default": NOW - 30 * DAY})
    assert family.rate_per_day == pytest.approx(1000)
    assert family.runs_out_at is not None and abs(family.runs_out_at - (NOW + 8 * DAY)) <= DAY


def test_a_pack_bought_but_not_yet_active_joins_the_projection_when_it_starts() -> None:
    """500 left at 100/day, a pack of 3,000 starting in 2 days: no run-out in 5 days, but in 35."""
    online = pack("a", remaining=500, expires=60 * DAY)
    pending = ResourcePack(
        "Video Generation - b", "b", "decreasing_total", 3000, 3000, NOW, NOW + 2 * DAY, NOW + 90 * DAY,
        PackStatus.TO_BE_ONLINE,
    )  # fmt: skip
    histories = {("default", "a"): daily(1200, 100, 7)}
    [family] = forecast([online, pending], histories, NOW, history_from={"default": NOW - 8 * DAY})
    assert family.runs_out_at == NOW + 35 * DAY


def test_a_pack_past_its_expiry_is_not_counted_as_waste() -> None:
    """Kling still says online after the expiry time: nothing of it is "going to be" lost."""
    [family] = forecast([pack("a", remaining=700, expires=-DAY)], {}, NOW)
    assert family.expires_unused == 0


def test_a_rate_wobbling_around_the_last_expiry_warns_once() -> None:
    """Runs out a day before its last expiry, then lasts to it, then runs out again: one warning."""
    from bot.domain.forecast import RunOutState, run_out_step

    state = RunOutState()
    fired = 0
    for remaining in (1010, 990, 1010, 990, 1010):
        p = pack("a", remaining=remaining, expires=5 * DAY)
        f = forecast(
            [p], {("default", "a"): daily(remaining + 1400, 200, 7)}, NOW, history_from={"default": NOW - 9 * DAY}
        )[0]
        step = run_out_step(f, state, NOW, warning_days=7)
        fired += step.fire
        state = step.state
    assert fired == 1
