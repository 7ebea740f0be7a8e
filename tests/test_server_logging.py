"""The redacting log filter: Slack's response URLs, Socket Mode tickets and tokens never reach
a log line, whichever library writes it and in whichever shape (text, dict, form, traceback)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from bot.logs import RedactingFilter, redact

RESPONSE_URL = "https://hooks.slack.com/commands/T0TEST/1234567890/AbCdEfGhIjKlMnOp"
TICKET_URL = "wss://wss-primary.slack.com/link/?ticket=8d3c1a2b-4e5f&app_id=A0TEST"


@pytest.fixture
def log_text() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose records go through a handler carrying the filter, as `setup_logging` sets up."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


@pytest.mark.parametrize(
    "secret",
    [RESPONSE_URL, "8d3c1a2b-4e5f", "xoxb-123-456-abcDEF", "xapp-1-A0TEST-1-abc123", "xoxp-9-8-7-zyx"],
)
def test_secrets_are_redacted_in_every_shape(log_text: tuple[logging.Logger, io.StringIO], secret: str) -> None:
    """Response URLs, tickets and tokens are replaced in plain text, dict reprs, JSON and log arguments."""
    logger, stream = log_text
    logger.debug("Sending a request - url: %s", RESPONSE_URL)
    logger.debug("payload %s", {"response_url": RESPONSE_URL, "token": "xoxb-123-456-abcDEF"})
    logger.debug('{"response_url": "%s"}', RESPONSE_URL)
    logger.info("Connecting to %s", TICKET_URL)
    logger.info("headers Authorization: Bearer xapp-1-A0TEST-1-abc123, user xoxp-9-8-7-zyx")
    assert secret not in stream.getvalue()
    assert stream.getvalue().count("(redacted)") >= 6


def test_form_encoded_response_url_is_redacted() -> None:
    """A slash command's form body keeps its fields but loses the response URL's value."""
    body = "command=%2Fkling-balance&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT0%2F1%2Fx&text="
    assert redact(body) == "command=%2Fkling-balance&response_url=(redacted)&text="


def test_any_url_a_webhook_client_logs_is_redacted(log_text: tuple[logging.Logger, io.StringIO]) -> None:
    """slack_sdk's webhook client only ever logs response URLs or incoming webhooks, whatever their host."""
    _, stream = log_text
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    webhook_log = logging.getLogger("slack_sdk.webhook.client")
    webhook_log.addHandler(handler)
    try:
        webhook_log.warning("Sending a request - url: http://127.0.0.1:8080/respond/abc, body: {}")
    finally:
        webhook_log.removeHandler(handler)
    assert "/respond/abc" not in stream.getvalue() and "url: (redacted)" in stream.getvalue()


def test_tracebacks_are_redacted(log_text: tuple[logging.Logger, io.StringIO]) -> None:
    """An exception message carrying a response URL is redacted in the logged traceback too."""
    logger, stream = log_text
    try:
        raise ConnectionError(f"could not post to {RESPONSE_URL}")
    except ConnectionError:
        logger.exception("Could not answer")
    assert "Traceback" in stream.getvalue() and RESPONSE_URL not in stream.getvalue()
