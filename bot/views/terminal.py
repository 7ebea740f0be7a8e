"""The balance as a terminal table and as JSON, for `kling-bot balance`."""

from __future__ import annotations

import json
from datetime import datetime

from bot.domain.packs import family_totals, select_packs, status_label
from bot.kling.cache import Snapshot
from bot.kling.parse import pack_to_api_dict
from bot.views.format import LAG_NOTE, age, iso_utc, percent, quantity, relative, utc_text


def balance_json(snapshot: Snapshot, *, include_inactive: bool) -> str:
    packs = select_packs(snapshot.packs, include_inactive=include_inactive)
    payload = {
        "fetched_at": iso_utc(snapshot.fetched_at),
        "stale": snapshot.stale,
        "packs": [
            {
                **pack_to_api_dict(p),
                "purchase_time": iso_utc(p.purchase_time),
                "effective_time": iso_utc(p.effective_time),
                "invalid_time": iso_utc(p.invalid_time),
            }
            for p in packs
        ],
    }
    if snapshot.stale and snapshot.error:
        payload["stale_reason"] = snapshot.error.describe()
    return json.dumps(payload, indent=2, ensure_ascii=False)


def balance_table(snapshot: Snapshot, now: datetime, *, include_inactive: bool) -> str:
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
    else:
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
    lines.append("")
    lines.append(f"{LAG_NOTE} Fetched {utc_text(snapshot.fetched_at)}.")
    return "\n".join(lines)
