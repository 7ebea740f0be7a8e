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


@dataclass
class Services:
    settings: Settings
    clock: Clock
    kling: KlingClient
    balances: PackCache

    def close(self) -> None:
        self.kling.close()


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
) -> Services:
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
    return Services(settings=settings, clock=clock, kling=kling, balances=balances)
