"""Run the Bolt app: HTTP behind waitress, or Socket Mode."""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Self

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
# Served by bot.ops.http when the server is given it.
OPS_PATHS = frozenset({"/metrics", "/readyz"})
# Request threads only verify, ack and return: a handful serve many concurrent commands.
HTTP_THREADS = 16

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True)
class Limits:
    """What any one client can hold of the HTTP server. Slack sends small requests, promptly,
    and gives up on its own after 3 s, so anything far outside that is dropped."""

    # Slack's payloads are a few KB. waitress answers 413 from the Content-Length header
    # (or as a chunked body passes the limit) without reading or buffering the body.
    max_body_bytes: int = 1 << 20
    max_header_bytes: int = 64 << 10
    # waitress stops accepting at this many open sockets; further connections wait in the
    # listen backlog until one closes. Well under the usual 1,024 open-files limit, so
    # the database, Kling and Slack clients always have descriptors left.
    connection_limit: int = 500
    # A keep-alive connection with no request in progress is closed after this long.
    idle_timeout_s: int = 20
    # A request still arriving this long after its first byte is dropped: waitress counts
    # every trickled byte as activity, so without this a client sending a byte every few
    # seconds (slowloris) holds its connection forever, and enough of them fill every slot.
    request_timeout_s: float = 10.0
    # How often both timeouts are checked.
    check_interval_s: int = 1


LIMITS = Limits()


class ListenError(Exception):
    """The HTTP port could not be opened; the message says what to do about it."""


def wsgi_app(app: App, ops: WsgiApp | None = None) -> WsgiApp:
    """Slack at POST /slack/events (commands, events, interactivity), GET /healthz for the
    platform, and with `ops` GET /metrics and /readyz (bot.ops.http)."""
    slack = SlackRequestHandler(app, path=EVENTS_PATH)

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO")
        if path == HEALTH_PATH and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n"]
        if ops is not None and path in OPS_PATHS:
            return ops(environ, start_response)
        return slack(environ, start_response)

    return application


class _TimedChannel(HTTPChannel):  # type: ignore[misc]
    """Remembers when the request it is reading began (waitress only keeps the last byte's time)."""

    request_started = 0.0
    _timed: object = None

    def received(self, data: bytes) -> bool:
        result: bool = super().received(data)
        # Runs on waitress's event-loop thread, as does `maintenance`: no lock needed.
        if self.request is not None and self.request is not self._timed:
            self._timed, self.request_started = self.request, time.time()
        return result


class BoundedServer(TcpWSGIServer):  # type: ignore[misc]
    """waitress's TCP server, also closing connections whose request trickles in."""

    channel_class = _TimedChannel

    def __init__(self, application: WsgiApp, adj: Adjustments, request_timeout_s: float) -> None:
        self.request_timeout_s = request_timeout_s
        dispatcher = ThreadedTaskDispatcher()
        dispatcher.set_thread_count(adj.threads)
        super().__init__(application, map={}, dispatcher=dispatcher, adj=adj)

    def maintenance(self, now: float) -> None:
        super().maintenance(now)  # idle connections, after channel_timeout
        cutoff = now - self.request_timeout_s
        for channel in list(self.active_channels.values()):
            if channel.request is not None and not channel.requests and channel.request_started < cutoff:
                channel.will_close = True


def http_server(
    app: App, *, host: str, port: int, limits: Limits = LIMITS, ops: WsgiApp | None = None
) -> BoundedServer:
    """The bot's server: Slack, /healthz, and `ops` (/metrics, /readyz) when given."""
    return listen(wsgi_app(app, ops), host=host, port=port, limits=limits)


def listen(
    application: WsgiApp,
    *,
    host: str,
    port: int,
    limits: Limits = LIMITS,
    threads: int = HTTP_THREADS,
    setting: str = "PORT",
) -> BoundedServer:
    """A waitress server (production-grade, pure Python) for `application`, bound to
    host:port (the first address `host` resolves to); port 0 picks a free port. Raises
    ListenError, saying why and which `setting` to change, when the port cannot be had."""
    try:
        adj = Adjustments(
            host=host,
            port=port,
            threads=threads,
            connection_limit=limits.connection_limit,
            channel_timeout=limits.idle_timeout_s,
            cleanup_interval=limits.check_interval_s,
            max_request_body_size=limits.max_body_bytes,
            max_request_header_size=limits.max_header_bytes,
            # select() fails outright on descriptors above 1,023; poll() has no such ceiling.
            asyncore_use_poll=True,
            ident="kling-balance-bot",
        )
        return BoundedServer(application, adj, limits.request_timeout_s)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ListenError(f"port {port} is already in use: stop the other process or set {setting}") from None
        if exc.errno == errno.EACCES:
            raise ListenError(
                f"no permission to listen on port {port}: use a port above 1023 or set {setting}"
            ) from None
        raise ListenError(f"could not listen on {host}:{port} ({exc.strerror or exc})") from None


class ServerThread:
    """A server on a thread of its own, stopped cleanly."""

    def __init__(self, server: BoundedServer, *, name: str = "http-server") -> None:
        self._server = server
        self._thread = threading.Thread(target=self._server.run, name=name, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self._server.effective_host}:{self._server.effective_port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.task_dispatcher.shutdown(timeout=5)
        # Sockets belong to the event loop's thread: close them all there, which also ends
        # the loop (it runs while any socket is open).
        self._server.trigger.pull_trigger(lambda: wasyncore.close_all(self._server._map))
        self._thread.join(timeout=5)


class BackgroundHttpServer(ServerThread):
    """The bot's HTTP server on a thread of its own (tests, benchmarks)."""

    def __init__(
        self,
        app: App,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: Limits = LIMITS,
        ops: WsgiApp | None = None,
    ) -> None:
        super().__init__(http_server(app, host=host, port=port, limits=limits, ops=ops))


def serve_http(server: BoundedServer) -> None:
    """Serve until Ctrl-C or SIGTERM (waitress returns from `run` on KeyboardInterrupt)."""
    log.info(
        "HTTP mode: listening on %s:%s (Slack at %s, health at %s)",
        server.effective_host,
        server.effective_port,
        EVENTS_PATH,
        HEALTH_PATH,
    )
    server.run()


def serve_socket_mode(app: App, app_token: str) -> None:
    log.info("Socket Mode: connecting to Slack")
    SocketModeHandler(app, app_token, web_client=app.client).start()
