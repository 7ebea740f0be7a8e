"""Every account's balances at once: one cache and client per account, asked in parallel, so
one account failing (bad keys, Kling down, its region unreachable) never hides or delays the
others."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

from bot.domain.accounts import DEFAULT, Account
from bot.domain.packs import ResourcePack
from bot.kling.cache import DEFAULT_WAIT_S, PackCache, Snapshot
from bot.kling.errors import KlingError


@dataclass(frozen=True)
class AccountBalance:
    """One account's answer: a snapshot (perhaps stale, with `error` saying why), or only the
    error when nothing was ever fetched."""

    account: Account
    snapshot: Snapshot | None
    error: KlingError | None = None

    @property
    def packs(self) -> tuple[ResourcePack, ...]:
        return self.snapshot.packs if self.snapshot else ()

    @property
    def failed(self) -> bool:
        return self.snapshot is None

    @property
    def stale(self) -> bool:
        return self.snapshot is not None and self.snapshot.stale


@dataclass(frozen=True)
class AllBalances:
    """Every account asked, in the order of KLING_ACCOUNTS."""

    accounts: tuple[AccountBalance, ...]

    @classmethod
    def of(cls, snapshot: Snapshot, account: Account = DEFAULT) -> AllBalances:
        """One account's snapshot as the whole answer."""
        return cls((AccountBalance(account, snapshot, snapshot.error if snapshot.stale else None),))

    @property
    def multi(self) -> bool:
        return len(self.accounts) > 1

    @property
    def packs(self) -> tuple[ResourcePack, ...]:
        return tuple(p for a in self.accounts for p in a.packs)

    @property
    def failed(self) -> tuple[AccountBalance, ...]:
        return tuple(a for a in self.accounts if a.failed)

    @property
    def readable(self) -> tuple[AccountBalance, ...]:
        return tuple(a for a in self.accounts if not a.failed)

    def raise_if_nothing(self) -> None:
        """With no account readable at all, raise the first account's error (as one account did)."""
        if self.accounts and not self.readable:
            error = self.accounts[0].error
            assert error is not None
            raise error


class Balances:
    def __init__(self, caches: Mapping[Account, PackCache]) -> None:
        self.caches = dict(caches)
        # Threads only to ask several accounts at once (a single account is asked inline).
        # Many, since commands ask concurrently and a slow account's fetch holds its thread
        # for a while: one account's tasks must never queue behind another's. Threads are
        # only started as needed.
        self._pool = ThreadPoolExecutor(max_workers=16 * max(1, len(caches)), thread_name_prefix="kling-account")

    def get(
        self,
        *,
        refresh: bool = False,
        wait_s: float | None = DEFAULT_WAIT_S,
        accounts: Sequence[Account] | None = None,
    ) -> AllBalances:
        chosen = [a for a in self.caches if accounts is None or a in accounts]

        def one(account: Account) -> AccountBalance:
            try:
                snapshot = self.caches[account].get(refresh=refresh, wait_s=wait_s)
            except KlingError as exc:
                return AccountBalance(account, None, exc)
            return AccountBalance(account, snapshot, snapshot.error if snapshot.stale else None)

        if len(chosen) == 1:
            return AllBalances((one(chosen[0]),))
        futures = {account: self._pool.submit(one, account) for account in chosen}
        # One slow account must not hold up the others: past `wait_s` it answers as a caller
        # that stopped waiting would (its last answer, stale, or "Kling is slow"), while its
        # fetch goes on and fills its cache for the next ask.
        wait(futures.values(), timeout=wait_s)
        answers = []
        for account, future in futures.items():
            if future.done():
                answers.append(future.result())
                continue
            try:
                snapshot = self.caches[account].while_busy(refresh=refresh, wait_s=wait_s or 0.0)
            except KlingError as exc:
                answers.append(AccountBalance(account, None, exc))
            else:
                answers.append(AccountBalance(account, snapshot, snapshot.error if snapshot.stale else None))
        return AllBalances(tuple(answers))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
