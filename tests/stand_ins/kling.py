"""A stand-in for Kling's `/account/costs` on 127.0.0.1, behaving like the real one:
JWT or API-key auth with Kling's codes, snake_case millisecond parameters, QPS <= 1
enforced with 429/1302, the two-layer reply, and scripted failures, delays and bodies sent
a byte at a time."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import jwt

ACCESS_KEY = "ak-test-access"
SECRET_KEY = "sk-test-secret-0123456789abcdef-0123456789"
API_KEY = "kling-api-key-test"


@dataclass
class KlingCall:
    at: float
    params: dict[str, str]
    authorization: str | None
    status: int
    code: int


@dataclass
class Scripted:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    # When set, the body is sent one byte per this many seconds (a Kling stuck trickling).
    trickle_s: float = 0.0


def make_pack(
    name: str = "Video Generation - 10,000 entries",
    *,
    total: float = 10000.0,
    remaining: float = 5000.0,
    status: str = "online",
    pack_type: str = "decreasing_total",
    purchased_days_ago: float = 30,
    expires_in_days: float = 30,
    pack_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    now = now or datetime.now(UTC)

    def ms(delta_days: float) -> int:
        return int((now + timedelta(days=delta_days)).timestamp() * 1000)

    return {
        "resource_pack_name": name,
        "resource_pack_id": pack_id or uuid.uuid4().hex,
        "resource_pack_type": pack_type,
        "total_quantity": total,
        "remaining_quantity": remaining,
        "purchase_time": ms(-purchased_days_ago),
        "effective_time": ms(-purchased_days_ago),
        "invalid_time": ms(expires_in_days),
        "status": status,
    }


def error_body(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "request_id": uuid.uuid4().hex}


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024
    daemon_threads = True


class FakeKling:
    def __init__(self, *, packs: list[dict[str, Any]] | None = None, qps_interval_s: float = 0.9) -> None:
        self.packs: list[dict[str, Any]] = list(packs or [])
        self.delay_s = 0.0
        # When set, every successful answer waits for it: lets a test hold Kling "busy".
        self.gate: threading.Event | None = None
        # A little under Kling's 1 s, so loopback jitter between two correctly spaced requests
        # is not mistaken for a violation.
        self.qps_interval_s = qps_interval_s
        self.calls: list[KlingCall] = []
        self.script: deque[Scripted] = deque()
        self._lock = threading.Condition()
        self._last_request = float("-inf")
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self)

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeKling:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- scripting --------------------------------------------------------------------------

    def fail_next(self, times: int, status: int, code: int, message: str = "", **headers: str) -> None:
        for _ in range(times):
            self.script.append(Scripted(status, error_body(code, message or f"error {code}"), headers))

    def answer_next(self, status: int, body: Any, delay_s: float = 0.0, trickle_s: float = 0.0) -> None:
        self.script.append(Scripted(status, body, delay_s=delay_s, trickle_s=trickle_s))

    def wait_for_calls(self, count: int, timeout: float = 20.0) -> None:
        with self._lock:
            if not self._lock.wait_for(lambda: len(self.calls) >= count, timeout):
                raise AssertionError(f"expected {count} Kling call(s), got {len(self.calls)}")

    @property
    def rate_limited(self) -> int:
        return sum(1 for c in self.calls if c.code == 1302)

    # -- serving ----------------------------------------------------------------------------

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        parsed = urlparse(req.path)
        params = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        auth = req.headers.get("Authorization")
        status, body, headers, delay, trickle = self._answer(parsed.path, params, auth)
        if self.gate is not None and status == 200:
            self.gate.wait(30)
        if delay:
            time.sleep(delay)
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(payload)))
        for k, v in headers.items():
            req.send_header(k, v)
        req.end_headers()
        if not trickle:
            req.wfile.write(payload)
            return
        for i in range(len(payload)):
            try:
                req.wfile.write(payload[i : i + 1])
                req.wfile.flush()
            except OSError:
                return  # the client gave up and hung up
            time.sleep(trickle)

    def _answer(
        self, path: str, params: dict[str, str], auth: str | None
    ) -> tuple[int, Any, dict[str, str], float, float]:
        with self._lock:
            now = time.monotonic()
            too_soon = now - self._last_request < self.qps_interval_s
            self._last_request = now
            scripted = self.script.popleft() if self.script else None

        def record(status: int, body: Any) -> None:
            code = body.get("code", 0) if isinstance(body, dict) else -1
            with self._lock:
                self.calls.append(KlingCall(now, params, auth, status, code))
                self._lock.notify_all()

        if too_soon:
            body = error_body(1302, "rate limit exceeded")
            record(429, body)
            return 429, body, {}, 0.0, 0.0
        if scripted is not None:
            record(scripted.status, scripted.body)
            return scripted.status, scripted.body, scripted.headers, scripted.delay_s, scripted.trickle_s
        status, body = self._costs(path, params, auth)
        record(status, body)
        return status, body, {}, self.delay_s, 0.0

    def _costs(self, path: str, params: dict[str, str], auth: str | None) -> tuple[int, Any]:
        if path != "/account/costs":
            return 404, error_body(1203, "resource not found")
        auth_error = self._check_auth(auth)
        if auth_error:
            return 401, auth_error
        if "startTime" in params or "endTime" in params:
            return 400, error_body(1200, "invalid parameters: unknown parameter startTime")
        try:
            start, end = int(params["start_time"]), int(params["end_time"])
        except (KeyError, ValueError):
            return 400, error_body(1200, "invalid parameters: start_time and end_time are required")
        if start > end:
            return 400, error_body(1201, "invalid parameters: start_time after end_time")
        name = params.get("resource_pack_name")
        # Public clients report the window filters by purchase time.
        infos = [
            p
            for p in self.packs
            if start <= p["purchase_time"] <= end and (name is None or p["resource_pack_name"] == name)
        ]
        return 200, {
            "code": 0,
            "message": "SUCCEED",
            "request_id": uuid.uuid4().hex,
            "data": {"code": 0, "msg": "SUCCEED", "resource_pack_subscribe_infos": infos},
        }

    def _check_auth(self, auth: str | None) -> dict[str, Any] | None:
        if not auth or not auth.startswith("Bearer ") or not auth[7:].strip():
            return error_body(1001, "Authorization is empty")
        token = auth[7:].strip()
        if token == API_KEY:
            return None
        try:
            claims = jwt.decode(
                token, SECRET_KEY, algorithms=["HS256"], options={"verify_exp": False, "verify_nbf": False}
            )
        except jwt.PyJWTError:
            return error_body(1002, "Authorization is invalid")
        now = time.time()
        if claims.get("iss") != ACCESS_KEY:
            return error_body(1000, "Authentication failed")
        if "nbf" in claims and claims["nbf"] > now:
            return error_body(1003, "Authorization is not yet valid")
        if "exp" not in claims or claims["exp"] < now:
            return error_body(1004, "Authorization has expired")
        return None
