"""Build the bot's long-lived objects from settings: the one place they are wired."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.demo import DEMO_CREDENTIALS, demo_transport
from bot.kling.auth import ApiKeyCredentials, Credentials, JwtCredentials
from bot.kling.cache import PackCache
from bot.kling.client import KlingClient

if TYPE_CHECKING:  # the database layer is imported only by commands that use it
    from bot.store.db import Store


@dataclass
class Services:
    settings: Settings
    clock: Clock
    kling: KlingClient
    balances: PackCache
    # The database, for what must survive a restart; None for commands that need none.
    store: Store | None = None
    # Sample data: a throwaway database of its own, and nothing posted to channels.
    demo: bool = False
    _scratch_dir: str | None = None

    def close(self) -> None:
        self.kling.close()
        if self.store is not None:
            self.store.close()
        if self._scratch_dir is not None:
            shutil.rmtree(self._scratch_dir, ignore_errors=True)


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
    scratch = None
    if demo:
        credentials: Credentials = DEMO_CREDENTIALS
        kling_transport = demo_transport(clock.now)
        # Demo data never touches real state nor real channels: a database of its own that
        # is deleted on close, and no channel to post warnings or digests in.
        scratch = tempfile.mkdtemp(prefix="kling-bot-demo-")
        settings = dataclasses.replace(
            settings, database_url=f"sqlite:///{scratch}/demo.db", alert_channel="", digest_channel=""
        )
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
        from bot.store.db import Store

        store = Store(settings.database_url)
        store.migrate()
    return Services(
        settings=settings, clock=clock, kling=kling, balances=balances, store=store, demo=demo, _scratch_dir=scratch
    )
