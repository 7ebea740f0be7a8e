"""Build the Bolt app: services on the context, listeners registered, one error handler."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App, BoltContext
from slack_bolt.context.respond import Respond
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)

from bot.services import Services
from bot.slack import listeners
from bot.views.balance import internal_error_message

log = logging.getLogger(__name__)

# Bolt acks from the listener thread, so every command in flight holds one thread while it
# waits for Kling. Bolt's default pool of 5 would make the sixth concurrent command wait
# for a thread before it can even ack, and miss Slack's 3 s deadline; threads blocked on
# I/O are cheap, and the pool only grows as needed.
LISTENER_THREADS = 256


def slack_client(services: Services) -> WebClient:
    settings = services.settings
    return WebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=2), RateLimitErrorRetryHandler(max_retry_count=3)],
    )


def build_app(services: Services, *, client: WebClient | None = None) -> App:
    """The Bolt app. In HTTP mode every request's signature is checked against
    SLACK_SIGNING_SECRET; Socket Mode requests arrive over an authenticated socket."""
    settings = services.settings
    app = App(
        client=client or slack_client(services),
        signing_secret=settings.slack_signing_secret,
        listener_executor=ThreadPoolExecutor(max_workers=LISTENER_THREADS, thread_name_prefix="listener"),
        # Checked at start-up by `kling-bot serve` with a clear message instead.
        token_verification_enabled=False,
    )

    @app.middleware
    def provide_services(context: BoltContext, next: Callable[[], Any]) -> Any:
        # Listeners take `services` by parameter name (Bolt injects context keys).
        context["services"] = services
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
