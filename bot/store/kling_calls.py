"""Kling's answers and turns, shared by every process on one database.

Web, worker, a cron `check` and any number of replicas together keep to Kling's limits:
- an answer fetched by any process is stored, and the others use it until KLING_CACHE_TTL
  passes, so there is one call per account per TTL whatever the number of processes;
- only the process holding an account's *turn* asks Kling, and it starts no sooner than a
  second after the last request to that account ended, whichever process made it.

A turn is a row lock done as data: one UPDATE that succeeds only when no other process holds
an unexpired turn, on SQLite and PostgreSQL alike (no advisory lock, which SQLite lacks, and
nothing held open while Kling is asked). A process that dies holding a turn gives it up when
the turn lapses.

Every method degrades instead of failing: with the database unreachable a process asks Kling
on its own (its in-process limit and cache still hold), which beats showing no balance.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from bot.domain.packs import ResourcePack
from bot.kling.cache import SharedState
from bot.kling.errors import KlingError
from bot.store import schema as s
from bot.store.db import Store, from_ms, to_ms

log = logging.getLogger(__name__)

# Kling asks for QPS <= 1; the margin covers clocks of replicas on different machines.
MIN_GAP = timedelta(seconds=1.05)
# A one-off caller (doctor) waits at most this long for another process's turn: a whole turn.
ONE_OFF_WAIT_S = 40.0
_T = TypeVar("_T")


def holder_id() -> str:
    """Who holds a turn, for the logs of whoever waits on it: host, pid and a nonce."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class StoredKlingCalls:
    """The store side of `bot.kling.cache.SharedAnswers` (so the store implements what the
    Kling layer asks for, and the Kling layer never imports the store)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._degraded = False

    def latest(self, account: str) -> SharedState | None:
        """When the stored answer was fetched, and the last failure with no answer since."""
        c = s.kling_calls.c
        try:
            with self._store.reading() as tx:
                row = tx.conn.execute(
                    select(c.fetched_at, c.answer.is_not(None), c.failed_at, c.failure, c.failure_kind).where(
                        c.account == account
                    )
                ).first()
        except SQLAlchemyError as exc:
            self._database_failed(exc)
            return None
        self._recovered()
        if row is None:
            return None
        fetched_at, has_answer, failed_at, failure, kind = row
        return SharedState(from_ms(fetched_at) if has_answer else None, from_ms(failed_at), failure, kind)

    def answer(self, account: str) -> tuple[datetime, list[ResourcePack]] | None:
        """The stored answer (any age), or None."""
        try:
            with self._store.reading() as tx:
                return tx.latest_answers(account).get(account)
        except SQLAlchemyError as exc:
            self._database_failed(exc)
        except (ValueError, KeyError, TypeError) as exc:
            # An answer this version cannot read (written by another one, or damaged): as none.
            log.warning("The stored Kling answer for account %s could not be read (%s)", account, type(exc).__name__)
        return None

    def take_turn(self, account: str, holder: str, now: datetime, turn: timedelta) -> datetime | None:
        """Become the one process asking Kling for `account` until `now + turn`. Returns when
        its first request may start (a second after the last request ended), or None while
        another process holds the turn."""
        c = s.kling_calls.c
        now_ms = to_ms(now)
        turn_ms = int(turn.total_seconds() * 1000)
        try:
            with self._store.transaction() as tx:
                tx.ensure_kling_calls_row(account)
                row = tx.conn.execute(
                    update(s.kling_calls)
                    .where(
                        c.account == account,
                        or_(
                            c.fetching_until.is_(None),
                            c.fetching_until < now_ms,
                            # Set by a machine whose clock runs far ahead of this one's: without
                            # this, its turn (if it died) would block for the difference.
                            c.fetching_until > now_ms + turn_ms,
                        ),
                    )
                    .values(fetching_by=holder, fetching_until=now_ms + turn_ms)
                    .returning(c.last_call_at)
                ).first()
        except SQLAlchemyError as exc:
            self._database_failed(exc)
            return now  # on our own: the in-process limiter still spaces this process's calls
        if row is None:
            return None
        last = from_ms(row[0])
        return now if last is None else max(now, last + MIN_GAP)

    def end_turn(
        self,
        account: str,
        holder: str,
        now: datetime,
        *,
        called: bool,
        packs: Sequence[ResourcePack] | None = None,
        fetched_at: datetime | None = None,
        failure: KlingError | None = None,
    ) -> None:
        """Give the turn back. `called`: Kling was asked, so the next call waits a second from
        now; `packs`: its answer, or `failure`: why there is none, stored for every process in
        the same transaction, so the next holder sees them as soon as it can take the turn."""
        c = s.kling_calls.c
        now_ms = to_ms(now)
        try:
            with self._store.transaction() as tx:
                if packs is not None and fetched_at is not None:
                    tx.store_answer(account, packs, fetched_at)
                if called:
                    # Whoever holds the turn now: a request was made, the next one waits.
                    tx.conn.execute(
                        update(s.kling_calls)
                        .where(c.account == account, or_(c.last_call_at.is_(None), c.last_call_at < now_ms))
                        .values(last_call_at=now_ms)
                    )
                if failure is not None:
                    tx.conn.execute(
                        update(s.kling_calls)
                        .where(c.account == account)
                        .values(
                            failed_at=now_ms, failure=failure.describe()[:1000], failure_kind=type(failure).__name__
                        )
                    )
                tx.conn.execute(
                    update(s.kling_calls)
                    .where(c.account == account, c.fetching_by == holder)
                    .values(fetching_by=None, fetching_until=None)
                )
        except SQLAlchemyError as exc:
            self._database_failed(exc)

    def in_turn(self, account: str, call: Callable[[], _T], *, turn: timedelta = timedelta(seconds=40)) -> _T:
        """Run one Kling call as this account's turn (a second after the last request, never
        beside another process's call), for one-off callers such as `doctor`. Past a whole
        turn of waiting it calls anyway: the client's own retries handle a refusal."""
        holder = holder_id()
        give_up = time.monotonic() + ONE_OFF_WAIT_S
        while (start := self.take_turn(account, holder, datetime.now(UTC), turn)) is None:
            if time.monotonic() > give_up:
                return call()
            time.sleep(0.2)
        try:
            time.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds()))
            return call()
        finally:
            self.end_turn(account, holder, datetime.now(UTC), called=True)

    def _database_failed(self, exc: SQLAlchemyError) -> None:
        # Said once per outage, not on every command.
        if not self._degraded:
            self._degraded = True
            log.warning(
                "The database failed while sharing Kling's answer (%s); asking Kling from this process alone "
                "until it is back",
                type(exc).__name__,
            )

    def _recovered(self) -> None:
        if self._degraded:
            self._degraded = False
            log.info("The database is back: Kling's answers are shared between processes again")
