"""A built-in sample account, so a newcomer sees real output with no Kling keys.

It is served through an `httpx.MockTransport` that answers like Kling, so `--demo` runs the
real client, parser and cache: only the network is replaced.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx

from bot.domain.accounts import DEFAULT, Account
from bot.kling.auth import ApiKeyCredentials

DEMO_CREDENTIALS = ApiKeyCredentials("demo")


def demo_accounts(configured: tuple[Account, ...]) -> tuple[Account, ...]:
    """One sample account; two (named as the first two configured, or samples) when several
    accounts are configured, so the multi-account views can be seen."""
    if len(configured) <= 1:
        return (DEFAULT,)
    return configured[:2]


def demo_packs(now: datetime, variant: int = 0) -> list[dict[str, object]]:
    """A small account with a bit of everything, its times relative to `now`; `variant` 1 is a
    second, smaller account."""
    day = timedelta(days=1)
    if variant:
        rows2 = [
            ("Video Generation - 5,000 entries", "decreasing_total", 5000, 4200, -10 * day, 80 * day, "online"),
            ("Image Generation - 10,000 entries", "decreasing_total", 10000, 900, -50 * day, 2 * day, "online"),
            ("Lip Sync - 1,000 entries", "decreasing_total", 1000, 0, -90 * day, 200 * day, "runOut"),
        ]
        return _rows(rows2, now, prefix=f"demo{variant}")
    rows = [
        ("Video Generation - 10,000 entries", "decreasing_total", 10000, 3120, -60 * day, 25 * day, "online"),
        ("Video Generation - 3,000 entries", "decreasing_total", 3000, 410, -80 * day, 4 * day, "online"),
        ("Image Generation - 50,000 entries", "decreasing_total", 50000, 41250.5, -20 * day, 70 * day, "online"),
        ("Image Generation - 20,000 entries", "decreasing_total", 20000, 0, -200 * day, 100 * day, "runOut"),
        ("Video Generation - 1,000 entries", "decreasing_total", 1000, 220, -400 * day + day, -35 * day, "expired"),
        ("Virtual Try-On - 500 entries", "constant_period", 500, 500, -1 * day, 120 * day, "toBeOnline"),
        # Used slowly and expiring soon: the forecast's "will be lost" case.
        ("Lip Sync - 2,000 entries", "decreasing_total", 2000, 1500, -100 * day, 5 * day, "online"),
    ]
    return _rows(rows, now, prefix="demo")


def _rows(
    rows: list[tuple[str, str, int, float, timedelta, timedelta, str]], now: datetime, *, prefix: str
) -> list[dict[str, object]]:
    def ms(delta: timedelta) -> int:
        return int((now + delta).timestamp() * 1000)

    day = timedelta(days=1)
    packs = []
    for i, (name, kind, total, left, bought, expires, status) in enumerate(rows):
        effective = bought if status != "toBeOnline" else 2 * day
        packs.append(
            {
                "resource_pack_name": name,
                "resource_pack_id": f"{prefix}{i:028d}",
                "resource_pack_type": kind,
                "total_quantity": float(total),
                "remaining_quantity": float(left),
                "purchase_time": ms(bought),
                "effective_time": ms(effective),
                "invalid_time": ms(expires),
                "status": status,
            }
        )
    return packs


def demo_transport(now: Callable[[], datetime], variant: int = 0) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {
            "code": 0,
            "message": "SUCCEED",
            "request_id": "demo",
            "data": {"code": 0, "msg": "SUCCEED", "resource_pack_subscribe_infos": demo_packs(now(), variant)},
        }
        return httpx.Response(200, content=json.dumps(body).encode(), headers={"content-type": "application/json"})

    return httpx.MockTransport(handler)
