"""A stand-in for Slack's Socket Mode on 127.0.0.1: `apps.connections.open` plus the websocket.

`FakeSocketMode` is the Web API stand-in (`FakeSlack`, so response URLs and the bot token's
methods work as before) that also answers `apps.connections.open` for the app-level token
with a one-use `ws://` URL (like Slack, `invalid_auth` for any other app-level token), and
serves that URL with a real websocket server. Like Slack it greets each connection with
`hello`, pushes envelopes to the newest connection, records the acks the app sends back, and
can ask the app to reconnect (`disconnect` / `refresh_requested`), closing the old connection
once the new one is up."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlparse

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

from tests.stand_ins.slack import ApiCall, FakeSlack

APP_TOKEN = "xapp-1-A0TEST-1-test-app-level-token"
APP_ID = "A0TEST"
# Slack pings its Socket Mode clients; often here so that a client closing its end (which
# waits for its blocked socket read to return) is not held up by a quiet connection.
KEEPALIVE_S = 0.05


@dataclass
class Ack:
    envelope_id: str
    payload: dict[str, Any] | None


class FakeSocketMode(FakeSlack):
    def __init__(self, *, app_token: str = APP_TOKEN) -> None:
        super().__init__()
        self.app_token = app_token
        self.acks: list[Ack] = []
        self.stray: list[str] = []  # anything the app sent that is not an ack
        self.opened = 0  # connections that completed the handshake with a valid ticket
        self._tickets: set[str] = set()
        self._connections: list[ServerConnection] = []
        self._ws_cond = threading.Condition()
        self._closing = threading.Event()
        self._ws = serve(self._session, "127.0.0.1", 0, compression=None)
        self._ws_thread = threading.Thread(target=self._ws.serve_forever, name="fake-socket-mode", daemon=True)
        self._keepalive = threading.Thread(target=self._ping_forever, name="fake-socket-mode-ping", daemon=True)

    @property
    def ws_base(self) -> str:
        host, port = self._ws.socket.getsockname()[:2]
        return f"ws://{host}:{port}"

    def __enter__(self) -> FakeSocketMode:
        super().__enter__()
        self._ws_thread.start()
        self._keepalive.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._closing.set()
        with self._ws_cond:
            connections = list(self._connections)
        for connection in connections:
            connection.close()
        self._ws.shutdown()
        self._ws_thread.join(timeout=5)
        self._keepalive.join(timeout=5)
        super().__exit__(*exc)

    # -- what a test does ---------------------------------------------------------------------

    def wait_for_connections(self, count: int = 1, timeout: float = 10.0) -> None:
        """Block until `count` connections have been greeted with `hello` (or fail the test)."""
        self._wait(lambda: self.opened >= count, timeout, f"expected {count} Socket Mode connection(s)")

    def send_envelope(self, type_: str, payload: dict[str, Any]) -> str:
        """Push an envelope to the newest connection, as Slack does; returns its envelope_id."""
        envelope_id = str(uuid.uuid4())
        with self._ws_cond:
            if not self._connections:
                raise AssertionError("no Socket Mode connection to send to")
            connection = self._connections[-1]
        connection.send(
            json.dumps(
                {
                    "envelope_id": envelope_id,
                    "type": type_,
                    "payload": payload,
                    "accepts_response_payload": type_ != "events_api",
                    "retry_attempt": 0,
                    "retry_reason": "",
                }
            )
        )
        return envelope_id

    def send_slash_command(self, fields: dict[str, str]) -> str:
        """A slash command as Socket Mode delivers it: the form fields as the envelope's payload."""
        return self.send_envelope("slash_commands", fields)

    def wait_for_ack(self, envelope_id: str, timeout: float = 10.0) -> Ack:
        """Block until the app acked `envelope_id` (or fail the test)."""

        def acked() -> bool:
            return any(a.envelope_id == envelope_id for a in self.acks)

        self._wait(acked, timeout, f"expected an ack for envelope {envelope_id}")
        with self._ws_cond:
            return next(a for a in self.acks if a.envelope_id == envelope_id)

    def request_refresh(self) -> None:
        """Warn the newest connection that it will be closed; the app should open a new one."""
        with self._ws_cond:
            connection = self._connections[-1]
        connection.send(
            json.dumps(
                {
                    "type": "disconnect",
                    "reason": "refresh_requested",
                    "debug_info": {"host": "applink-fake"},
                }
            )
        )

    # -- serving --------------------------------------------------------------------------------

    def _wait(self, done: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._ws_cond:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{what}; acks so far: {self.acks}, stray messages: {self.stray}")
                self._ws_cond.wait(left)

    def _api(self, method: str, args: dict[str, Any], auth: str | None) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._cond:
            failure = self.failures.get(method)
            failing = failure is not None and failure.times > 0
        if method != "apps.connections.open" or failing:  # `fail()` works here too
            return super()._api(method, args, auth)
        token = (auth or "").removeprefix("Bearer ").strip() or args.get("token", "")
        with self._cond:
            self.calls.append(ApiCall(method, args))
            self._cond.notify_all()
        if not token.startswith("xapp-"):
            # What Slack says when a bot or user token is used here.
            return 200, {"ok": False, "error": "not_allowed_token_type"}, {}
        if token != self.app_token:
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        ticket = str(uuid.uuid4())
        with self._ws_cond:
            self._tickets.add(ticket)
        return 200, {"ok": True, "url": f"{self.ws_base}/link/?ticket={ticket}&app_id={APP_ID}"}, {}

    def _session(self, connection: ServerConnection) -> None:
        query = parse_qs(urlparse(connection.request.path).query)
        ticket = (query.get("ticket") or [""])[0]
        with self._ws_cond:
            valid = ticket in self._tickets
            self._tickets.discard(ticket)  # each URL is good for one connection
        if not valid:
            connection.close(code=1008, reason="invalid ticket")
            return
        with self._ws_cond:
            older = list(self._connections)
            self._connections.append(connection)
        connection.send(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": 1,
                    "debug_info": {"host": "applink-fake", "approximate_connection_time": 18060},
                    "connection_info": {"app_id": APP_ID},
                }
            )
        )
        with self._ws_cond:
            self.opened += 1
            self._ws_cond.notify_all()
        for old in older:  # replaced: Slack closes the connection it asked the app to leave
            old.close()
        try:
            for message in connection:
                self._received(message)
        except ConnectionClosed:
            pass
        finally:
            with self._ws_cond:
                if connection in self._connections:
                    self._connections.remove(connection)
                self._ws_cond.notify_all()

    def _received(self, message: str | bytes) -> None:
        text = message.decode() if isinstance(message, bytes) else message
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        with self._ws_cond:
            if isinstance(data, dict) and set(data) <= {"envelope_id", "payload"} and "envelope_id" in data:
                self.acks.append(Ack(data["envelope_id"], data.get("payload")))
            else:
                self.stray.append(text)
            self._ws_cond.notify_all()

    def _ping_forever(self) -> None:
        while not self._closing.wait(KEEPALIVE_S):
            with self._ws_cond:
                connections = list(self._connections)
            for connection in connections:
                with contextlib.suppress(ConnectionClosed):
                    connection.ping()
