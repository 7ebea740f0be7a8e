"""A stand-in for the Slack Web API and for `response_url`s, on 127.0.0.1.

It records every call, checks the bot token, answers the methods the bot uses, limits each
response URL to 5 uses like Slack, and can be told to fail a method (HTTP 429 with
Retry-After, or an `ok: false` error). Like Slack, every answer to the bot token carries the
granted scopes in `x-oauth-scopes`, and methods that need a scope not granted answer
`missing_scope`. Posted messages are kept per channel, metadata included, and served back by
`conversations.history`."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from bot.views.manifest import bot_scopes

BOT_TOKEN = "xoxb-test-bot-token"
SIGNING_SECRET = "test-signing-secret-0123456789"


@dataclass
class ApiCall:
    method: str
    args: dict[str, Any]


@dataclass
class Failure:
    times: int
    status: int
    error: str | None
    retry_after: int | None
    # Send a 200 whose body is cut off mid-way (the connection closes early).
    cut_off: bool = False
    # Do the call first (a post is kept), then fail as told: Slack took it, the answer was lost.
    accepted: bool = False


class _Server(ThreadingHTTPServer):
    # Like Slack's front end, accept bursts: the default backlog of 5 resets connections.
    request_queue_size = 1024
    daemon_threads = True


class FakeSlack:
    def __init__(self) -> None:
        self.calls: list[ApiCall] = []
        self.responses: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.failures: dict[str, Failure] = {}
        # The bot token's scopes, as granted at install (the manifest's, unless a test says).
        self.scopes: set[str] = set(bot_scopes())
        # Messages posted, per channel, as conversations.history returns them (oldest first).
        self.messages: dict[str, list[dict[str, Any]]] = defaultdict(list)
        # chat.postMessage keeps the message, then waits this long before answering (a slow
        # Slack, or one whose answer is lost when the caller dies meanwhile).
        self.post_delay_s = 0.0
        # Called with each kept message's arguments before the answer is sent (it may block).
        self.post_hook: Any = None
        self._cond = threading.Condition()
        self._ts = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                fake._handle(self)

            do_GET = do_POST

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        return f"{self.base}/api/"

    def response_url(self, key: str) -> str:
        return f"{self.base}/respond/{key}"

    def __enter__(self) -> FakeSlack:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail(
        self,
        method: str,
        *,
        times: int = 1,
        status: int = 200,
        error: str | None = None,
        retry_after: int | None = None,
        cut_off: bool = False,
        accepted: bool = False,
    ) -> None:
        self.failures[method] = Failure(times, status, error, retry_after, cut_off, accepted)

    def wait_for_calls(self, method: str, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Block until `method` was called `count` times (or fail the test)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len([c for c in self.calls if c.method == method]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} call(s) to {method}")
                self._cond.wait(left)
            return [c.args for c in self.calls if c.method == method]

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        with self._cond:
            return [c.args for c in self.calls if c.method == method]

    def wait_for_responses(self, key: str, count: int = 1, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Block until `count` payloads reached the response URL `key` (or fail the test)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.responses[key]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} response(s) at {key}, got {len(self.responses[key])}")
                self._cond.wait(left)
            return list(self.responses[key])

    def wait_for_answer(self, key: str, timeout: float = 40.0) -> dict[str, Any]:
        """The answer at response URL `key`, past any interim "Asking Kling…" reply."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                answers = [r for r in self.responses[key] if "Asking Kling" not in str(r.get("text", ""))]
                if answers:
                    return answers[-1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no answer at {key} within {timeout} s: {self.responses[key]}")
                self._cond.wait(left)

    # -- serving ----------------------------------------------------------------------------

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        raw = req.rfile.read(length) if length else b""
        path = urlparse(req.path).path
        if req.headers.get("Content-Type", "").startswith("application/json"):
            args = json.loads(raw or b"{}")
        else:
            args = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        if path.startswith("/respond/"):
            status, body, headers = self._respond(path.removeprefix("/respond/"), args)
        elif path.startswith("/api/"):
            status, body, headers = self._api(path.removeprefix("/api/"), args, req.headers.get("Authorization"))
        else:
            status, body, headers = 404, {"ok": False, "error": "not_found"}, {}
        payload = json.dumps(body).encode()
        if headers.pop("X-Cut-Off", None):
            req.send_response(200)
            req.send_header("Content-Type", "application/json; charset=utf-8")
            req.send_header("Content-Length", str(len(payload) + 100))
            req.end_headers()
            req.wfile.write(payload[: len(payload) // 2])
            req.wfile.flush()
            req.close_connection = True
            return
        req.send_response(status)
        req.send_header("Content-Type", "application/json; charset=utf-8")
        req.send_header("Content-Length", str(len(payload)))
        for k, v in headers.items():
            req.send_header(k, v)
        req.end_headers()
        req.wfile.write(payload)

    def _respond(self, key: str, args: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._cond:
            if len(self.responses[key]) >= 5:
                return 404, {"ok": False, "error": "used_url"}, {}
            self.responses[key].append(args)
            self._cond.notify_all()
        return 200, {"ok": True}, {}

    def _api(self, method: str, args: dict[str, Any], auth: str | None) -> tuple[int, dict[str, Any], dict[str, str]]:
        token = (auth or "").removeprefix("Bearer ").strip() or args.get("token")
        with self._cond:
            failure = self.failures.get(method)
            if failure and failure.times > 0:
                failure.times -= 1
                self.calls.append(ApiCall(method, {**args, "_failed": True}))
                if failure.accepted:
                    self._method(method, args)
                headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
                if failure.cut_off:
                    return 200, {"ok": True, "channel": args.get("channel"), "ts": "1.2"}, {"X-Cut-Off": "1"}
                if failure.status == 429:
                    return 429, {"ok": False, "error": "ratelimited"}, headers
                return failure.status, {"ok": False, "error": failure.error or "internal_error"}, headers
            self.calls.append(ApiCall(method, args))
            self._cond.notify_all()
        if token != BOT_TOKEN:
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        status, body, headers = self._method(method, args)
        return status, body, {"x-oauth-scopes": ",".join(sorted(self.scopes)), **headers}

    def _needs(self, scope: str) -> dict[str, Any] | None:
        if scope in self.scopes:
            return None
        return {"ok": False, "error": "missing_scope", "needed": scope, "provided": ",".join(sorted(self.scopes))}

    def _method(self, method: str, args: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        if method == "auth.test":
            return (
                200,
                {
                    "ok": True,
                    "url": "https://test.slack.com/",
                    "team": "Test Team",
                    "user": "kling-bot",
                    "team_id": "T0TEST",
                    "user_id": "UBOT",
                    "bot_id": "BBOT",
                },
                {},
            )
        if method == "chat.postMessage":
            with self._cond:
                self._ts += 1
                ts = f"{time.time():.0f}.{self._ts:06d}"
                message: dict[str, Any] = {"type": "message", "ts": ts, "text": args.get("text"), "bot_id": "BBOT"}
                metadata = args.get("metadata")
                if isinstance(metadata, str):
                    metadata = json.loads(metadata)
                if metadata:
                    message["metadata"] = metadata
                self.messages[str(args.get("channel"))].append(message)
                self._cond.notify_all()
            if self.post_hook is not None:
                self.post_hook(args)
            if self.post_delay_s:
                time.sleep(self.post_delay_s)
            return (
                200,
                {"ok": True, "channel": args.get("channel"), "ts": ts, "message": {"text": args.get("text")}},
                {},
            )
        if method == "conversations.open":
            users = args.get("users", "")
            return 200, {"ok": True, "channel": {"id": "D" + str(users).replace(",", "")}}, {}
        if method == "views.publish":
            return 200, {"ok": True, "view": {"id": "V1"}}, {}
        if method == "views.open":
            # Like Slack: a trigger_id is needed (and is good for 3 s, not checked here).
            if not args.get("trigger_id"):
                return 200, {"ok": False, "error": "invalid_trigger_id"}, {}
            return 200, {"ok": True, "view": {"id": "VMODAL"}}, {}
        if method == "conversations.history":
            channel = str(args.get("channel", ""))
            scope = {"D": "im:history", "G": "groups:history"}.get(channel[:1], "channels:history")
            if (refused := self._needs(scope)) is not None:
                return 200, refused, {}
            oldest = float(args.get("oldest") or 0)
            limit = int(args.get("limit") or 100)
            cursor = int(args.get("cursor") or 0)
            include_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
            with self._cond:
                found = [dict(m) for m in reversed(self.messages[channel]) if float(m["ts"]) > oldest]
            if not include_metadata:
                for m in found:
                    m.pop("metadata", None)
            page = found[cursor : cursor + limit]
            more = cursor + limit < len(found)
            return (
                200,
                {
                    "ok": True,
                    "messages": page,
                    "has_more": more,
                    "response_metadata": {"next_cursor": str(cursor + limit) if more else ""},
                },
                {},
            )
        if method == "users.info":
            return 200, {"ok": True, "user": {"id": args.get("user"), "tz": "Europe/Berlin"}}, {}
        return 200, {"ok": False, "error": "unknown_method"}, {}
