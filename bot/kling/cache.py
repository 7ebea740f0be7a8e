"""Cached balances with single flight, and stale answers when Kling fails.

Any number of concurrent callers cause one upstream call: the first takes the lock and
fetches, the others wait on the same lock and then take what it fetched, since an answer
that arrived after they asked is as fresh as any they could get. That holds for `refresh`
and for a TTL of 0 too, so a burst never turns into a queue of one-a-second Kling calls.

Waiting is bounded: a caller that has waited `wait_s` for a fetch in flight gets the last
good answer marked stale, or `KlingBusyError`, instead of queueing behind a slow Kling for
as long as it takes. The fetch itself carries on and its answer serves the next callers.

With `shared` (the database, when the process has one), the same holds across processes:
an answer any process fetched within the TTL is used by all (one Kling call per account per
TTL, whatever the number of replicas and commands; only `refresh`, a person asking for now,
asks sooner), only the process holding the account's turn asks Kling, a second after the
last request whoever made it, and the others wait for its answer (a refresh included). See
bot/store/kling_calls.py.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from cachetools import TTLCache

from bot.clock import Clock
from bot.domain.packs import ResourcePack
from bot.kling import errors as kling_errors
from bot.kling.errors import KlingBusyError, KlingError

log = logging.getLogger(__name__)

_KEY = "packs"
# After a failed fetch, callers within this window get the same answer (stale data or the
# error) instead of each waiting out another round of retries against a failing Kling.
FAILURE_REUSE_S = 30.0
# How long an interactive caller waits for a fetch already in flight. Slack wants the answer
# soon and a normal Kling call takes well under a second; past this, an older answer now
# beats a current one in a minute.
DEFAULT_WAIT_S = 8.0
# A process holds an account's turn at most this long: a whole fetch with its retries
# (bot.kling.client: a 10 s budget plus one 12 s request) fits, and a process that died
# holding it hands it on after this.
TURN = timedelta(seconds=40)
# How often a process waiting for another's turn looks for its answer.
TURN_POLL_S = 0.2


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


@dataclass(frozen=True)
class SharedState:
    """What the database says of an account's calls: when its last answer was fetched, and
    the last failure with no answer since (when, and the error, rebuilt)."""

    fetched_at: datetime | None
    failed_at: datetime | None = None
    # The failure as its process described it, and its class's name in bot.kling.errors.
    failure: str | None = None
    failure_kind: str | None = None

    @property
    def error(self) -> KlingError | None:
        """The failure rebuilt, with its class's advice and public message."""
        if self.failure is None:
            return None
        kind = getattr(kling_errors, self.failure_kind or "", None)
        error = KlingError(self.failure)
        if isinstance(kind, type) and issubclass(kind, KlingError):
            error.advice = kind.advice
            error.public_message = kind.public_message
        return error


class SharedAnswers(Protocol):
    """Kling's answers and the turn to ask it, shared between processes (bot.store.kling_calls)."""

    def latest(self, account: str) -> SharedState | None: ...

    def answer(self, account: str) -> tuple[datetime, list[ResourcePack]] | None: ...

    def take_turn(self, account: str, holder: str, now: datetime, turn: timedelta) -> datetime | None: ...

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
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The packs as Kling reported them at `fetched_at`.

    `stale` is set when this is an earlier answer served because the latest refresh failed;
    `error` then says why.
    """

    packs: tuple[ResourcePack, ...]
    fetched_at: datetime
    stale: bool = False
    error: KlingError | None = None

    def age(self, now: datetime) -> timedelta:
        return max(timedelta(0), now - self.fetched_at)


class PackCache:
    def __init__(
        self,
        fetch: Callable[[], Sequence[ResourcePack]],
        *,
        ttl_s: float,
        clock: Clock,
        shared: SharedAnswers | None = None,
        account: str = "default",
        holder: str = "this process",
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._shared = shared
        self._account = account
        self._holder = holder
        self._ttl_s = ttl_s
        self._fresh: TTLCache[str, Snapshot] = TTLCache(maxsize=1, ttl=ttl_s, timer=clock.monotonic)
        self._lock = threading.Lock()
        self._last_good: Snapshot | None = None
        self._last_good_at = float("-inf")
        self._last_failure: tuple[float, KlingError] | None = None

    def get(self, *, refresh: bool = False, wait_s: float | None = DEFAULT_WAIT_S) -> Snapshot:
        """The current packs; `refresh` skips the cache but still shares a fetch in flight.

        `wait_s` bounds the wait for a fetch another caller has in flight (None: wait for it,
        as the scheduler may, since it has no one waiting on it). Past that the caller gets the
        last good answer, marked stale with a `KlingBusyError` unless it is within the TTL and
        `refresh` was not asked.

        Raises `KlingError` only when the fetch failed (or is still running after `wait_s`:
        `KlingBusyError`) and no earlier answer exists.
        """
        asked = self._clock.monotonic()
        asked_at = self._clock.now()
        wait_s = None if wait_s is None else max(0.0, wait_s)
        if not self._lock.acquire(timeout=-1 if wait_s is None else wait_s):
            return self._while_busy(refresh, wait_s or 0.0)
        try:
            # A fetch that ended after this caller asked was in flight meanwhile: share it.
            if self._last_good is not None and self._last_good_at >= asked:
                return self._last_good
            if self._last_failure is not None and self._last_failure[0] >= asked:
                return self._stale_or_raise(self._last_failure[1])
            if not refresh:
                cached = self._fresh.get(_KEY)
                if cached is not None:
                    return cached
            if self._shared is not None:
                # Another process may have an answer newer than this process's failure.
                left = None if wait_s is None else wait_s - (self._clock.monotonic() - asked)
                return self._get_shared(asked, asked_at, left, refresh=refresh)
            if not refresh and self._last_failure is not None and self._last_failure[0] >= asked - FAILURE_REUSE_S:
                return self._stale_or_raise(self._last_failure[1])
            return self._fetch_locked()
        finally:
            self._lock.release()

    # -- across processes -------------------------------------------------------------------

    def _get_shared(self, asked: float, asked_at: datetime, wait_s: float | None, *, refresh: bool) -> Snapshot:
        """The answer another process fetched within the TTL (or since this caller asked), or
        this process's own fetch once it holds the turn; a failure another process met since
        this caller asked (or, but for a refresh, within FAILURE_REUSE_S) is shared too, so a
        failing Kling is not asked again by each waiting process. Past `wait_s`, what a caller
        that stopped waiting gets."""
        assert self._shared is not None
        started = self._clock.monotonic()
        waited_on_other = False
        while True:
            state = self._shared.latest(self._account)
            found = self._shared_fresh(state, asked_at, refresh=refresh)
            if found is not None:
                return found
            failure = self._shared_failure(state, asked_at, refresh=refresh)
            if failure is not None:
                return self._stale_or_raise(failure)
            if not refresh and self._last_failure is not None and self._last_failure[0] >= asked - FAILURE_REUSE_S:
                return self._stale_or_raise(self._last_failure[1])
            start_at = self._shared.take_turn(self._account, self._holder, self._clock.now(), TURN)
            if start_at is not None:
                return self._in_turn(start_at, asked_at, refresh=refresh)
            if not waited_on_other:
                waited_on_other = True
                log.debug("Another process is asking Kling for account %s; waiting for its answer", self._account)
            if wait_s is not None and self._clock.monotonic() - started >= wait_s:
                return self._while_busy(refresh=refresh, wait_s=wait_s)
            self._clock.sleep(TURN_POLL_S)

    def _shared_fresh(self, state: SharedState | None, asked_at: datetime, *, refresh: bool) -> Snapshot | None:
        """The stored answer if it counts as fresh: fetched since this caller asked, or (but
        for a refresh) within the TTL. Parsed only when it is not the one this process holds."""
        assert self._shared is not None
        if state is None or state.fetched_at is None:
            return None
        fetched_at = state.fetched_at
        now = self._clock.now()
        # The database keeps milliseconds: compare at that precision, or an answer fetched in
        # the very millisecond a caller asked would count as older than the question.
        if _ms(fetched_at) < _ms(asked_at) and (refresh or (now - fetched_at).total_seconds() >= self._ttl_s):
            return None
        if self._last_good is not None and _ms(self._last_good.fetched_at) == _ms(fetched_at):
            snapshot = self._last_good
        else:
            stored = self._shared.answer(self._account)
            if stored is None:
                return None
            snapshot = Snapshot(packs=tuple(stored[1]), fetched_at=stored[0])
        self._adopt(snapshot, age_s=(now - snapshot.fetched_at).total_seconds())
        return snapshot

    def _shared_failure(self, state: SharedState | None, asked_at: datetime, *, refresh: bool) -> KlingError | None:
        """The failure another process met, with no answer since, if it counts for this caller."""
        if state is None or state.failed_at is None or state.error is None:
            return None
        if state.fetched_at is not None and state.fetched_at >= state.failed_at:
            return None
        age_s = (self._clock.now() - state.failed_at).total_seconds()
        if _ms(state.failed_at) >= _ms(asked_at) or (not refresh and age_s < FAILURE_REUSE_S):
            return state.error
        return None

    def _in_turn(self, start_at: datetime, asked_at: datetime, *, refresh: bool) -> Snapshot:
        """Ask Kling as this account's turn, which is given back whatever happens (and the
        answer or the failure stored for every process with it)."""
        assert self._shared is not None
        called = False
        answer: Snapshot | None = None
        failure: KlingError | None = None
        try:
            # An answer may have been stored between the look before taking the turn and
            # taking it (the holder stores it and gives the turn back in one transaction).
            found = self._shared_fresh(self._shared.latest(self._account), asked_at, refresh=refresh)
            if found is not None:
                return found
            # A second after the last request to this account, whichever process made it.
            self._clock.sleep((start_at - self._clock.now()).total_seconds())
            called = True
            try:
                answer = self._fetch_and_keep()
            except KlingError as exc:
                failure = exc
                return self._stale_or_raise(exc)
            return answer
        finally:
            self._shared.end_turn(
                self._account,
                self._holder,
                self._clock.now(),
                called=called,
                packs=answer.packs if answer is not None else None,
                fetched_at=answer.fetched_at if answer is not None else None,
                failure=failure,
            )

    def _adopt(self, snapshot: Snapshot, *, age_s: float) -> None:
        """Take another process's answer as this process's own last good one."""
        if self._last_good is None or snapshot.fetched_at >= self._last_good.fetched_at:
            self._last_good = snapshot
            self._last_good_at = self._clock.monotonic() - max(0.0, age_s)
            # Not put in this process's TTL cache, which would keep it a whole TTL from now
            # whatever its age: the next caller asks the database again, a cheap read.
            self._last_failure = None

    def while_busy(self, *, refresh: bool, wait_s: float) -> Snapshot:
        """What a caller gets who stopped waiting for the fetch in flight after `wait_s`: the
        last good answer (stale unless still within the TTL), or `KlingBusyError`."""
        return self._while_busy(refresh, wait_s)

    def _while_busy(self, refresh: bool, wait_s: float) -> Snapshot:
        # Read without the lock. The fetch sets the answer before its time and this reads the
        # time first, so a race can only pair a new answer with the older time (judged stale),
        # never an old answer with the new time.
        good_at = self._last_good_at
        good = self._last_good
        if good is not None and not refresh and self._clock.monotonic() - good_at < self._ttl_s:
            return good  # what the caller would have got after the wait anyway
        log.info("Gave up waiting %.0f s for the Kling call in flight; answering without it", wait_s)
        return self._stale_or_raise(KlingBusyError(f"Kling is slow to answer (no reply after {wait_s:.0f} s)"))

    def _fetch_locked(self) -> Snapshot:
        try:
            return self._fetch_and_keep()
        except KlingError as exc:
            return self._stale_or_raise(exc)

    def _fetch_and_keep(self) -> Snapshot:
        """Ask Kling and keep the answer, or remember the failure and raise it."""
        try:
            packs = self._fetch()
        except KlingError as exc:
            self._last_failure = (self._clock.monotonic(), exc)
            if self._last_good is not None:
                log.warning("Kling balance refresh failed, serving the last answer: %s", exc.describe())
            else:
                # The caller gets the error and reports it (the CLI prints it, the scheduler
                # and listeners log it); saying it here too would say it twice.
                log.debug("Kling balance refresh failed: %s", exc.describe())
            raise
        snapshot = Snapshot(packs=tuple(packs), fetched_at=self._clock.now())
        self._fresh[_KEY] = snapshot
        self._last_good = snapshot
        self._last_good_at = self._clock.monotonic()
        self._last_failure = None
        return snapshot

    def _stale_or_raise(self, error: KlingError) -> Snapshot:
        if self._last_good is None and self._shared is not None:
            # Another process's last answer, however old, beats none (a web process that
            # never fetched while the worker did).
            stored = self._shared.answer(self._account)
            if stored is not None:
                self._adopt(Snapshot(packs=tuple(stored[1]), fetched_at=stored[0]), age_s=float("inf"))
        if self._last_good is None:
            raise error
        return dataclasses.replace(self._last_good, stale=True, error=error)
