"""The forecast for what Kling reports now, with the history the database keeps: the one
place that feeds `bot.domain.forecast` (pure) from the store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.domain.forecast import FamilyForecast, forecast
from bot.domain.packs import ResourcePack
from bot.store.db import Store, Tx


def forecasts_in(tx: Tx, packs: Sequence[ResourcePack], now: datetime, *, window_days: int) -> list[FamilyForecast]:
    """Every family's forecast, riskiest first, from the history inside this transaction."""
    since = now - timedelta(days=window_days)
    accounts = sorted({p.account for p in packs})
    return forecast(
        packs,
        tx.histories(since),
        now,
        window_days=window_days,
        history_from={a: tx.baseline_at(a) for a in accounts},
    )


def forecasts(
    store: Store | None, packs: Sequence[ResourcePack], now: datetime, *, window_days: int
) -> list[FamilyForecast]:
    """With no database (a demo, or `balance` without one) the rates are averages since purchase."""
    if store is None:
        return forecast(packs, {}, now, window_days=window_days)
    with store.transaction() as tx:
        return forecasts_in(tx, packs, now, window_days=window_days)
