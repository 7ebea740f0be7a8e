"""The `/account/costs` client: auth, one request per second, bounded retries, and a
deadline and size cap on every reply."""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception

from bot.clock import Clock
from bot.domain.accounts import DEFAULT_ACCOUNT
from bot.domain.packs import ResourcePack
from bot.kling.auth import Credentials
from bot.kling.errors import (
    AuthenticationError,
    ClockSkewError,
    KlingConnectionError,
    KlingError,
    MalformedReplyError,
    RateLimitedError,
)
from bot.kling.parse import parse_packs
from bot.kling.ratelimit import MinIntervalLimiter

log = logging.getLogger(__name__)

COSTS_PATH = "/account/costs"
# Kling asks callers to keep to QPS <= 1.
MIN_REQUEST_INTERVAL_S = 1.0
# Retrying stops starting new attempts this long after the first one began.
RETRY_BUDGET_S = 10.0
# One attempt may take this long in all, body included: a slow Kling that answers in 10 s
# still gets through. httpx's own timeouts are per read, so a Kling sending a byte every few
# seconds never tripped them and held a call (and every command queued behind it) for a minute.
REQUEST_TIMEOUT_S = 12.0
# A retry, or the fresh-token try, gets at least this long even when the budget is nearly spent.
MIN_REQUEST_TIMEOUT_S = 1.0
# The largest reply read from Kling. A real account's reply is a few hundred bytes per pack,
# so 5 MB is thousands of packs; reading an unbounded body let a broken endpoint make the
# bot hold several copies of it (bytes, text, parsed objects): 196 MB for a 50 MB reply.
MAX_REPLY_MB = 5
MAX_REPLY_BYTES = MAX_REPLY_MB * 1024 * 1024
# Past a request's deadline, the watchdog gives the request this much more before giving up
# on it (the body check normally ends it first, at the deadline itself).
WATCHDOG_GRACE_S = 1.0
_T = TypeVar("_T")
# Kling asks for a back-off of at least 1 s on code 1303.
MIN_RATE_LIMIT_WAIT_S = 1.0
# Codes that mean "your token's time window is wrong": a fresh token may fix them.
TOKEN_TIME_CODES = frozenset({1003, 1004})

# Told about every HTTP request to Kling: (account key, outcome, seconds). Outcomes: "ok",
# "rate_limited", "auth_error", "timeout", "unreachable", "error".
RequestHook = Callable[[str, str, float], None]


def _backoff(attempt: int, jitter: float) -> float:
    """Exponential backoff with full jitter: 0.5 s, 1 s, 2 s, 4 s caps."""
    return min(4.0, 0.5 * 2 ** (attempt - 1)) * jitter


class KlingClient:
    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        *,
        clock: Clock,
        lookback_days: int = 365,
        transport: httpx.BaseTransport | None = None,
        limiter: MinIntervalLimiter | None = None,
        retry_budget_s: float = RETRY_BUDGET_S,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
        jitter: Callable[[], float] = random.random,
        account: str = DEFAULT_ACCOUNT,
        label: str = "",
        on_request: RequestHook | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # Every pack fetched is tagged with its account; log lines carry `label` (the
        # account's name when there are several).
        self.account = account
        self._log_prefix = f"[{label}] " if label else ""
        self._credentials = credentials
        self._clock = clock
        self._lookback = timedelta(days=lookback_days)
        self._limiter = limiter or MinIntervalLimiter(MIN_REQUEST_INTERVAL_S, clock)
        self._retry_budget_s = retry_budget_s
        self._request_timeout_s = request_timeout_s
        self._jitter = jitter
        self._on_request = on_request
        self._http = httpx.Client(
            base_url=self.base_url,
            transport=transport,
            timeout=httpx.Timeout(request_timeout_s, connect=min(5.0, request_timeout_s)),
            # identity: the reply is small, and a compressed one could inflate far past the size
            # cap within a single chunk before the cap is checked.
            headers={
                "Content-Type": "application/json",
                "User-Agent": "kling-balance-bot",
                "Accept-Encoding": "identity",
            },
        )

    def close(self) -> None:
        self._http.close()

    # -- public ---------------------------------------------------------------------------

    def fetch_packs(self) -> list[ResourcePack]:
        """Every resource pack bought within the look-back window, retried within a budget.

        Raises the most specific `KlingError`; after retries its `attempts` says how many.
        """
        start = self._clock.monotonic()

        def stop(state: RetryCallState) -> bool:
            return self._clock.monotonic() - start >= self._retry_budget_s

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            delay = _backoff(state.attempt_number, self._jitter())
            if isinstance(exc, RateLimitedError):
                delay = max(delay, MIN_RATE_LIMIT_WAIT_S, exc.retry_after_s)
            remaining = self._retry_budget_s - (self._clock.monotonic() - start)
            return max(0.0, min(delay, remaining))

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            wait_s = state.next_action.sleep if state.next_action else 0.0
            log.warning(
                "%sKling request failed (%s); retry %d in %.1f s",
                self._log_prefix,
                exc.describe() if isinstance(exc, KlingError) else exc,
                state.attempt_number,
                wait_s,
            )

        retrying = Retrying(
            stop=stop,
            wait=wait,
            retry=retry_if_exception(lambda exc: isinstance(exc, KlingError) and exc.retryable),
            sleep=self._clock.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    remaining = self._retry_budget_s - (self._clock.monotonic() - start)
                    # The first attempt gets the full timeout; later ones only what the budget has left,
                    # so a whole call lasts at most about the budget plus one request's deadline.
                    timeout = (
                        self._request_timeout_s
                        if attempt.retry_state.attempt_number == 1
                        else max(MIN_REQUEST_TIMEOUT_S, min(self._request_timeout_s, remaining))
                    )
                    return self._fetch_with_fresh_token(timeout)
        except KlingError as exc:
            exc.attempts = retrying.statistics.get("attempt_number", 1)
            exc.elapsed_s = self._clock.monotonic() - start
            raise
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    # -- internals ------------------------------------------------------------------------

    def _fetch_with_fresh_token(self, timeout: float) -> list[ResourcePack]:
        started = self._clock.monotonic()
        try:
            return self._fetch_once(timeout)
        except AuthenticationError as exc:
            if exc.code not in TOKEN_TIME_CODES:
                raise
            log.info("Kling said the token is not valid now (code %s); minting a fresh one", exc.code)
        self._credentials.invalidate()
        # The fresh-token try shares this attempt's time, so it cannot double the call's length.
        spent = self._clock.monotonic() - started
        try:
            return self._fetch_once(max(MIN_REQUEST_TIMEOUT_S, timeout - spent))
        except AuthenticationError as exc:
            skew = self._clock_skew(exc)
            if skew is None:
                raise
            raise skew from exc

    def _clock_skew(self, exc: AuthenticationError) -> ClockSkewError | None:
        """A token-time refusal of a token signed a moment ago means this machine's clock is
        off, not the keys: say so, and which way (1003 "not yet valid": ahead; 1004 "expired":
        behind by more than the token's 30 minutes)."""
        if not self._credentials.mints_tokens or exc.code not in TOKEN_TIME_CODES:
            return None
        if exc.code == 1003:
            text = "Kling says the token is not valid yet: this machine's clock is probably ahead of Kling's"
        else:
            text = "Kling says a freshly signed token has expired: this machine's clock is probably behind Kling's"
        return ClockSkewError(
            f"{text}; sync it (NTP)", http_status=exc.http_status, code=exc.code, request_id=exc.request_id
        )

    def _fetch_once(self, timeout: float) -> list[ResourcePack]:
        self._limiter.acquire()
        too_slow = KlingConnectionError(f"Kling did not answer within {timeout:.0f} s")
        if self._on_request is None:
            return self._request(timeout, too_slow)
        # Real elapsed time, not the injectable clock: this measures Kling, and the wait for
        # our own rate limiter above is not part of it.
        started = time.perf_counter()
        outcome = "error"
        try:
            packs = self._request(timeout, too_slow)
            outcome = "ok"
            return packs
        except KlingError as exc:
            outcome = _outcome(exc, too_slow)
            raise
        finally:
            try:
                self._on_request(self.account, outcome, time.perf_counter() - started)
            except Exception:  # counting must never break a call to Kling
                log.debug("The Kling request hook failed", exc_info=True)

    def _request(self, timeout: float, too_slow: KlingConnectionError) -> list[ResourcePack]:
        deadline = self._clock.monotonic() + timeout
        now = self._clock.now()
        params = {
            "start_time": int((now - self._lookback).timestamp() * 1000),
            "end_time": int(now.timestamp() * 1000),
        }
        headers = {"Authorization": f"Bearer {self._credentials.bearer()}"}

        def exchange() -> tuple[httpx.Response, bytes]:
            try:
                with self._http.stream("GET", COSTS_PATH, params=params, headers=headers, timeout=timeout) as response:
                    return response, self._read_capped(response, deadline, too_slow)
            except httpx.TimeoutException as exc:
                raise too_slow from exc
            except httpx.TransportError as exc:
                raise KlingConnectionError(f"could not reach Kling at {self.base_url} ({type(exc).__name__})") from exc

        response, content = _within(exchange, timeout + WATCHDOG_GRACE_S, too_slow)
        try:
            body = json.loads(content)
        except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested past Python's limit
            if response.status_code < 400:
                raise MalformedReplyError("Kling reply is not JSON", field="(body)") from None
            body = None
        try:
            parsed = parse_packs(response.status_code, body)
        except RateLimitedError as exc:
            exc.retry_after_s = _retry_after(response)
            raise
        for skipped in parsed.skipped:
            log.warning(
                "%sKling reply: skipped a pack the bot cannot read, showing the others: %s", self._log_prefix, skipped
            )
        if self.account == DEFAULT_ACCOUNT:
            return parsed.packs
        return [dataclasses.replace(p, account=self.account) for p in parsed.packs]

    def _read_capped(self, response: httpx.Response, deadline: float, too_slow: KlingConnectionError) -> bytes:
        """The body, read as it arrives, given up once the deadline passes or it outgrows the cap.

        The deadline is checked as each chunk arrives. A Kling that goes silent instead is
        stopped by httpx's per-read timeout (the same length), so only one that falls silent
        just before the deadline can stretch an attempt, by at most that one read.
        """
        too_big = MalformedReplyError(f"Kling reply is larger than {MAX_REPLY_MB} MB", field="(body)")
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > MAX_REPLY_BYTES:
            raise too_big
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > MAX_REPLY_BYTES:
                raise too_big
            if self._clock.monotonic() > deadline:
                raise too_slow
        return bytes(body)


def _outcome(exc: KlingError, too_slow: KlingError) -> str:
    """The bounded label a failed request is counted under."""
    if exc is too_slow:
        return "timeout"
    if isinstance(exc, RateLimitedError):
        return "rate_limited"
    if isinstance(exc, AuthenticationError):
        return "auth_error"
    if isinstance(exc, KlingConnectionError):
        return "unreachable"
    return "error"


def _within(work: Callable[[], _T], seconds: float, too_slow: KlingError) -> _T:
    """`work()`, but given up after `seconds` of real time.

    httpx's timeouts are per read: a server sending its headers a line at a time can hold a
    request far past any deadline, and the body check above only starts after the headers.
    The work runs on a thread of its own; past the deadline the caller gets `too_slow` and
    the thread is left to end at its next per-read timeout (its answer is dropped).
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="kling-request", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise too_slow
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "0")))
    except ValueError:
        return 0.0
