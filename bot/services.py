"""Build the bot's long-lived objects from settings: the one place they are wired."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.demo import DEMO_CREDENTIALS, demo_transport
from bot.kling.auth import ApiKeyCredentials, Credentials, JwtCredentials
from bot.kling.cache import PackCache
from bot.kling.client import KlingClient
from bot.store.db import Store


@dataclass
class Services:
    settings: Settings
    clock: Clock
    kling: KlingClient
    balances: PackCache
    # The database, for what must survive a restart; None for commands that need none.
    store: Store | None = None

    def close(self) -> None:
        self.kling.close()
        if self.store is not None:
            self.store.close()


def credentials_for(settings: Settings, clock: Clock) -> Credentials:
    if settings.kling_api_key:
        return ApiKeyCredentials(settings.kling_api_key)
    return JwtCredentials(settings.kling_access_key, settings.kling_secret_key, clock)


def build_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    demo: bool = False,
    kling_transport: httpx.BaseTransport | None = None,
    with_store: bool = False,
) -> Services:
    """`with_store` opens the database (creating or migrating its schema)."""
    clock = clock or SystemClock()
    if demo:
        credentials: Credentials = DEMO_CREDENTIALS
        kling_transport = demo_transport(clock.now)
    else:
        credentials = credentials_for(settings, clock)
    kling = KlingClient(
        settings.kling_api_base,
        credentials,
        clock=clock,
        lookback_days=settings.kling_lookback_days,
        transport=kling_transport,
    )
    balances = PackCache(kling.fetch_packs, ttl_s=settings.kling_cache_ttl_s, clock=clock)
    store = None
    if with_store:
        store = Store(settings.database_url)
        store.migrate()
    return Services(settings=settings, clock=clock, kling=kling, balances=balances, store=store)
