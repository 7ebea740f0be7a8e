"""Build the bot's long-lived objects from settings: the one place they are wired."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from bot.clock import Clock, SystemClock
from bot.config import KlingAccountSettings, Settings
from bot.demo import DEMO_CREDENTIALS, demo_accounts, demo_transport
from bot.domain.accounts import Account
from bot.kling.accounts import Balances
from bot.kling.auth import ApiKeyCredentials, Credentials, JwtCredentials
from bot.kling.cache import PackCache
from bot.kling.client import KlingClient

if TYPE_CHECKING:  # the database layer and metrics are imported only by commands that use them
    from bot.ops.metrics import Metrics
    from bot.store.db import Store


@dataclass
class Services:
    settings: Settings
    clock: Clock
    # One client (token, rate limit, error state) and one cache per Kling account.
    clients: dict[Account, KlingClient]
    balances: Balances
    # The database, for what must survive a restart; None for commands that need none.
    store: Store | None = None
    # Sample data: a throwaway database of its own, and nothing posted to channels.
    demo: bool = False
    # This process's metrics (Kling requests, and the database's figures at each scrape);
    # None for commands that serve no /metrics.
    metrics: Metrics | None = None
    _scratch_dir: str | None = None

    def close(self) -> None:
        self.balances.close()
        for client in self.clients.values():
            client.close()
        if self.store is not None:
            self.store.close()
        if self._scratch_dir is not None:
            shutil.rmtree(self._scratch_dir, ignore_errors=True)


def credentials_for(account: KlingAccountSettings, clock: Clock) -> Credentials:
    if account.api_key:
        return ApiKeyCredentials(account.api_key)
    return JwtCredentials(account.access_key, account.secret_key, clock)


def build_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    demo: bool = False,
    kling_transport: httpx.BaseTransport | None = None,
    with_store: bool = False,
    with_metrics: bool = False,
    share_through: Store | None = None,
) -> Services:
    """`with_store` opens the database (creating or migrating its schema); `with_metrics`
    counts Kling requests for /metrics and, with the database, reports its figures there."""
    clock = clock or SystemClock()
    scratch = None
    if demo:
        # Demo data never touches real state nor real channels: a database of its own that
        # is deleted on close, and no channel to post warnings or digests in. With
        # KLING_ACCOUNTS set, the sample has two accounts, to show the multi-account views.
        scratch = tempfile.mkdtemp(prefix="kling-bot-demo-")
        sample = demo_accounts(settings.account_list)
        settings = dataclasses.replace(
            settings,
            database_url=f"sqlite:///{scratch}/demo.db",
            alert_channel="",
            digest_channel="",
            accounts=tuple(KlingAccountSettings(a) for a in sample),
        )
    metrics = None
    if with_metrics:
        from bot.ops.metrics import Metrics

        # Nothing polls in a demo: readiness then only needs the database.
        metrics = Metrics(settings, clock, polls=not demo)
    store = None
    shared = None
    if with_store:
        from bot.store.db import Store
        from bot.store.kling_calls import StoredKlingCalls

        store = Store(settings.database_url)
        store.migrate()
        # Kling's answers and turns shared with every other process on this database.
        shared = StoredKlingCalls(store)
        if metrics is not None:
            metrics.watch(store)
    elif share_through is not None and not demo:
        # A command without a database of its own (`balance`) still shares Kling's answers
        # and turns with the running bot through the existing one.
        from bot.store.kling_calls import StoredKlingCalls

        shared = StoredKlingCalls(share_through)
    if shared is not None:
        from bot.store.kling_calls import holder_id

        holder = holder_id()
    else:
        holder = "this process"
    clients: dict[Account, KlingClient] = {}
    caches: dict[Account, PackCache] = {}
    for index, account_settings in enumerate(settings.accounts):
        account = account_settings.account
        if demo:
            credentials: Credentials = DEMO_CREDENTIALS
            transport = demo_transport(clock.now, variant=index)
        else:
            credentials = credentials_for(account_settings, clock)
            transport = kling_transport
        client = KlingClient(
            account_settings.api_base,
            credentials,
            clock=clock,
            lookback_days=settings.kling_lookback_days,
            transport=transport,
            account=account.key,
            label=account.name if settings.multi_account else "",
            on_request=metrics.on_kling_request if metrics is not None else None,
        )
        clients[account] = client
        caches[account] = PackCache(
            client.fetch_packs,
            ttl_s=settings.kling_cache_ttl_s,
            clock=clock,
            shared=shared,
            account=account.key,
            holder=holder,
        )
    balances = Balances(caches)
    return Services(
        settings=settings,
        clock=clock,
        clients=clients,
        balances=balances,
        store=store,
        demo=demo,
        metrics=metrics,
        _scratch_dir=scratch,
    )
