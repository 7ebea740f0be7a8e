"""Send what the outbox owes to Slack, and keep owing what could not be sent.

A post that fails (a Slack error, HTTP 429 with Retry-After, a network error) is put back
with a later attempt time and retried by the next pass; nothing is dropped. Each row is
claimed in the database first, so two processes on one database never both send it.

Exactly once, even through a crash: before each post the rows record an attempt id, which
the message carries in its metadata. A row claimed with an attempt still recorded (its
process died after Slack took the post but before the answer was stored, or the answer was
lost) is first looked for in the channel's recent history (`conversations.history`, which
needs the history scopes) and marked sent if it is there. Without those scopes that window
is at-least-once, and the bot says so. A message still owed after OUTBOX_GIVE_UP_DAYS is
marked given up and reported, never silently dropped.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from http.client import HTTPException
from typing import Any
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.clock import Clock
from bot.config import Settings
from bot.store.db import OutboxRow, Store
from bot.views.alerts import batch_messages
from bot.views.manifest import HISTORY_SCOPES

log = logging.getLogger(__name__)

# A claim lasts this long by default (OUTBOX_CLAIM_SECONDS); a process that dies mid-send
# releases its rows by letting it lapse.
CLAIM_LEASE_S = 60
# A Slack call gives up after this long (notifier_client), so a post started with this much
# of the claim left ends before the claim does and no other process can have taken the rows.
SLACK_TIMEOUT_S = 15
# Rows are claimed a few at a time, so several processes share the work and a process that
# dies holds little of it.
CLAIM_BATCH = 50
# The metadata event type that carries the outbox attempt id in every message the bot posts.
DELIVERY_EVENT = "kling_balance_bot_delivery"
# How far back of an attempt's start its message is looked for (clocks differ a little),
# and how many history pages are read at most.
HISTORY_SLACK_S = 120
HISTORY_PAGES = 5
# Slack allows about one message per second per channel.
PER_CHANNEL_INTERVAL_S = 1.0
MAX_RETRY_DELAY_S = 3600
# This many or more warnings owed to one channel at once go out as one batched message
# instead of a flood (an install with many packs expiring the same week, say).
BATCH_FROM = 3


@dataclass
class DeliveryReport:
    sent: list[str] = field(default_factory=list)
    # key -> the reason it failed this time (it stays owed).
    failed: dict[str, str] = field(default_factory=dict)
    # Of those, the ones that waiting will not fix: key -> what a person must do.
    needs_fix: dict[str, str] = field(default_factory=dict)
    # Deliberately not sent (e.g. a DM to someone no longer allowed): key -> why.
    skipped: dict[str, str] = field(default_factory=dict)
    # Owed longer than OUTBOX_GIVE_UP_DAYS and given up in this pass: key -> the last error.
    given_up: dict[str, str] = field(default_factory=dict)
    # Found already posted by an earlier attempt (a crash between Slack's answer and the
    # record): key -> the message's ts. Also in `sent`.
    recovered: dict[str, str] = field(default_factory=dict)


def retry_delay_s(attempts: int, retry_after_s: float = 0.0) -> float:
    """30 s, 1 min, 2 min, ... capped at an hour, never sooner than Slack's Retry-After."""
    return max(retry_after_s, min(MAX_RETRY_DELAY_S, 30.0 * 2 ** max(0, attempts)))


# Slack errors that clear by themselves; every other error needs a person (see `slack_fix`).
TRANSIENT_SLACK_ERRORS = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


def slack_fix(error: str, target: str, *, to_user: bool) -> str | None:
    """What a person must do about a Slack error that waiting will not fix; None if it will
    clear by itself. `error` is the outbox's `last_error` ("Slack: not_in_channel")."""
    code = error.removeprefix("Slack: ").strip()
    if error.startswith("unexpected: "):
        return "the bot failed while sending it (a bug): see the bot's logs and report it"
    if not error.startswith("Slack: ") or code in TRANSIENT_SLACK_ERRORS:
        return None
    if code.isdigit():
        # 429 and 5xx clear by themselves; another HTTP status means the address is wrong.
        if code == "429" or code.startswith("5"):
            return None
        return f"Slack's Web API answered HTTP {code}: check SLACK_API_URL (default https://slack.com/api/)"
    where = f"user {target}" if to_user else f"channel {target}"
    if code in ("not_in_channel", "channel_not_found") and not to_user:
        return (
            f"the bot cannot post in {where}: invite it there with /invite @Kling Balance, or check the channel ID "
            "in ALERT_CHANNEL / DIGEST_CHANNEL"
        )
    if code in ("is_archived", "channel_is_archived"):
        return f"{where} is archived: unarchive it or set another channel"
    if code in ("invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"):
        return "Slack rejected SLACK_BOT_TOKEN: copy the Bot User OAuth Token from the app's OAuth & Permissions page"
    if code == "missing_scope":
        return "the Slack app lacks a permission: reinstall it with the scopes in manifest.yml"
    if code in ("user_not_found", "user_disabled", "cannot_dm_bot", "channel_not_found") and to_user:
        return f"{where} cannot be sent a DM (left the workspace?): their subscriptions stay until removed"
    return f"Slack refused the message ({code}): see the bot's logs"


@dataclass
class _Claim:
    """One claim on a batch of rows: its token, when it was taken (monotonic), the pass's
    report, and rows it could not settle in time (handed back)."""

    token: str
    claimed_at: float
    report: DeliveryReport
    unsettled: set[int] = field(default_factory=set)


# Slack's own failures: the message may have been kept before the error, so the next try
# looks for it before posting again.
UNSURE_SLACK_ERRORS = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout"})


class Notifier:
    def __init__(
        self,
        store: Store,
        client: WebClient,
        clock: Clock,
        *,
        may_receive_dm: Callable[[str], bool] = lambda _user: True,
        claim_s: int = CLAIM_LEASE_S,
        give_up_after: timedelta = timedelta(days=7),
        history_granted: bool | None = None,
    ) -> None:
        self._store = store
        self._client = client
        self._clock = clock
        # Access rules hold when a DM is sent, not only when it was subscribed.
        self._may_receive_dm = may_receive_dm
        self._claim_s = claim_s
        self._give_up_after = give_up_after
        # Whether the token may read history (the exactly-once lookup); None: not known yet,
        # asked of Slack (auth.test's x-oauth-scopes) the first time a lookup is needed.
        self._history_granted = history_granted
        self._last_post: dict[str, float] = {}
        self._dm_channels: dict[str, str] = {}

    def deliver_due(self, *, limit: int = 1000) -> DeliveryReport:
        """Send what is due, a few rows at a time, for at most half a claim (past the claim
        another process could take the same rows, so the rest is left for the next pass)."""
        report = DeliveryReport()
        self._give_up_overdue(report)
        started = self._clock.monotonic()
        done_rows = 0
        while done_rows < limit and self._clock.monotonic() - started < self._claim_s / 2:
            # A token of this pass's own: every later write about these rows holds only while
            # they are still this pass's (a scheduler's check and delivery jobs share a process).
            claim = _Claim(uuid.uuid4().hex, self._clock.monotonic(), report)
            with self._store.transaction() as tx:
                claimed = tx.claim_due(
                    self._clock.now(),
                    lease_ms=self._claim_s * 1000,
                    limit=min(CLAIM_BATCH, limit - done_rows),
                    claimer=claim.token,
                )
            if not claimed:
                break
            done_rows += len(claimed)
            self._deliver_claimed(claimed, claim)
        return report

    def _deliver_claimed(self, claimed: list[OutboxRow], claim: _Claim) -> None:
        messages: list[tuple[list[OutboxRow], dict[str, Any]]] = [([row], row.payload) for row in claimed]
        done = 0
        try:
            unsettled = self._settle_earlier_attempts(self._skip_unwanted(claimed, claim.report), claim)
            messages = self._messages(unsettled)
            for rows_in_message, payload in messages:
                if not self._time_left(claim):
                    log.warning("Delivery pass ran long; the rest is handed back for the next pass")
                    break
                self._send(rows_in_message, payload, claim)
                done += 1
        finally:
            # Whatever was not tried (a long pass, or an error that escaped) goes back at once
            # instead of staying claimed until the lease lapses.
            left_ids = {row.id for group, _ in messages[done:] for row in group} | claim.unsettled
            if left_ids:
                with self._store.transaction() as tx:
                    tx.release(sorted(left_ids), claimer=claim.token)

    def _time_left(self, claim: _Claim) -> bool:
        """Time for one more step under this claim: a message takes at most two Slack calls
        (opening a DM, the post), and one started later could end after the claim lapsed."""
        return self._clock.monotonic() - claim.claimed_at <= self._claim_s - 2 * SLACK_TIMEOUT_S

    def _send(self, rows: list[OutboxRow], payload: dict[str, Any], claim: _Claim) -> None:
        attempt = uuid.uuid4().hex
        ids = [row.id for row in rows]
        try:
            channel = self._channel(rows[0])
            with self._store.transaction() as tx:
                # Renews the claim for the post, or finds the rows taken over meanwhile.
                still_mine = tx.begin_posting(
                    ids, attempt, self._clock.now(), claimer=claim.token, lease_ms=self._claim_s * 1000
                )
            if not still_mine:
                log.warning(
                    "%s was taken over by another process before it was posted here; not posted here", rows[0].key
                )
                return
            ts = self._post(channel, payload, attempt)
        except SlackApiError as exc:
            status = exc.response.status_code
            code = exc.response.get("error") if isinstance(exc.response.data, dict) else None
            # An error answer means nothing was posted, except Slack's own failures (5xx,
            # internal_error, …), which can come after it kept the message: looked for first.
            unsure = status >= 500 or code in UNSURE_SLACK_ERRORS
            self._failed(rows, f"Slack: {code or status}", _retry_after(exc), claim, maybe_posted=unsure)
        except (TimeoutError, URLError, OSError, HTTPException) as exc:
            # HTTPException covers an answer cut off mid-body (IncompleteRead): transient. The
            # post may have reached Slack, so the next try looks for it first.
            self._failed(rows, f"network: {type(exc).__name__}", 0.0, claim, maybe_posted=True)
        except Exception as exc:  # a bug must not stop the pass nor leave rows claimed
            log.exception("Unexpected error sending %s", rows[0].key)
            self._failed(rows, f"unexpected: {type(exc).__name__}", 0.0, claim, maybe_posted=True)
        else:
            with self._store.transaction() as tx:
                tx.mark_sent(ids, self._clock.now(), ts)
            claim.report.sent.extend(row.key for row in rows)

    def _give_up_overdue(self, report: DeliveryReport) -> None:
        now = self._clock.now()
        with self._store.transaction() as tx:
            rows = tx.give_up_overdue(now, now - self._give_up_after)
        days = self._give_up_after.days
        for row in rows:
            error = row["last_error"] or "never delivered"
            fix = slack_fix(error, row["target"], to_user=row["target_is_user"]) if row["last_error"] else None
            maybe = " (its last attempt may have reached Slack: its answer was lost)" if row["posting"] else ""
            log.error(
                "Gave up %s to %s after %d days owed (%s)%s%s; it is kept in the outbox and no longer retried",
                row["key"],
                row["target"],
                days,
                error,
                f": {fix}" if fix else "",
                maybe,
            )
            report.given_up[row["key"]] = error

    # -- exactly once through a crash ---------------------------------------------------------

    def _settle_earlier_attempts(self, rows: list[OutboxRow], claim: _Claim) -> list[OutboxRow]:
        """Rows whose earlier attempt may have reached Slack: marked sent if its message is in
        the channel's history, else (known not posted) sent again. Returns the rows to send;
        rows it could not settle now are put back, still marked, for a later pass."""
        earlier: dict[str, list[OutboxRow]] = {}
        for row in rows:
            if row.posting:
                earlier.setdefault(row.posting, []).append(row)
        if not earlier:
            return rows
        settled: set[int] = set()
        for attempt, group in earlier.items():
            ids = [row.id for row in group]
            if not self._time_left(claim):
                claim.unsettled.update(ids)
                settled.update(ids)
                continue
            outcome = self._find_attempt(group, attempt, claim)
            if outcome is None:  # could not tell now: the rows stay owed (and marked) for later
                settled.update(ids)
                continue
            found, ts = outcome
            with self._store.transaction() as tx:
                if found:
                    tx.mark_sent(ids, self._clock.now(), ts)
                else:
                    tx.clear_posting(ids, claimer=claim.token)
            if found:
                settled.update(ids)
                for row in group:
                    log.info(
                        "%s was posted by an earlier attempt (found in the channel's history); not sent again", row.key
                    )
                    claim.report.sent.append(row.key)
                    claim.report.recovered[row.key] = ts or ""
        return [row for row in rows if row.id not in settled]

    def _find_attempt(self, group: list[OutboxRow], attempt: str, claim: _Claim) -> tuple[bool, str | None] | None:
        """(found, ts) for the message carrying `attempt`; (False, None) when it cannot be
        looked for and is sent again (at-least-once, said in the log); None when Slack could
        not be asked now (the rows are put back, still marked, for a later pass)."""
        row = group[0]
        if not self._may_read_history():
            return self._resend(row, "without the history scopes the bot cannot look for it")
        began = (row.posting_at or self._clock.now()).timestamp()
        try:
            channel = self._channel(row)
            cursor = None
            for _ in range(HISTORY_PAGES):
                # Only the stretch in which that post can have landed: its claim, and a margin
                # for clocks (Slack's ts against this machine's).
                page = self._client.conversations_history(
                    channel=channel,
                    oldest=f"{began - HISTORY_SLACK_S:.6f}",
                    latest=f"{began + self._claim_s + HISTORY_SLACK_S:.6f}",
                    inclusive=True,
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                )
                for message in page.get("messages") or []:
                    meta = message.get("metadata") or {}
                    if (
                        meta.get("event_type") == DELIVERY_EVENT
                        and (meta.get("event_payload") or {}).get("attempt") == attempt
                    ):
                        return True, message.get("ts")
                cursor = (page.get("response_metadata") or {}).get("next_cursor")
                if not page.get("has_more") or not cursor:
                    return False, None
            return self._resend(row, f"the channel had more than {HISTORY_PAGES * 200} messages around it")
        except SlackApiError as exc:
            code = exc.response.get("error") if isinstance(exc.response.data, dict) else None
            status = exc.response.status_code
            if code == "missing_scope":
                self._history_granted = False
                return self._resend(row, "Slack refused to show the history (missing_scope)")
            if status == 429 or status >= 500 or code in TRANSIENT_SLACK_ERRORS:
                self._failed(group, f"Slack: {code or status}", _retry_after(exc), claim, maybe_posted=True)
                return None
            # not_in_channel (a public channel posted to without joining), …: it cannot be
            # looked for until someone acts, and waiting forever would lose it.
            fix = (
                " (invite the bot to the channel with /invite @Kling Balance for exactly once)"
                if (code == "not_in_channel")
                else ""
            )
            return self._resend(row, f"Slack refused to show the history ({code or status}){fix}")
        except (TimeoutError, URLError, OSError, HTTPException) as exc:
            self._failed(group, f"network: {type(exc).__name__}", 0.0, claim, maybe_posted=True)
            return None

    def _resend(self, row: OutboxRow, why: str) -> tuple[bool, str | None]:
        log.warning(
            "%s may already have been posted (its earlier attempt's answer was lost), but %s: sending it again "
            "(at-least-once)",
            row.key,
            why,
        )
        return False, None

    def _may_read_history(self) -> bool:
        if self._history_granted is None:
            try:
                granted = granted_scopes(self._client)
            except (SlackApiError, TimeoutError, URLError, OSError, HTTPException):
                return True  # try the lookup itself: it says missing_scope if so
            if granted is None:
                return True
            self._history_granted = granted >= HISTORY_SCOPES
        return self._history_granted

    def _skip_unwanted(self, rows: list[OutboxRow], report: DeliveryReport) -> list[OutboxRow]:
        now = self._clock.now()
        reasons: dict[int, str] = {}
        for row in rows:
            if row.target_is_user and not self._may_receive_dm(row.target):
                reasons[row.id] = "not sent: the user is no longer allowed to see balances (KLING_ALLOWED_USERS)"
        scoped = [row for row in rows if row.payload.get("mute_scope") and row.id not in reasons]
        if scoped:
            with self._store.transaction() as tx:
                mutes = {m.scope: m for m in tx.active_mutes(now)}
            for row in scoped:
                mute = mutes.get(row.payload["mute_scope"])
                if mute is not None:
                    # Muted: recorded as skipped, and not sent later either.
                    reasons[row.id] = f"not sent: muted by {mute.muted_by} until {mute.until:%Y-%m-%d %H:%M} UTC"
        if not reasons:
            return rows
        with self._store.transaction() as tx:
            for reason in set(reasons.values()):
                tx.mark_skipped([i for i, r in reasons.items() if r == reason], now, reason)
        for row in rows:
            if row.id in reasons:
                log.info("%s to %s %s", row.key, row.target, reasons[row.id])
                report.skipped[row.key] = reasons[row.id]
        return [row for row in rows if row.id not in reasons]

    def _messages(self, rows: list[OutboxRow]) -> list[tuple[list[OutboxRow], dict[str, Any]]]:
        """One message per row, except warnings or DMs piling up for one channel or person:
        those are batched, so nobody gets a flood."""
        batchable: dict[tuple[str, bool], list[OutboxRow]] = {}
        messages: list[tuple[list[OutboxRow], dict[str, Any]]] = []
        for row in rows:
            if "line" in row.payload:
                batchable.setdefault((row.target, row.target_is_user), []).append(row)
            else:
                messages.append(([row], row.payload))
        for (_, to_user), group in batchable.items():
            if len(group) < BATCH_FROM:
                messages.extend(([row], row.payload) for row in group)
                continue
            start = 0
            title = "thresholds crossed" if to_user else "pack warnings"
            for count, payload in batch_messages([row.payload["line"] for row in group], title=title):
                messages.append((group[start : start + count], payload))
                start += count
        return messages

    def _channel(self, row: OutboxRow) -> str:
        return self._dm_channel(row.target) if row.target_is_user else row.target

    def _post(self, channel: str, payload: dict[str, Any], attempt: str) -> str | None:
        self._pace(channel)
        response = self._client.chat_postMessage(
            channel=channel,
            text=payload.get("text", ""),
            blocks=payload.get("blocks"),
            unfurl_links=False,
            unfurl_media=False,
            # The attempt id, so a retry after a crash can find this message in the history.
            metadata={"event_type": DELIVERY_EVENT, "event_payload": {"attempt": attempt}},
        )
        return response.get("ts")

    def _dm_channel(self, user_id: str) -> str:
        if user_id not in self._dm_channels:
            opened = self._client.conversations_open(users=user_id)
            self._dm_channels[user_id] = opened["channel"]["id"]
        return self._dm_channels[user_id]

    def _pace(self, channel: str) -> None:
        last = self._last_post.get(channel)
        if last is not None:
            self._clock.sleep(PER_CHANNEL_INTERVAL_S - (self._clock.monotonic() - last))
        self._last_post[channel] = self._clock.monotonic()

    def _failed(
        self,
        rows: list[OutboxRow],
        error: str,
        retry_after_s: float,
        claim: _Claim,
        *,
        maybe_posted: bool = False,
    ) -> None:
        # Every failure stays owed and is retried on the same backing-off schedule, so the
        # pass after someone fixes the cause (invites the bot, say) delivers it unasked.
        delay = retry_delay_s(rows[0].attempts, retry_after_s)
        retry_at = self._clock.now() + timedelta(seconds=delay)
        keys = ", ".join(row.key for row in rows[:3]) + (f" and {len(rows) - 3} more" if len(rows) > 3 else "")
        fix = slack_fix(error, rows[0].target, to_user=rows[0].target_is_user)
        if fix is None:
            log.warning("Could not send %s (%s); still owed, next try in %.0f s", keys, error, delay)
        elif rows[0].last_error != error:
            # Said once, loudly, when the error first appears; quieter on later tries.
            log.error("Could not send %s (%s): %s. It stays owed and is retried.", keys, error, fix)
        else:
            log.info("Still cannot send %s (%s); next try in %.0f s", keys, error, delay)
        with self._store.transaction() as tx:
            tx.mark_failed([row.id for row in rows], error, retry_at, maybe_posted=maybe_posted, claimer=claim.token)
        for row in rows:
            claim.report.failed[row.key] = error
            if fix is not None:
                claim.report.needs_fix[row.key] = fix


def _retry_after(exc: SlackApiError) -> float:
    headers = getattr(exc.response, "headers", None) or {}
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return float(value if isinstance(value, str) else value[0])
            except (TypeError, ValueError, IndexError):
                return 0.0
    return 0.0


def notifier_client(settings: Settings) -> WebClient:
    """A Web API client without automatic retries: a failed post goes back to the outbox,
    which retries it later (after Retry-After on a 429) instead of blocking the job."""
    return WebClient(
        token=settings.slack_bot_token, base_url=settings.slack_api_url, timeout=SLACK_TIMEOUT_S, retry_handlers=[]
    )


def granted_scopes(client: WebClient) -> frozenset[str] | None:
    """The bot token's scopes, as Slack reports them on every answer (x-oauth-scopes)."""
    return scopes_of(client.auth_test().headers)


def scopes_of(headers: Any) -> frozenset[str] | None:
    """The scopes in an answer's x-oauth-scopes header; None when it has none (a proxy in
    SLACK_API_URL may drop it): then nothing is known, and the lookup is simply tried."""
    for name, value in (headers or {}).items():
        if name.lower() == "x-oauth-scopes":
            text = value if isinstance(value, str) else ",".join(value)
            return frozenset(s.strip() for s in text.split(",") if s.strip())
    return None


def at_least_once_notice(granted: frozenset[str]) -> str | None:
    """What to say at start when the exactly-once lookup cannot work, or None."""
    missing = sorted(HISTORY_SCOPES - granted)
    if not missing:
        return None
    return (
        f"Slack has not granted {', '.join(missing)}: a message whose post is cut off by a crash cannot be looked up, "
        "so that window is at-least-once (it may be sent twice). Reinstall the app with the scopes in manifest.yml "
        "for exactly once."
    )
