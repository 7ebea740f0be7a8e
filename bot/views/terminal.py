"""The balance as a terminal table and as JSON, for `kling-bot balance`. The terminal is for
whoever runs the bot, so errors keep their details here (hosts, codes, settings)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.domain.forecast import FamilyForecast
from bot.domain.packs import family_totals, select_packs, status_label
from bot.kling.accounts import AccountBalance, AllBalances
from bot.kling.parse import pack_to_api_dict
from bot.views.format import LAG_NOTE, age, iso_utc, percent, quantity, relative, utc_text


def balance_json(balances: AllBalances, *, include_inactive: bool, forecasts: Sequence[FamilyForecast] = ()) -> str:
    """{"fetched_at", "stale", "packs", "families"}; with several accounts each pack has its
    "account" and "errors" lists the accounts that could not be read. Each pack says what it
    will leave unused at expiry at this pace, and each family its forecast."""
    unused = {(pf.pack.account, pf.pack.pack_id): pf.expires_unused for f in forecasts for pf in f.packs}
    readable = balances.readable
    names = {a.account.key: a.account.name for a in balances.accounts}
    fetched = min((a.snapshot.fetched_at for a in readable if a.snapshot), default=None)
    packs: list[dict[str, Any]] = []
    for answer in readable:
        for p in select_packs(answer.packs, include_inactive=include_inactive):
            row: dict[str, Any] = {
                **pack_to_api_dict(p),
                "purchase_time": iso_utc(p.purchase_time),
                "effective_time": iso_utc(p.effective_time),
                "invalid_time": iso_utc(p.invalid_time),
                "expires_unused": _number(unused.get((p.account, p.pack_id))),
            }
            if balances.multi:
                row["account"] = answer.account.name
            packs.append(row)
    payload: dict[str, Any] = {
        "fetched_at": iso_utc(fetched),
        "stale": any(a.stale for a in readable),
        "packs": packs,
        "families": [
            {
                # null with one account, which is never named.
                "account": names.get(f.account, f.account) if balances.multi else None,
                "family": f.family,
                "remaining": f.remaining,
                "total": f.total,
                "rate_per_day": round(f.rate_per_day, 3),
                "rate_basis": str(f.rate_basis),
                "runs_out_at": iso_utc(f.runs_out_at),
                "expires_unused": _number(f.expires_unused),
            }
            for f in forecasts
        ],
    }
    stale = [a for a in readable if a.stale and a.error]
    if stale:
        payload["stale_reason"] = "; ".join(_named(a, balances.multi) + a.error.describe() for a in stale if a.error)
    if balances.multi:
        payload["errors"] = [
            {"account": a.account.name, "message": f"{a.error.describe()}. {a.error.advice}" if a.error else ""}
            for a in balances.failed
        ]
    return json.dumps(payload, indent=2, ensure_ascii=False)


def _number(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _named(answer: AccountBalance, multi: bool) -> str:
    return f"account {answer.account.name}: " if multi else ""


def balance_table(
    balances: AllBalances, now: datetime, *, include_inactive: bool, forecasts: Sequence[FamilyForecast] = ()
) -> str:
    """One table (with several accounts, one section per account) and totals per family."""
    lines: list[str] = []
    for answer in balances.accounts:
        if balances.multi:
            if lines:
                lines.append("")
            lines.append(f"== Account {answer.account.name} ==")
        if answer.snapshot is None:
            error = answer.error
            lines.append(f"ERROR: could not be read: {error.describe()}. {error.advice}" if error else "ERROR")
            continue
        mine = [f for f in forecasts if f.account == answer.account.key]
        lines.extend(_account_table(answer, now, include_inactive=include_inactive, forecasts=mine))
    lines.append("")
    fetched = [a.snapshot.fetched_at for a in balances.readable if a.snapshot]
    lines.append(f"{LAG_NOTE}" + (f" Fetched {utc_text(min(fetched))}." if fetched else ""))
    return "\n".join(lines)


def _account_table(
    answer: AccountBalance, now: datetime, *, include_inactive: bool, forecasts: Sequence[FamilyForecast]
) -> list[str]:
    snapshot = answer.snapshot
    assert snapshot is not None
    packs = select_packs(snapshot.packs, include_inactive=include_inactive)
    lines: list[str] = []
    if snapshot.stale:
        reason = snapshot.error.describe() if snapshot.error else "refresh failed"
        lines.append(f"WARNING: Kling could not be asked just now ({reason}); data is {age(snapshot.age(now))} old.")
    if not packs:
        hidden = len(snapshot.packs)
        if hidden and not include_inactive:
            lines.append(f"No active packs ({hidden} expired or used up; --all lists them).")
        else:
            lines.append("Kling reports no resource packs in the look-back window (KLING_LOOKBACK_DAYS).")
        return lines
    header = ("Pack", "Status", "Remaining", "Total", "Left", "Expires (UTC)")
    rows = [
        (
            p.name,
            status_label(p.status),
            quantity(p.remaining),
            quantity(p.total),
            percent(p.fraction_left),
            f"{utc_text(p.invalid_time)} ({relative(p.invalid_time, now)})" if p.invalid_time else "-",
        )
        for p in packs
    ]
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    right = {2, 3, 4}

    def fmt(row: tuple[str, ...]) -> str:
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(row)]
        return "  ".join(cells).rstrip()

    lines.append(fmt(header))
    lines.append("  ".join("-" * w for w in widths).rstrip())
    lines.extend(fmt(r) for r in rows)
    # Every family with an active pack, as in Slack: one whose packs are all still to start
    # says so rather than vanishing from the totals.
    totals = family_totals(snapshot.packs)
    if forecasts:
        lines.append("")
        lines.append("Forecast per family at this pace (riskiest first; the soonest-expiring pack assumed used first):")
        lines.extend(_forecast_table(forecasts, now))
    if totals:
        lines.append("")
        lines.append("Totals of active packs per family:")
        for t in totals:
            text = (
                f"{quantity(t.remaining)} / {quantity(t.total)} left ({percent(t.fraction_left)})"
                if t.online_packs
                else "nothing active yet"
            )
            if t.pending_packs:
                text += f", +{quantity(t.pending_remaining)} in {t.pending_packs} pack(s) not yet active"
            lines.append(f"  {t.family}: {text}")
    return lines


def _forecast_table(forecasts: Sequence[FamilyForecast], now: datetime) -> list[str]:
    header = ("Family", "Left", "Use/day", "Basis", "Runs out (UTC)", "Unused at expiry")
    rows = [
        (
            f.family,
            quantity(f.remaining),
            quantity(round(f.rate_per_day, 1)) if f.rate_per_day > 0 else "-",
            {"recent": "recent", "since_purchase": "since purchase"}.get(str(f.rate_basis), "no use yet"),
            f"{utc_text(f.runs_out_at)} ({relative(f.runs_out_at, now)})" if f.runs_out_at else "-",
            quantity(round(f.expires_unused)) if f.expires_unused > 0 else "-",
        )
        for f in forecasts
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    right = {1, 2, 5}

    def fmt(row: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(row)).rstrip()

    return ["  " + fmt(header), "  " + "  ".join("-" * w for w in widths), *("  " + fmt(r) for r in rows)]
