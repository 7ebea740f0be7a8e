"""Logging set-up, with secrets kept out of every line.

At DEBUG, slack_sdk and Bolt log request bodies and URLs: a command's `response_url` (anyone
holding it can post as the app for 30 minutes), the Socket Mode `wss://…?ticket=…` URL, and
headers that may carry tokens. `RedactingFilter` sits on the root handlers, so it sees every
record from every library, and rewrites those values before anything is written."""

from __future__ import annotations

import logging
import re
from typing import TextIO

REDACTED = "(redacted)"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Response URLs and incoming webhooks: the URL is the credential.
    (re.compile(r"https://hooks\.slack(?:-gov)?\.com/[^\s'\"<>,)}\]]*"), "https://hooks.slack.com/" + REDACTED),
    # `response_url` as a dict/JSON key or a form field (URL-encoded or not).
    (re.compile(r"(response_url['\"]?\s*[:=]\s*['\"]?)[^\s'\"&,}]+"), r"\1" + REDACTED),
    # The one-use Socket Mode ticket in the websocket URL.
    (re.compile(r"(ticket=)[^&\s'\"]+"), r"\1" + REDACTED),
    # Slack tokens: bot, user, app-level, refresh, config.
    (re.compile(r"\b(xox[abeoprs]|xapp)-[A-Za-z0-9-]+"), r"\1-" + REDACTED),
)
# Every URL a webhook client logs is a response URL or an incoming webhook, whatever its host.
_URL = re.compile(r"\b(?:https?|wss?)://[^\s'\"<>,)}\]]+")
_WEBHOOK_LOGGERS = ("slack_sdk.webhook", "slack_bolt.context.respond")


def redact(text: str, *, all_urls: bool = False) -> str:
    """`text` without response URLs, Socket Mode tickets or Slack tokens."""
    if all_urls:
        text = _URL.sub(REDACTED, text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (and traceback) with `redact` before it is formatted."""

    def filter(self, record: logging.LogRecord) -> bool:
        all_urls = record.name.startswith(_WEBHOOK_LOGGERS)
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: let the handler report it as logging does
            return True
        cleaned = redact(message, all_urls=all_urls)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text, so the redacted traceback is the one written.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, all_urls=all_urls)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, all_urls=all_urls)
        return True


def setup_logging(level: str, stream: TextIO) -> None:
    """Log to `stream` at `level`, every handler redacting secrets."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=stream)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    if level != "DEBUG":
        # httpx logs every request and APScheduler every job run at INFO: noise, not news.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
