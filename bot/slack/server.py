"""Run the Bolt app: HTTP behind waitress, or Socket Mode."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler
from waitress.server import create_server

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
# Request threads only verify, ack and return: a handful serve many concurrent commands.
HTTP_THREADS = 16

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def wsgi_app(app: App) -> WsgiApp:
    """Slack at POST /slack/events (commands, events, interactivity), GET /healthz for the platform."""
    slack = SlackRequestHandler(app, path=EVENTS_PATH)

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == HEALTH_PATH and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n"]
        return slack(environ, start_response)

    return application


def http_server(app: App, *, host: str, port: int) -> Any:
    """A waitress server (production-grade, pure Python); port 0 picks a free port."""
    return create_server(wsgi_app(app), host=host, port=port, threads=HTTP_THREADS, ident="kling-balance-bot")


def serve_http(app: App, *, host: str, port: int) -> None:
    server = http_server(app, host=host, port=port)
    log.info(
        "HTTP mode: listening on %s:%s (Slack at %s, health at %s)",
        host,
        server.effective_port,
        EVENTS_PATH,
        HEALTH_PATH,
    )
    server.run()


def serve_socket_mode(app: App, app_token: str) -> None:
    log.info("Socket Mode: connecting to Slack")
    SocketModeHandler(app, app_token, web_client=app.client).start()
