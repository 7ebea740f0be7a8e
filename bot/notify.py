"""Send what the outbox owes to Slack, and keep owing what could not be sent.

A post that fails (a Slack error, HTTP 429 with Retry-After, a network error) is put back
with a later attempt time and retried by the next pass; nothing is dropped. Each row is
claimed in the database first, so two processes on one database never both send it.
"""

from __future__ import annotations

import logging
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

log = logging.getLogger(__name__)

# A claim lasts this long; a process that dies mid-send releases its rows by letting it lapse.
CLAIM_LEASE_MS = 120_000
# A pass stops starting posts after this much of the lease: past the lease another process
# could claim the same rows, so whatever is left is handed back instead (Slack timing out
# at 15 s a post would otherwise run a long pass past it).
SEND_WITHIN_S = CLAIM_LEASE_MS / 1000 / 2
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


class Notifier:
    def __init__(
        self,
        store: Store,
        client: WebClient,
        clock: Clock,
        *,
        may_receive_dm: Callable[[str], bool] = lambda _user: True,
    ) -> None:
        self._store = store
        self._client = client
        self._clock = clock
        # Access rules hold when a DM is sent, not only when it was subscribed.
        self._may_receive_dm = may_receive_dm
        self._last_post: dict[str, float] = {}
        self._dm_channels: dict[str, str] = {}

    def deliver_due(self, *, limit: int = 1000) -> DeliveryReport:
        report = DeliveryReport()
        with self._store.transaction() as tx:
            claimed = tx.claim_due(self._clock.now(), lease_ms=CLAIM_LEASE_MS, limit=limit)
        started = self._clock.monotonic()
        messages: list[tuple[list[OutboxRow], dict[str, Any]]] = [([row], row.payload) for row in claimed]
        done = 0
        try:
            messages = self._messages(self._skip_unwanted(claimed, report))
            for rows_in_message, payload in messages:
                if self._clock.monotonic() - started > SEND_WITHIN_S:
                    log.warning("Delivery pass ran long; the rest is handed back for the next pass")
                    break
                self._send(rows_in_message, payload, report)
                done += 1
        finally:
            # Whatever was not tried (a long pass, or an error that escaped) goes back at once
            # instead of staying claimed until the lease lapses.
            left = [row.id for group, _ in messages[done:] for row in group]
            if left:
                with self._store.transaction() as tx:
                    tx.release(left)
        return report

    def _send(self, rows: list[OutboxRow], payload: dict[str, Any], report: DeliveryReport) -> None:
        try:
            ts = self._post(rows[0], payload)
        except SlackApiError as exc:
            status = exc.response.status_code
            code = exc.response.get("error") if isinstance(exc.response.data, dict) else None
            self._failed(rows, f"Slack: {code or status}", _retry_after(exc), report)
        except (TimeoutError, URLError, OSError, HTTPException) as exc:
            # HTTPException covers an answer cut off mid-body (IncompleteRead): transient.
            self._failed(rows, f"network: {type(exc).__name__}", 0.0, report)
        except Exception as exc:  # a bug must not stop the pass nor leave rows claimed
            log.exception("Unexpected error sending %s", rows[0].key)
            self._failed(rows, f"unexpected: {type(exc).__name__}", 0.0, report)
        else:
            with self._store.transaction() as tx:
                tx.mark_sent([row.id for row in rows], self._clock.now(), ts)
            report.sent.extend(row.key for row in rows)

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

    def _post(self, row: OutboxRow, payload: dict[str, Any]) -> str | None:
        channel = self._dm_channel(row.target) if row.target_is_user else row.target
        self._pace(channel)
        response = self._client.chat_postMessage(
            channel=channel,
            text=payload.get("text", ""),
            blocks=payload.get("blocks"),
            unfurl_links=False,
            unfurl_media=False,
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

    def _failed(self, rows: list[OutboxRow], error: str, retry_after_s: float, report: DeliveryReport) -> None:
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
            tx.mark_failed([row.id for row in rows], error, retry_at)
        for row in rows:
            report.failed[row.key] = error
            if fix is not None:
                report.needs_fix[row.key] = fix


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
    return WebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url, timeout=15, retry_handlers=[])
