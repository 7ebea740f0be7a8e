"""Run the Bolt app: HTTP behind waitress, or Socket Mode."""

from __future__ import annotations

import logging
import threading
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
# waitress's default of 100 open connections counts its own sockets too; a proxy or Slack
# holding ~100 keep-alive connections would then leave new commands unacked past 3 s.
CONNECTION_LIMIT = 1000

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
    return create_server(
        wsgi_app(app),
        host=host,
        port=port,
        threads=HTTP_THREADS,
        connection_limit=CONNECTION_LIMIT,
        ident="kling-balance-bot",
    )


class BackgroundHttpServer:
    """The HTTP server on a thread of its own, stopped cleanly (tests, benchmarks)."""

    def __init__(self, app: App, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = http_server(app, host=host, port=port)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="http-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self._server.effective_host}:{self._server.effective_port}"

    def _run(self) -> None:
        try:
            self._server.run()
        except (OSError, ValueError):
            # Closing the listening socket from another thread ends waitress's select loop
            # with "bad file descriptor"; that is the expected way out.
            if not self._stopping:
                raise

    def start(self) -> BackgroundHttpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping = True
        self._server.task_dispatcher.shutdown(timeout=5)
        self._server.close()
        self._thread.join(timeout=5)


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
