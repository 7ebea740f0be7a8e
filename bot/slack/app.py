"""Build the Bolt app: services on the context, listeners registered, one error handler, and
the background pool that answers commands after they are acked."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App, BoltContext
from slack_bolt.context.respond import Respond
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)
from slack_sdk.webhook import WebhookResponse

from bot.services import Services
from bot.slack import listeners
from bot.views.balance import internal_error_message

log = logging.getLogger(__name__)

# Bolt runs each listener's ack function on this pool and the request thread waits for the
# ack. Listeners only ack and hand their work to `Background`, so a few threads suffice
# (one per HTTP request thread) and no slow work can keep an ack waiting for a thread.
LISTENER_THREADS = 16
# Threads answering commands after the ack. Kling is asked by one of them at a time (the
# cache's single flight); the rest render and post replies, so a bounded pool keeps up.
# Commands beyond it wait in the pool's queue (a few objects each; only requests Slack
# signed get there) and are still told "Asking Kling…" on time.
WORK_THREADS = 32
# Without an answer this long after the ack, the user sees "Asking Kling…" (Slack shows
# nothing at all until the first message arrives at response_url).
INTERIM_AFTER_S = 2.0
INTERIM_THREADS = 4
INTERIM_TEXT = "Asking Kling… (this can take a few seconds)"


class Reply(Respond):
    """One command's `respond`: an interim message may go first, and the answer then takes
    its place. A lock keeps the two in order, so the interim never lands after the answer."""

    def __init__(self, respond: Respond | None) -> None:
        # Bolt gives no `respond` for requests without a response_url (events).
        if respond is None:
            super().__init__(response_url=None)
        else:
            super().__init__(response_url=respond.response_url, proxy=respond.proxy, ssl=respond.ssl)
        self._lock = threading.Lock()
        self._answered = False
        self._interim_shown = False

    @property
    def answered(self) -> bool:
        return self._answered

    def interim(self) -> None:
        with self._lock:
            if self._answered or self._interim_shown:
                return
            self._interim_shown = True
            super().__call__(text=INTERIM_TEXT, response_type="ephemeral")

    def close(self) -> None:
        """No interim after this (the work is over, answered or not)."""
        with self._lock:
            self._answered = True

    def __call__(self, *args: Any, **kwargs: Any) -> WebhookResponse:
        with self._lock:
            self._answered = True
            if self._interim_shown:
                self._interim_shown = False
                if kwargs.get("response_type") == "in_channel":
                    # An ephemeral message cannot be replaced by a public one: remove it first.
                    super().__call__(delete_original=True)
                else:
                    kwargs.setdefault("replace_original", True)
            return super().__call__(*args, **kwargs)


class Background:
    """Answers commands after their ack, on a pool of its own.

    Why not Bolt's lazy listeners: they run on Bolt's listener pool, the same threads that
    run the ack functions, so a burst of commands waiting on a slow Kling would again hold
    later acks back. And why not work inside the listener after `ack()`: when a listener
    raises after acking, Bolt's error path resets the ack it already recorded, so the HTTP
    reply becomes a 404 or 500 and Socket Mode never acks the envelope. Work here cannot
    reach Bolt: failures go to `handle_error` from this pool."""

    def __init__(self, *, threads: int = WORK_THREADS, interim_after_s: float = INTERIM_AFTER_S) -> None:
        self._work = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="work")
        self._interims = ThreadPoolExecutor(max_workers=INTERIM_THREADS, thread_name_prefix="interim")
        self._interim_after_s = interim_after_s
        # Every command waits the same time, so deadlines arrive in order: a FIFO suffices.
        self._due: deque[tuple[float, Reply]] = deque()
        self._cond = threading.Condition()
        self._timer: threading.Thread | None = None

    def run(
        self, job: Callable[[Respond], None], respond: Respond | None, body: dict[str, Any], *, interim: bool = True
    ) -> None:
        """Start `job(reply)` and return at once. Never raises: it runs right after `ack()`.
        `interim` False: no "Asking Kling…" (a button's answer replaces its own message)."""
        try:
            reply = Reply(respond)
            if reply.response_url and interim:  # else there is nowhere (or no need) to show one
                with self._cond:
                    self._due.append((time.monotonic() + self._interim_after_s, reply))
                    if self._timer is None:
                        self._timer = threading.Thread(target=self._send_interims, name="interim-timer", daemon=True)
                        self._timer.start()
            self._work.submit(self._answer, job, reply, body)
        except Exception:  # the process is shutting down; nothing can answer
            log.exception("Could not start answering a Slack request")

    @staticmethod
    def _answer(job: Callable[[Respond], None], reply: Reply, body: dict[str, Any]) -> None:
        try:
            job(reply)
        except Exception as exc:
            handle_error(exc, body, reply)
        finally:
            reply.close()

    def _send_interims(self) -> None:
        # Lives while interims are due; the next `run` starts another, so an idle app keeps
        # no thread (tests build many apps).
        while True:
            with self._cond:
                if not self._due:
                    self._timer = None
                    return
                at, reply = self._due[0]
                wait = at - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                self._due.popleft()
            if not reply.answered:
                self._interims.submit(self._interim, reply)

    @staticmethod
    def _interim(reply: Reply) -> None:
        try:
            reply.interim()
        except Exception:  # the answer still follows; only the courtesy message is lost
            log.warning("Could not post the interim reply", exc_info=True)


def build_app(services: Services) -> App:
    """The Bolt app. In HTTP mode every request's signature is checked against
    SLACK_SIGNING_SECRET; Socket Mode requests arrive over an authenticated socket."""
    settings = services.settings
    background = Background()
    # Bolt reads SLACK_BOT_TOKEN from the environment when no token is given, and then
    # warns at every start that a `client` makes it unused; so give the token, not a
    # client, and set up the client Bolt built.
    app = App(
        token=settings.slack_bot_token,
        signing_secret=settings.slack_signing_secret,
        listener_executor=ThreadPoolExecutor(max_workers=LISTENER_THREADS, thread_name_prefix="listener"),
        # Checked at start-up by `kling-bot serve` with a clear message instead.
        token_verification_enabled=False,
    )
    app.client.base_url = settings.slack_api_url
    app.client.retry_handlers = [
        ConnectionErrorRetryHandler(max_retry_count=2),
        RateLimitErrorRetryHandler(max_retry_count=3),
    ]

    @app.middleware
    def provide_services(context: BoltContext, next: Callable[[], Any]) -> Any:
        # Listeners take `services` and `background` by parameter name (Bolt injects context keys).
        context["services"] = services
        context["background"] = background
        return next()

    listeners.register(app)
    app.error(handle_error)
    return app


def handle_error(error: Exception, body: dict[str, Any], respond: Respond | None) -> None:
    """Anything a listener did not handle: log it with its stack, tell the user plainly."""
    log.error("Unhandled error while answering Slack: %r", error, exc_info=error)
    if respond is not None and isinstance(body, dict) and body.get("response_url"):
        try:
            respond(**internal_error_message(), response_type="ephemeral")
        except Exception:  # the user cannot be told; the log above has the cause
            log.warning("Could not tell the user about the error either", exc_info=True)
