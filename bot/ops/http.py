"""The operators' endpoints, as a WSGI app: GET /metrics, /readyz and /healthz.

HTTP mode mounts it beside Slack on $PORT (bot.slack.server); Socket Mode and `worker`
serve it alone on METRICS_PORT (`metrics_server`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from bot.ops.metrics import Metrics
from bot.slack.server import LIMITS, ServerThread, WsgiApp, listen

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
READY_PATH = "/readyz"
HEALTH_PATH = "/healthz"
# Scrapes and probes are few; a scrape waiting on the database holds only its own thread.
OPS_THREADS = 4
_TEXT = "text/plain; charset=utf-8"


def ops_app(metrics: Metrics) -> WsgiApp:
    """/metrics (Prometheus text format, OpenMetrics when asked), /readyz (200 or 503 with a
    one-line reason) and /healthz (200 while the process answers)."""

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO")
        if path not in (METRICS_PATH, READY_PATH, HEALTH_PATH):
            return _reply(start_response, "404 Not Found", b"not found\n")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _reply(start_response, "405 Method Not Allowed", b"use GET\n", [("Allow", "GET, HEAD")])
        if path == HEALTH_PATH:
            return _reply(start_response, "200 OK", b"ok\n")
        if path == READY_PATH:
            state = metrics.readiness()
            status = "200 OK" if state.ready else "503 Service Unavailable"
            return _reply(start_response, status, state.reason.encode() + b"\n")
        try:
            body, content_type = metrics.exposition(environ.get("HTTP_ACCEPT", ""))
        except Exception:  # a bug in a collector: the scraper gets a line, the log the traceback
            log.exception("Metrics: the scrape failed")
            return _reply(start_response, "500 Internal Server Error", b"the metrics could not be collected\n")
        return _reply(start_response, "200 OK", body, content_type=content_type)

    return application


def _reply(
    start_response: Callable[..., Any],
    status: str,
    body: bytes,
    headers: list[tuple[str, str]] | None = None,
    *,
    content_type: str = _TEXT,
) -> list[bytes]:
    start_response(
        status,
        [("Content-Type", content_type), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")]
        + (headers or []),
    )
    return [body]


def metrics_server(metrics: Metrics, *, host: str, port: int) -> ServerThread:
    """/metrics, /readyz and /healthz alone on host:port, not yet started. Raises ListenError
    (naming METRICS_PORT) when the port cannot be had."""
    server = listen(ops_app(metrics), host=host, port=port, limits=LIMITS, threads=OPS_THREADS, setting="METRICS_PORT")
    return ServerThread(server, name="metrics-server")
